# The infrastructure components: how each is installed, started and checked.
# Sourced after lib.sh. Each component NAME has install_NAME, start_NAME and
# healthy_NAME; scripts/up calls them in INFRA_COMPONENTS order.

# ---------------------------------------------------------------- prerequisites

require_tool() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is missing: $2 (.ci/run installs every prerequisite on Debian)"
}

check_state_layout() {
  local file="$OUTFLOW_STATE/LAYOUT"
  mkdir -p "$OUTFLOW_STATE" "$RUN" "$LIB" "$BIN"
  if [ -f "$file" ] && [ "$(cat "$file")" != "$STATE_LAYOUT_VERSION" ]; then
    die "the state folder $OUTFLOW_STATE was made by another version of Outflow (layout $(cat "$file"), this one needs $STATE_LAYOUT_VERSION). Run scripts/down, then move it away or delete it (rm -rf $OUTFLOW_STATE) and run scripts/up again."
  fi
  echo "$STATE_LAYOUT_VERSION" > "$file"
}

# ---------------------------------------------------------------- postgres

install_postgres() {
  [ -x "$PG_BIN/initdb" ] || die "PostgreSQL $POSTGRES_MAJOR is missing ($PG_BIN/initdb): apt-get update && apt-get install -y postgresql-$POSTGRES_MAJOR"
  local data="$OUTFLOW_STATE/postgres/data"
  if [ ! -f "$data/PG_VERSION" ]; then
    say "postgres: creating the cluster in $data"
    mkdir -p "$data"
    local pwfile="$OUTFLOW_STATE/postgres/.pwfile"
    printf '%s\n' "$OUTFLOW_PG_PASSWORD" > "$pwfile"
    [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$OUTFLOW_STATE/postgres"
    chmod 600 "$pwfile"
    as_pg "$PG_BIN/initdb" -D "$data" -U "$OUTFLOW_PG_USER" --pwfile="$pwfile" \
      --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$OUTFLOW_STATE/postgres/initdb.log" 2>&1 \
      || { rm -f "$pwfile"; cat "$OUTFLOW_STATE/postgres/initdb.log" >&2; die "postgres: initdb failed (log above)"; }
    rm -f "$pwfile"
    echo "include = 'outflow.conf'" >> "$data/postgresql.conf"
    # Debezium connects for logical replication over TCP with the same user.
    echo "host replication $OUTFLOW_PG_USER 127.0.0.1/32 scram-sha-256" >> "$data/pg_hba.conf"
  fi
  cp "$INFRA/postgres/outflow.conf" "$data/outflow.conf"
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$OUTFLOW_STATE/postgres"
  return 0
}

healthy_postgres() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$OUTFLOW_PG_PORT"; }

start_postgres() {
  local data="$OUTFLOW_STATE/postgres/data" log; log="$(log_file postgres)"
  [ -f "$log" ] && mv -f "$log" "$log.1"
  touch "$log"; [ "$(id -u)" = 0 ] && chown postgres:postgres "$log"
  # A postmaster.pid left by a killed server names a dead pid: PostgreSQL removes
  # it itself; one naming a live server means that server runs without our record.
  as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$log" -o "-p $OUTFLOW_PG_PORT -k /tmp" -w -t 60 start >/dev/null \
    || fail_component postgres "pg_ctl start failed"
  record_pid postgres "$(head -n 1 "$data/postmaster.pid")"
  wait_healthy postgres 60 healthy_postgres
  local db
  for db in orders inventory payments shipping notifications registry views; do
    if ! psql_admin postgres -qtA -c "select 1 from pg_database where datname = '$db'" | grep -q 1; then
      psql_admin postgres -q -c "create database $db" || fail_component postgres "could not create database $db"
    fi
  done
  # The MongoDB API server's tables get the index its _id lookups need (see the file).
  psql_admin views -q -f "$INFRA/postgres/views.sql" >/dev/null 2>"$OUTFLOW_STATE/postgres/views-sql.log" \
    || { cat "$OUTFLOW_STATE/postgres/views-sql.log" >&2; fail_component postgres "could not apply infra/postgres/views.sql to the views database"; }
}

# psql as the administrator: psql_admin DATABASE ARGS...
psql_admin() {
  local db="$1"; shift
  PGPASSWORD="$OUTFLOW_PG_PASSWORD" psql -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$OUTFLOW_PG_PORT" -U "$OUTFLOW_PG_USER" -d "$db" "$@"
}

# One login role per service, each database given to its service
# (infra/postgres/roles.sql and owner.sql); the passwords reach psql through
# its environment only.
apply_roles() {
  local log="$OUTFLOW_STATE/postgres/roles-sql.log" context reader
  : >"$log"
  psql_admin postgres -q -f "$INFRA/postgres/roles.sql" >>"$log" 2>&1 || roles_failed roles.sql
  for context in orders inventory payments shipping notifications; do
    reader=(); [ "$context" = orders ] && reader=(-v reader=outflow_monitor)
    psql_admin "$context" -q -v owner="outflow_$context" -v consumer="outflow_${context}_consumer" "${reader[@]}" \
      -f "$INFRA/postgres/owner.sql" >>"$log" 2>&1 || roles_failed "owner.sql in $context"
  done
  psql_admin registry -q -v owner=outflow_registry -f "$INFRA/postgres/owner.sql" >>"$log" 2>&1 || roles_failed "owner.sql in registry"
  psql_admin views -q -v owner="$OUTFLOW_MONGO_USER" -f "$INFRA/postgres/owner.sql" >>"$log" 2>&1 || roles_failed "owner.sql in views"
}

roles_failed() {
  cat "$OUTFLOW_STATE/postgres/roles-sql.log" >&2
  fail_component postgres "could not apply the service roles ($1, infra/postgres)"
}

stop_postgres() {
  local data="$OUTFLOW_STATE/postgres/data"
  if [ -n "$(live_pid postgres)" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null || stop_pid postgres
  fi
  rm -f "$(pid_file postgres)"
}

# ---------------------------------------------------------------- Maven jars

# Copies a pom's runtime dependencies into a folder once per version; Maven's
# local repository (~/.m2) is the download cache.
maven_copy() {
  local pom="$1" dest="$2"; shift 2
  # Resolved once per version and pom: a pom that gained a dependency resolves again.
  local stamp; stamp="$(sha256sum "$pom" | cut -c1-16) $*"
  [ -f "$dest/.complete" ] && [ "$(cat "$dest/.complete")" = "$stamp" ] && return 0
  require_tool java "install a Java 17+ JDK (apt-get install -y openjdk-17-jdk-headless)"
  require_tool mvn "install Maven (apt-get install -y maven)"
  say "resolving $(basename "$(dirname "$pom")") jars from Maven Central into $dest"
  # Resolved beside, then swapped in: a broker or worker running from the old
  # folder keeps finding its jars until it is restarted.
  rm -rf "$dest.new"; mkdir -p "$dest.new"
  mvn -B -q -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$dest.new" "$@" >"$dest.mvn.log" 2>&1 \
    || { tail -n 40 "$dest.mvn.log" >&2; die "Maven could not resolve $pom (log: $dest.mvn.log)"; }
  echo "$stamp" > "$dest.new/.complete"
  rm -rf "$dest"; mv "$dest.new" "$dest"
}

KAFKA_LIB="$LIB/kafka-$KAFKA_VERSION"
DEBEZIUM_LIB="$LIB/debezium-$DEBEZIUM_VERSION"

# Each Kafka node's rendered configuration, data folder and pid file; node 1
# is the component `kafka`, node N `kafka-N` (lib.sh).
kafka_node_dir() { echo "$OUTFLOW_STATE/$(kafka_node_name "$1")"; }

kafka_quorum_voters() {
  local node voters=""
  for node in "${KAFKA_NODES[@]}"; do voters+="${voters:+,}$node@127.0.0.1:$(kafka_controller_port "$node")"; done
  echo "$voters"
}

install_kafka() {
  maven_copy "$INFRA/maven/kafka/pom.xml" "$KAFKA_LIB" \
    -Dkafka.version="$KAFKA_VERSION" -Dlog4j.version="$LOG4J_VERSION"
  check_topology
  local node
  for node in "${KAFKA_NODES[@]}"; do install_kafka_node "$node"; done
}

# The topology a state folder was made with stays its topology: a log formatted
# for one voter cannot join a quorum of three, nor keep one replica per topic.
check_topology() {
  # A folder from before topologies were recorded holds a single node.
  local recorded; recorded="$(cat "$TOPOLOGY_FILE" 2>/dev/null || echo single)"
  if [ -f "$OUTFLOW_STATE/kafka/data/meta.properties" ] && [ "$recorded" != "$OUTFLOW_TOPOLOGY" ]; then
    die "the state folder $OUTFLOW_STATE holds a $recorded Kafka, not a $OUTFLOW_TOPOLOGY one. Run scripts/down, then start the other topology in a state folder of its own (OUTFLOW_STATE=$OUTFLOW_STATE-$OUTFLOW_TOPOLOGY) or delete this one."
  fi
  echo "$OUTFLOW_TOPOLOGY" > "$TOPOLOGY_FILE"
}

install_kafka_node() {
  local node="$1" dir; dir="$(kafka_node_dir "$1")"
  mkdir -p "$dir/data"
  local replicas=1 min_isr=1
  [ "${#KAFKA_NODES[@]}" -ge 3 ] && replicas=3 min_isr=2
  # The rendered file holds the broker's password.
  (umask 077 && KAFKA_NODE_ID="$node" KAFKA_QUORUM_VOTERS="$(kafka_quorum_voters)" KAFKA_NODE_PORT="$(kafka_node_port "$node")" \
    KAFKA_NODE_CONTROLLER_PORT="$(kafka_controller_port "$node")" KAFKA_NODE_DATA="$dir/data" KAFKA_REPLICAS="$replicas" KAFKA_MIN_ISR="$min_isr" \
    render "$INFRA/kafka/server.properties" "$dir/server.properties")
  [ -f "$dir/data/meta.properties" ] && return 0
  # Every node of a cluster is formatted with the same cluster id.
  local id_file="$OUTFLOW_STATE/kafka/cluster.id"
  [ -s "$id_file" ] || python3 -c 'import base64,uuid;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))' > "$id_file"
  # The broker's and the administrator's logins exist from the first start
  # (the others are made with the administrator's, kafka_logins); a
  # password may not hold a comma here.
  java -cp "$KAFKA_LIB/*" -Dlog4j2.configurationFile="$INFRA/kafka/log4j2.properties" \
    kafka.tools.StorageTool format -t "$(cat "$id_file")" -c "$dir/server.properties" \
    --add-scram "SCRAM-SHA-512=[name=outflow-broker,password=$OUTFLOW_KAFKA_BROKER_PASSWORD]" \
    --add-scram "SCRAM-SHA-512=[name=$OUTFLOW_KAFKA_ADMIN_USER,password=$OUTFLOW_KAFKA_ADMIN_PASSWORD]" \
    >"$dir/format.log" 2>&1 \
    || { cat "$dir/format.log" >&2; die "$(kafka_node_name "$node"): formatting the KRaft log failed"; }
}

# Starts node 1 (the component `kafka`, which its callers found not running:
# scripts/up, or a fault that killed it) and every other node that is not
# running, then waits for each: in the cluster a node's broker is ready only
# once two of the three controllers elect a leader, so the nodes cannot be
# started one after another, each waited for. Node 1 is started whatever its
# pid file says: a killed broker whose threads still exit looks alive there,
# and a start beside it fails on its port and is retried by the caller.
start_kafka() {
  local node
  launch_kafka_node 1
  for node in "${KAFKA_NODES[@]}"; do
    [ "$node" = 1 ] || [ -n "$(live_pid "$(kafka_node_name "$node")")" ] || launch_kafka_node "$node"
  done
  for node in "${KAFKA_NODES[@]}"; do
    wait_healthy "$(kafka_node_name "$node")" 90 healthy_kafka_node "$node"
  done
}

launch_kafka_node() {
  local clean; mapfile -d '' clean < <(env_without_secrets)
  start_detached "$(kafka_node_name "$1")" "${clean[@]}" java $KAFKA_HEAP_OPTS $JVM_OPTS \
    -Dlog4j2.configurationFile="$INFRA/kafka/log4j2.properties" \
    -cp "$KAFKA_LIB/*" kafka.Kafka "$(kafka_node_dir "$1")/server.properties"
}

healthy_kafka_node() {
  port_open "$(kafka_node_port "$1")" && grep -q "Kafka Server started" "$(log_file "$(kafka_node_name "$1")")"
}

healthy_kafka() { healthy_kafka_node 1; }

# Stops every running node at once: one left alone would wait for a quorum
# that its stopped peers no longer form.
stop_kafka_nodes() {
  local node name pid jobs=() stopped=()
  for node in "${KAFKA_NODES[@]}"; do
    name="$(kafka_node_name "$node")" pid="$(live_pid "$name")"
    [ -n "$pid" ] || continue
    stop_pid "$name" 60 &
    jobs+=($!) stopped+=("$name: stopped (was pid $pid)")
  done
  for pid in "${jobs[@]}"; do wait "$pid" || true; done
  for name in "${stopped[@]}"; do say "$name"; done
}

# Nodes 2 and 3 of the cluster, as components of their own (scripts/up,
# status and chaos call NAME's hooks): each starts alone beside the running
# others, which form the quorum it joins.
for node in "${KAFKA_NODES[@]}"; do
  [ "$node" = 1 ] && continue
  eval "install_kafka-$node() { install_kafka; }
        start_kafka-$node() { launch_kafka_node $node; wait_healthy kafka-$node 90 healthy_kafka_node $node; }
        healthy_kafka-$node() { healthy_kafka_node $node; }"
done
unset node

# Every principal's login and the ACLs of infra/kafka/acls.txt, made with the
# administrator's login in one JVM (infra/kafka/Provision.java); idempotent.
kafka_logins() {
  local acls="$OUTFLOW_STATE/kafka/acls.txt"
  render "$INFRA/kafka/acls.txt" "$acls"
  java -cp "$KAFKA_LIB/*" -Dlog4j2.configurationFile="$INFRA/kafka/log4j2.properties" "$INFRA/kafka/Provision.java" "$acls" \
    "$OUTFLOW_KAFKA_USER=OUTFLOW_KAFKA_PASSWORD" outflow-connect-worker=OUTFLOW_KAFKA_CONNECT_PASSWORD \
    outflow-monitor=OUTFLOW_KAFKA_MONITOR_PASSWORD outflow-orders=OUTFLOW_KAFKA_ORDERS_PASSWORD \
    outflow-inventory=OUTFLOW_KAFKA_INVENTORY_PASSWORD outflow-payments=OUTFLOW_KAFKA_PAYMENTS_PASSWORD \
    outflow-views=OUTFLOW_KAFKA_VIEWS_PASSWORD outflow-notifications=OUTFLOW_KAFKA_NOTIFICATIONS_PASSWORD \
    outflow-shipping=OUTFLOW_KAFKA_SHIPPING_PASSWORD \
    >"$OUTFLOW_STATE/kafka/logins.log" 2>&1 \
    || { cat "$OUTFLOW_STATE/kafka/logins.log" >&2; fail_component kafka "could not create the Kafka logins and ACLs (infra/kafka/acls.txt)"; }
}

# A client properties file for Kafka's own tools, logged in as the administrator.
kafka_admin_properties() {
  local file="$OUTFLOW_STATE/kafka/admin.properties"
  (umask 077 && printf 'security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";\n' \
    "$OUTFLOW_KAFKA_ADMIN_USER" "$OUTFLOW_KAFKA_ADMIN_PASSWORD" > "$file")
  echo "$file"
}

healthy_kafka() {
  port_open "$OUTFLOW_KAFKA_PORT" && grep -q "Kafka Server started" "$(log_file kafka)"
}

install_connect() {
  case "$OUTFLOW_CONNECT_EXACTLY_ONCE" in
    enabled|disabled) ;;
    *) die "connect: OUTFLOW_CONNECT_EXACTLY_ONCE must be enabled or disabled, not '$OUTFLOW_CONNECT_EXACTLY_ONCE'" ;;
  esac
  install_kafka
  maven_copy "$INFRA/maven/debezium/pom.xml" "$DEBEZIUM_LIB" -Ddebezium.version="$DEBEZIUM_VERSION"
  # plugin.path holds exactly the pinned Debezium version.
  local plugins="$OUTFLOW_STATE/connect/plugins"
  if [ "$(readlink "$plugins/debezium-postgres" 2>/dev/null)" != "$DEBEZIUM_LIB" ]; then
    rm -rf "$plugins"; mkdir -p "$plugins"
    ln -s "$DEBEZIUM_LIB" "$plugins/debezium-postgres"
  fi
  # The REST API's one login (basic authentication, JAAS PropertyFileLoginModule).
  # An empty credentials file would let everyone in: refuse to write one.
  [ -n "$OUTFLOW_CONNECT_USER" ] && [ -n "$OUTFLOW_CONNECT_PASSWORD" ] || die "connect: OUTFLOW_CONNECT_USER and OUTFLOW_CONNECT_PASSWORD must be set"
  (umask 077 && printf '%s=%s\n' "$OUTFLOW_CONNECT_USER" "$OUTFLOW_CONNECT_PASSWORD" > "$OUTFLOW_STATE/connect/rest-credentials.properties")
  printf 'KafkaConnect {\n  org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule required\n  file="%s";\n};\n' \
    "$OUTFLOW_STATE/connect/rest-credentials.properties" > "$OUTFLOW_STATE/connect/rest-jaas.conf"
}

start_connect() { launch_connect_worker 1; }

launch_connect_worker() {
  local worker="$1" name dir; name="$(connect_worker_name "$1")"; dir="$OUTFLOW_STATE/$name"
  mkdir -p "$dir"
  (umask 077 && CONNECT_WORKER_PORT="$(connect_worker_port "$worker")" \
    render "$INFRA/connect/connect-distributed.properties" "$dir/connect-distributed.properties")
  # The worker's env config provider resolves the connectors' ${env:...}
  # references: it holds Debezium's PostgreSQL password and no other secret.
  local clean; mapfile -d '' clean < <(env_without_secrets OUTFLOW_PG_DEBEZIUM_PASSWORD)
  start_detached "$name" "${clean[@]}" java $CONNECT_HEAP_OPTS $JVM_OPTS \
    -Djava.security.auth.login.config="$OUTFLOW_STATE/connect/rest-jaas.conf" \
    -Dlog4j2.configurationFile="$INFRA/kafka/log4j2.properties" \
    -cp "$KAFKA_LIB/*" org.apache.kafka.connect.cli.ConnectDistributed \
    "$dir/connect-distributed.properties"
  wait_healthy "$name" 120 healthy_connect_worker "$worker"
}

healthy_connect_worker() {
  local url="http://127.0.0.1:$(connect_worker_port "$1")"
  connect_curl -sf --max-time 2 "$url/health" >/dev/null && connect_curl -sf --max-time 2 "$url/connector-plugins" | grep -q PostgresConnector
}

healthy_connect() { healthy_connect_worker 1; }

# The second worker of the cluster, a component of its own.
for worker in "${CONNECT_WORKERS[@]}"; do
  [ "$worker" = 1 ] && continue
  eval "install_connect-$worker() { install_connect; }
        start_connect-$worker() { launch_connect_worker $worker; }
        healthy_connect-$worker() { healthy_connect_worker $worker; }"
done
unset worker

# ---------------------------------------------------------------- Go servers

# Builds a Go program from its module on the Go module proxy, once per version.
# `go install pkg@version` refuses modules whose version list the proxy does not
# serve, so the module is downloaded and built in a writable copy of its source.
go_build() {
  local name="$1" module_pkg="$2" version="$3" out="$BIN/$1-$3"
  [ -x "$out" ] && return 0
  require_tool go "install Go (apt-get install -y golang, or the toolchain from the Go module proxy)"
  local module="${module_pkg%/cmd/*}" pkg="./cmd/${module_pkg##*/cmd/}"
  local src="$OUTFLOW_STATE/build/$name-$version"
  say "$name: building $module_pkg@$version"
  local dir
  dir="$(cd "$OUTFLOW_STATE" && GOFLAGS=-mod=mod go mod download -json "$module@$version" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')" \
    || die "$name: could not download $module@$version from the Go module proxy"
  rm -rf "$src"; mkdir -p "$(dirname "$src")"
  cp -r "$dir" "$src"; chmod -R u+w "$src"
  # FerretDB embeds its version from a generated file that its module zip lacks.
  [ -d "$src/build/version" ] && echo "$version" > "$src/build/version/version.txt"
  (cd "$src" && go build -trimpath -o "$out" "$pkg") >"$src.build.log" 2>&1 \
    || { tail -n 40 "$src.build.log" >&2; die "$name: go build failed (log: $src.build.log)"; }
  rm -rf "$src"
}

install_registry() {
  go_build schema-registry "$SCHEMA_REGISTRY_MODULE" "$SCHEMA_REGISTRY_VERSION"
  mkdir -p "$OUTFLOW_STATE/registry"
  render "$INFRA/registry/config.yaml" "$OUTFLOW_STATE/registry/config.yaml"
  chmod 600 "$OUTFLOW_STATE/registry/config.yaml"
}

start_registry() {
  local clean; mapfile -d '' clean < <(env_without_secrets)
  start_detached registry "${clean[@]}" SCHEMA_REGISTRY_BOOTSTRAP_PASSWORD="$OUTFLOW_REGISTRY_PASSWORD" "$BIN/schema-registry-$SCHEMA_REGISTRY_VERSION" -config "$OUTFLOW_STATE/registry/config.yaml"
  wait_healthy registry 60 healthy_registry
  registry_logins
}

healthy_registry() { curl -sf --max-time 2 "$OUTFLOW_REGISTRY_URL/health/ready" >/dev/null; }

# The services' logins in the registry's user table, created or brought in
# line with the environment (the administrator was bootstrapped at the first
# start): outflow-writer may register schemas, outflow-reader only reads.
registry_logins() {
  OUTFLOW_REGISTRY_URL="$OUTFLOW_REGISTRY_URL" python3 - <<'PY' || fail_component registry "could not create its service logins (is OUTFLOW_REGISTRY_PASSWORD the password of the administrator it was first started with?)"
import base64, json, os, sys, urllib.request
url = os.environ["OUTFLOW_REGISTRY_URL"]
admin = base64.b64encode(f'{os.environ["OUTFLOW_REGISTRY_USER"]}:{os.environ["OUTFLOW_REGISTRY_PASSWORD"]}'.encode()).decode()
def call(method, path, body=None):
    request = urllib.request.Request(url + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": "Basic " + admin, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)
users = {u["username"]: u for u in call("GET", "/admin/users")["users"]}
for name, role, secret in [("outflow-writer", "developer", "OUTFLOW_REGISTRY_WRITER_PASSWORD"), ("outflow-reader", "readonly", "OUTFLOW_REGISTRY_READER_PASSWORD")]:
    wanted = {"password": os.environ[secret], "role": role, "enabled": True}
    if name in users:
        call("PUT", f'/admin/users/{users[name]["id"]}', wanted)
    else:
        call("POST", "/admin/users", dict(wanted, username=name))
PY
}

install_mongo() {
  go_build ferretdb "$FERRETDB_MODULE" "$FERRETDB_VERSION"
  mkdir -p "$OUTFLOW_STATE/mongo"
}

start_mongo() {
  # FerretDB reads its PostgreSQL URL from the environment, not the command
  # line. The URL names the views database's owner without a password: FerretDB
  # v1 opens its PostgreSQL connections with the credentials each client sends
  # (SASL PLAIN), so PostgreSQL checks them, and a client that sends none is
  # refused instead of borrowing a login from the URL.
  # Its garbage collector runs only near a 256 MiB heap instead of at every
  # doubling: it spent about a fifth of FerretDB's CPU per view write (1.34 ms
  # -> 1.05 ms per write under the demo at 30 orders/s); its live heap is a few
  # tens of MiB.
  local clean; mapfile -d '' clean < <(env_without_secrets)
  start_detached mongo "${clean[@]}" -u PGPASSWORD -u PGPASSFILE \
    GOGC="${OUTFLOW_MONGO_GOGC:-off}" GOMEMLIMIT="${OUTFLOW_MONGO_GOMEMLIMIT:-256MiB}" \
    FERRETDB_POSTGRESQL_URL="postgres://$OUTFLOW_MONGO_USER@127.0.0.1:$OUTFLOW_PG_PORT/views" \
    "$BIN/ferretdb-$FERRETDB_VERSION" --handler=postgresql \
    --listen-addr="127.0.0.1:$OUTFLOW_MONGO_PORT" --debug-addr="127.0.0.1:$OUTFLOW_MONGO_DEBUG_PORT" \
    --state-dir="$OUTFLOW_STATE/mongo" --telemetry=disable --log-level=warn
  wait_healthy mongo 60 healthy_mongo
}

healthy_mongo() { curl -sf --max-time 2 "http://127.0.0.1:$OUTFLOW_MONGO_DEBUG_PORT/debug/readyz" >/dev/null; }

# ---------------------------------------------------------------- jaeger

install_jaeger() {
  go_build jaeger "$JAEGER_MODULE" "$JAEGER_VERSION"
  mkdir -p "$OUTFLOW_STATE/jaeger"
}

# In memory, bounded: traces are for looking at one order now, not for keeping.
start_jaeger() {
  local clean; mapfile -d '' clean < <(env_without_secrets)
  start_detached jaeger "${clean[@]}" SPAN_STORAGE_TYPE=memory "$BIN/jaeger-$JAEGER_VERSION" \
    --memory.max-traces="${OUTFLOW_JAEGER_MAX_TRACES:-50000}" \
    --collector.otlp.grpc.host-port="127.0.0.1:$OUTFLOW_JAEGER_OTLP_PORT" \
    --collector.otlp.http.host-port="127.0.0.1:$((OUTFLOW_JAEGER_OTLP_PORT + 1))" \
    --query.http-server.host-port="127.0.0.1:$OUTFLOW_JAEGER_QUERY_PORT" \
    --query.grpc-server.host-port="127.0.0.1:$((OUTFLOW_JAEGER_QUERY_PORT - 1))" \
    --admin.http.host-port="127.0.0.1:$((OUTFLOW_JAEGER_QUERY_PORT + 1))" \
    --collector.grpc-server.host-port="127.0.0.1:$((OUTFLOW_JAEGER_OTLP_PORT - 67))" \
    --collector.http-server.host-port="127.0.0.1:$((OUTFLOW_JAEGER_OTLP_PORT - 49))" \
    --log-level=warn
  wait_healthy jaeger 60 healthy_jaeger
}

healthy_jaeger() {
  curl -sf --max-time 2 "http://127.0.0.1:$((OUTFLOW_JAEGER_QUERY_PORT + 1))/" >/dev/null \
    && curl -sf --max-time 2 "$OUTFLOW_JAEGER_URL/api/services" >/dev/null
}

# ---------------------------------------------------------------- Python tools

# A PyPI program in a virtualenv of its own, installed once per version:
# python_tool DIST VERSION; the venv's folder is in $PYTHON_TOOL afterwards.
python_tool() {
  local dist="$1" version="$2" venv="$OUTFLOW_STATE/tools/$1-$2"
  shift 2  # the rest: more requirements of the same virtualenv (name==version)
  PYTHON_TOOL="$venv"
  [ -f "$venv/.complete" ] && return 0
  say "$dist: installing $version from PyPI"
  rm -rf "$venv"; mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv" || die "python3 -m venv failed (apt-get install -y python3-venv)"
  "$venv/bin/pip" install -q "$dist==$version" "$@" >"$venv.log" 2>&1 \
    || { tail -n 20 "$venv.log" >&2; rm -rf "$venv"; die "pip could not install $dist==$version (log: $venv.log)"; }
  touch "$venv/.complete"
}
