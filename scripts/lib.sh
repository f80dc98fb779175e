# Shared by scripts/up, down, status and test. Sourced, never run.
#
# Everything Outflow starts lives under one git-ignored state folder
# ($OUTFLOW_STATE, default .state/ in the repo): per component a data folder, a
# log file and a pid file under run/. Downloads are cached outside it (~/.m2, the
# Go module cache, ~/.cargo), so a fresh state folder starts without the network.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INFRA="$ROOT/infra"

# shellcheck source=../infra/versions.env
. "$INFRA/versions.env"

OUTFLOW_ENV="${OUTFLOW_ENV:-development}"
case "$OUTFLOW_ENV" in
  development|production) export OUTFLOW_ENV ;;
  # A typo such as `prod` must not quietly load the development secrets.
  *) echo "outflow: OUTFLOW_ENV must be development or production, not '$OUTFLOW_ENV'" >&2; exit 1 ;;
esac
if [ "$OUTFLOW_ENV" != production ]; then
  # Development defaults, never read in production; the real environment wins.
  while IFS='=' read -r key value; do
    case "$key" in ''|\#*) continue ;; esac
    [ -n "${!key:-}" ] || export "$key=$value"
  done < "$INFRA/dev.env"
fi
# The administrator's login and every service's own (infra/postgres/roles.sql).
PG_SERVICE_SECRETS=(OUTFLOW_PG_ORDERS_PASSWORD OUTFLOW_PG_ORDERS_CONSUMER_PASSWORD OUTFLOW_PG_INVENTORY_PASSWORD
  OUTFLOW_PG_INVENTORY_CONSUMER_PASSWORD OUTFLOW_PG_PAYMENTS_PASSWORD OUTFLOW_PG_PAYMENTS_CONSUMER_PASSWORD
  OUTFLOW_PG_SHIPPING_PASSWORD OUTFLOW_PG_SHIPPING_CONSUMER_PASSWORD OUTFLOW_PG_NOTIFICATIONS_PASSWORD OUTFLOW_PG_NOTIFICATIONS_CONSUMER_PASSWORD
  OUTFLOW_PG_DEBEZIUM_PASSWORD OUTFLOW_PG_REGISTRY_PASSWORD OUTFLOW_PG_MONITOR_PASSWORD OUTFLOW_MONGO_PASSWORD
  OUTFLOW_REGISTRY_PASSWORD OUTFLOW_REGISTRY_WRITER_PASSWORD OUTFLOW_REGISTRY_READER_PASSWORD OUTFLOW_CONNECT_PASSWORD
  OUTFLOW_KAFKA_BROKER_PASSWORD OUTFLOW_KAFKA_ADMIN_PASSWORD OUTFLOW_KAFKA_PASSWORD OUTFLOW_KAFKA_CONNECT_PASSWORD
  OUTFLOW_KAFKA_MONITOR_PASSWORD OUTFLOW_KAFKA_ORDERS_PASSWORD OUTFLOW_KAFKA_INVENTORY_PASSWORD OUTFLOW_KAFKA_PAYMENTS_PASSWORD
  OUTFLOW_KAFKA_VIEWS_PASSWORD OUTFLOW_KAFKA_NOTIFICATIONS_PASSWORD OUTFLOW_KAFKA_SHIPPING_PASSWORD)
for secret in OUTFLOW_PG_USER OUTFLOW_PG_PASSWORD OUTFLOW_MONGO_USER OUTFLOW_REGISTRY_USER OUTFLOW_CONNECT_USER OUTFLOW_KAFKA_USER OUTFLOW_KAFKA_ADMIN_USER "${PG_SERVICE_SECRETS[@]}" OUTFLOW_JWT_SECRET OUTFLOW_PROVIDER_SERVER_KEY OUTFLOW_CARRIER_KEY; do
  if [ -z "${!secret:-}" ]; then
    echo "outflow: $secret is not set (OUTFLOW_ENV=$OUTFLOW_ENV reads no development defaults)" >&2
    exit 1
  fi
  export "${secret?}"
done

# Every secret an Outflow process could be handed; each gets only its own.
ALL_SECRETS=(OUTFLOW_PG_PASSWORD "${PG_SERVICE_SECRETS[@]}" OUTFLOW_JWT_SECRET OUTFLOW_PROVIDER_SERVER_KEY OUTFLOW_CARRIER_KEY)

# Prints (NUL-separated) an `env` command line that removes every secret from
# a child's environment but the ones named, for start_detached.
env_without_secrets() {
  local keep=" $* " secret
  printf '%s\0' env
  for secret in "${ALL_SECRETS[@]}"; do
    [[ "$keep" == *" $secret "* ]] || printf '%s\0' -u "$secret"
  done
}

export OUTFLOW_STATE="${OUTFLOW_STATE:-$ROOT/.state}"
export OUTFLOW_PG_PORT="${OUTFLOW_PG_PORT:-55432}"
export OUTFLOW_KAFKA_PORT="${OUTFLOW_KAFKA_PORT:-59092}"
export OUTFLOW_KAFKA_CONTROLLER_PORT="${OUTFLOW_KAFKA_CONTROLLER_PORT:-59093}"
export OUTFLOW_CONNECT_PORT="${OUTFLOW_CONNECT_PORT:-58083}"

# The topology: `single` (one Kafka node, one Connect worker; the default) or
# `cluster` (three KRaft nodes, each broker and controller, and two Connect
# workers in one group). `scripts/up --cluster` records it in the state folder,
# so that every later script (status, down, test, chaos) finds the same one.
TOPOLOGY_FILE="$OUTFLOW_STATE/TOPOLOGY"
RECORDED_TOPOLOGY="$(cat "$TOPOLOGY_FILE" 2>/dev/null || true)"
OUTFLOW_TOPOLOGY="${OUTFLOW_TOPOLOGY:-${RECORDED_TOPOLOGY:-single}}"
case "$OUTFLOW_TOPOLOGY" in
  single) KAFKA_NODES=(1); CONNECT_WORKERS=(1) ;;
  cluster) KAFKA_NODES=(1 2 3); CONNECT_WORKERS=(1 2) ;;
  *) echo "outflow: OUTFLOW_TOPOLOGY must be single or cluster, not '$OUTFLOW_TOPOLOGY'" >&2; exit 1 ;;
esac
export OUTFLOW_TOPOLOGY
# Node 1 is `kafka` on the ports above; node N is `kafka-N` with its client and
# controller ports 100 × (N − 1) higher unless OUTFLOW_KAFKA_<N>_PORT and
# OUTFLOW_KAFKA_<N>_CONTROLLER_PORT say otherwise. Connect worker N is
# `connect-N`, on OUTFLOW_CONNECT_<N>_PORT (default: the next port up).
kafka_node_name() { if [ "$1" = 1 ]; then echo kafka; else echo "kafka-$1"; fi; }
connect_worker_name() { if [ "$1" = 1 ]; then echo connect; else echo "connect-$1"; fi; }
for node in "${KAFKA_NODES[@]}"; do
  [ "$node" = 1 ] && continue
  port_var="OUTFLOW_KAFKA_${node}_PORT" controller_var="OUTFLOW_KAFKA_${node}_CONTROLLER_PORT"
  export "$port_var=${!port_var:-$((OUTFLOW_KAFKA_PORT + 100 * (node - 1)))}"
  export "$controller_var=${!controller_var:-$((OUTFLOW_KAFKA_CONTROLLER_PORT + 100 * (node - 1)))}"
done
for worker in "${CONNECT_WORKERS[@]}"; do
  [ "$worker" = 1 ] && continue
  port_var="OUTFLOW_CONNECT_${worker}_PORT"
  export "$port_var=${!port_var:-$((OUTFLOW_CONNECT_PORT + worker - 1))}"
done
unset node worker port_var controller_var
kafka_node_port() { if [ "$1" = 1 ]; then echo "$OUTFLOW_KAFKA_PORT"; else local v="OUTFLOW_KAFKA_${1}_PORT"; echo "${!v}"; fi; }
kafka_controller_port() { if [ "$1" = 1 ]; then echo "$OUTFLOW_KAFKA_CONTROLLER_PORT"; else local v="OUTFLOW_KAFKA_${1}_CONTROLLER_PORT"; echo "${!v}"; fi; }
connect_worker_port() { if [ "$1" = 1 ]; then echo "$OUTFLOW_CONNECT_PORT"; else local v="OUTFLOW_CONNECT_${1}_PORT"; echo "${!v}"; fi; }
export OUTFLOW_REGISTRY_PORT="${OUTFLOW_REGISTRY_PORT:-58081}"
export OUTFLOW_MONGO_PORT="${OUTFLOW_MONGO_PORT:-57017}"
export OUTFLOW_MONGO_DEBUG_PORT="${OUTFLOW_MONGO_DEBUG_PORT:-57018}"
# Jaeger: OTLP in over gRPC, the query API and UI; its other servers on ports
# of the same range (HTTP OTLP, admin/health, query gRPC, legacy collectors).
export OUTFLOW_JAEGER_OTLP_PORT="${OUTFLOW_JAEGER_OTLP_PORT:-54317}"
export OUTFLOW_JAEGER_QUERY_PORT="${OUTFLOW_JAEGER_QUERY_PORT:-56686}"

# JVM heaps for a 2-core, 24 GiB machine that also runs PostgreSQL, the Go servers
# and every Outflow service: the broker holds little (page cache does the work),
# the Connect worker holds Debezium's queues. The cluster's five JVMs get
# smaller ones, so that the whole stack stays under 6 GiB.
if [ "$OUTFLOW_TOPOLOGY" = cluster ]; then
  KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms192m -Xmx384m}"
  CONNECT_HEAP_OPTS="${CONNECT_HEAP_OPTS:--Xms192m -Xmx512m}"
else
  KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
  CONNECT_HEAP_OPTS="${CONNECT_HEAP_OPTS:--Xms256m -Xmx768m}"
fi
JVM_OPTS="${OUTFLOW_JVM_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20} -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true"

PG_BIN="/usr/lib/postgresql/$POSTGRES_MAJOR/bin"
RUN="$OUTFLOW_STATE/run"
LIB="$OUTFLOW_STATE/lib"
BIN="$OUTFLOW_STATE/bin"

export DATABASE_URL_BASE="postgres://$OUTFLOW_PG_USER:$OUTFLOW_PG_PASSWORD@127.0.0.1:$OUTFLOW_PG_PORT"
# Every client gets every node: it finds the cluster through whichever answers.
OUTFLOW_KAFKA_BROKERS=""
for node in "${KAFKA_NODES[@]}"; do OUTFLOW_KAFKA_BROKERS+="${OUTFLOW_KAFKA_BROKERS:+,}127.0.0.1:$(kafka_node_port "$node")"; done
export OUTFLOW_KAFKA_BROKERS
# Kafka Connect's exactly-once source support: disabled or enabled (see
# infra/connect/connect-distributed.properties for what it costs).
export OUTFLOW_CONNECT_EXACTLY_ONCE="${OUTFLOW_CONNECT_EXACTLY_ONCE:-disabled}"
export OUTFLOW_CONNECT_URL="http://127.0.0.1:$OUTFLOW_CONNECT_PORT"
# Every worker's REST address; any of them answers for the whole group.
OUTFLOW_CONNECT_URLS=""
for worker in "${CONNECT_WORKERS[@]}"; do OUTFLOW_CONNECT_URLS+="${OUTFLOW_CONNECT_URLS:+,}http://127.0.0.1:$(connect_worker_port "$worker")"; done
export OUTFLOW_CONNECT_URLS
unset node worker
export OUTFLOW_REGISTRY_URL="http://127.0.0.1:$OUTFLOW_REGISTRY_PORT"
export OUTFLOW_MONGO_URL="mongodb://127.0.0.1:$OUTFLOW_MONGO_PORT/"
export OUTFLOW_JAEGER_URL="http://127.0.0.1:$OUTFLOW_JAEGER_QUERY_PORT"
# Every service exports its spans here (the OpenTelemetry SDK's own variable);
# an empty value turns the export off.
export OTEL_EXPORTER_OTLP_ENDPOINT="${OTEL_EXPORTER_OTLP_ENDPOINT-http://127.0.0.1:$OUTFLOW_JAEGER_OTLP_PORT}"

# The infrastructure in start order; down stops it in reverse.
INFRA_COMPONENTS=(postgres)
for node in "${KAFKA_NODES[@]}"; do INFRA_COMPONENTS+=("$(kafka_node_name "$node")"); done
for worker in "${CONNECT_WORKERS[@]}"; do INFRA_COMPONENTS+=("$(connect_worker_name "$worker")"); done
INFRA_COMPONENTS+=(registry mongo jaeger)
unset node worker

say() { printf '%s\n' "$*"; }

# curl with Kafka Connect's REST login, kept off the command line (ps).
connect_curl() { curl --config <(printf 'user = "%s:%s"\n' "$OUTFLOW_CONNECT_USER" "$OUTFLOW_CONNECT_PASSWORD") "$@"; }
# The first Connect worker that answers: any worker serves the whole group's
# REST API (a follower forwards writes to the leader).
connect_live_url() {
  local url urls
  IFS=, read -ra urls <<< "$OUTFLOW_CONNECT_URLS"
  for url in "${urls[@]}"; do
    connect_curl -sf --max-time 2 "$url/" >/dev/null && { echo "$url"; return 0; }
  done
  echo "$OUTFLOW_CONNECT_URL"
}
warn() { printf 'outflow: %s\n' "$*" >&2; }
die() { warn "$*"; exit 1; }

log_file() { echo "$OUTFLOW_STATE/$1/$1.log"; }

# Prints the last lines of a component's log under a heading, for failures.
show_log_tail() {
  local log; log="$(log_file "$1")"
  if [ -s "$log" ]; then
    printf '\n--- last 30 lines of %s ---\n' "$log" >&2
    tail -n 30 "$log" >&2
    printf -- '--- end of log ---\n' >&2
  fi
}

# Names the component, the cause and the log, then stops the script.
fail_component() {
  local name="$1"; shift
  warn "$name failed to start: $*"
  show_log_tail "$name"
  die "fix the cause above and run scripts/up again; what did start keeps running (scripts/status lists it, scripts/down stops it)"
}

port_of() {
  case "$1" in
    postgres) echo "$OUTFLOW_PG_PORT" ;;
    kafka) echo "$OUTFLOW_KAFKA_PORT" ;;
    kafka-[0-9]*) kafka_node_port "${1#kafka-}" ;;
    connect) echo "$OUTFLOW_CONNECT_PORT" ;;
    connect-[0-9]*) connect_worker_port "${1#connect-}" ;;
    registry) echo "$OUTFLOW_REGISTRY_PORT" ;;
    mongo) echo "$OUTFLOW_MONGO_PORT" ;;
    jaeger) echo "$OUTFLOW_JAEGER_QUERY_PORT" ;;
    *) echo "" ;;
  esac
}

pid_file() { echo "$RUN/$1.pid"; }

# A process's start time in clock ticks since boot: with the pid it names one
# process for good, so a recycled pid is never mistaken for ours.
proc_started() { sed -E 's/^.*\) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }

record_pid() { printf '%s\n%s\n' "$2" "$(proc_started "$2")" > "$(pid_file "$1")"; }

# Whether a process still runs. `kill -0` also answers for a zombie, and a
# SIGKILLed JVM is one (its main thread) while its other threads still hold its
# ports: it runs until its last thread is gone, and an unreaped zombie after
# that does not.
process_alive() {
  local state; state="$(sed -E 's/^.*\) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
  [ -n "$state" ] || return 1
  [ "$state" != Z ] || [ "$(find "/proc/$1/task" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)" -gt 1 ]
}

# The pid recorded for a component if that very process is still alive, else nothing.
live_pid() {
  local file pid started
  file="$(pid_file "$1")"
  [ -f "$file" ] || return 0
  pid="$(sed -n 1p "$file")"; started="$(sed -n 2p "$file")"
  if [ -n "$pid" ] && process_alive "$pid" && [ "$(proc_started "$pid")" = "$started" ]; then
    echo "$pid"
  fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Who listens on a port, as `ss` tells it (empty when nobody does).
port_owner() { ss -ltnpH "sport = :$1" 2>/dev/null | sed -E 's/.*users:\(\((.*)\)\).*/\1/' | head -n 1; }

# Refuses to start a component whose port some other process holds.
require_free_port() {
  local name="$1" port="$2" owner
  if port_open "$port"; then
    owner="$(port_owner "$port")"
    local pid; pid="$(sed -nE 's/.*pid=([0-9]+).*/\1/p' <<< "$owner")"
    if [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "$OUTFLOW_STATE"; then
      die "$name cannot start: port $port is held by pid $pid, an Outflow process from an earlier run whose pid record is lost (a half-finished up or down). Stop it (kill $pid) and run scripts/up again."
    fi
    die "$name cannot start: port $port is already taken by ${owner:-another process}. Stop it, or choose another port (see README: ports are overridable by OUTFLOW_*_PORT)."
  fi
}

# Runs a command as the PostgreSQL user when we are root (postgres refuses root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Substitutes @NAME@ with the value of the environment variable NAME.
render() {
  local src="$1" dst="$2" line
  python3 - "$src" "$dst" <<'PY'
import os, re, sys
src, dst = sys.argv[1], sys.argv[2]
text = open(src).read()
def value(m):
    name = m.group(1)
    if name not in os.environ:
        sys.exit(f"render: {src} needs ${name}, which is not set")
    return os.environ[name]
open(dst, "w").write(re.sub(r"@([A-Z0-9_]+)@", value, text))
PY
}

# Starts a long-running process detached from this shell, logs to its file and
# records its pid.
start_detached() {
  local name="$1"; shift
  local log; log="$(log_file "$name")"
  mkdir -p "$(dirname "$log")" "$RUN"
  [ -f "$log" ] && mv -f "$log" "$log.1"
  # No library backtraces in service logs: the error's cause chain says more,
  # and a backtrace would push it out of the tail that a failed start prints.
  RUST_LIB_BACKTRACE=0 setsid nohup "$@" >"$log" 2>&1 < /dev/null &
  record_pid "$name" $!
}

# Waits until the check command passes, the process dies, or the deadline passes.
wait_healthy() {
  local name="$1" deadline_s="$2"; shift 2
  local check="$*" until=$((SECONDS + deadline_s)) pid
  while ! "$@" 2>/dev/null; do
    pid="$(live_pid "$name")"
    if [ "$name" != postgres ] && [ -z "$pid" ]; then
      fail_component "$name" "the process exited during start"
    fi
    if [ "$SECONDS" -ge "$until" ]; then
      fail_component "$name" "not healthy after ${deadline_s}s (check: $check)"
    fi
    sleep 0.3
  done
}

# Stops a recorded process: TERM, then KILL after a grace period.
stop_pid() {
  local name="$1" grace="${2:-30}" pid
  pid="$(live_pid "$name")"
  if [ -z "$pid" ]; then rm -f "$(pid_file "$name")"; return 0; fi
  kill -TERM "$pid" 2>/dev/null || true
  local until=$((SECONDS + grace))
  while process_alive "$pid"; do
    if [ "$SECONDS" -ge "$until" ]; then
      warn "$name (pid $pid) did not stop within ${grace}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$(pid_file "$name")"
}
