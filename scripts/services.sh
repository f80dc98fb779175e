# Outflow's own services: built in release mode, started after the
# infrastructure, checked on /readyz. Sourced after lib.sh and infra.sh.

export OUTFLOW_ORDERS_PORT="${OUTFLOW_ORDERS_PORT:-7101}"
export OUTFLOW_INVENTORY_PORT="${OUTFLOW_INVENTORY_PORT:-7102}"
export OUTFLOW_PAYMENTS_PORT="${OUTFLOW_PAYMENTS_PORT:-7103}"
export OUTFLOW_SHIPPING_PORT="${OUTFLOW_SHIPPING_PORT:-7104}"
export OUTFLOW_NOTIFICATIONS_PORT="${OUTFLOW_NOTIFICATIONS_PORT:-7105}"
export OUTFLOW_SANDBOX_PORT="${OUTFLOW_SANDBOX_PORT:-7199}"
export OUTFLOW_CARRIER_SANDBOX_PORT="${OUTFLOW_CARRIER_SANDBOX_PORT:-7198}"
export OUTFLOW_CARRIER_CALLBACK_URL="${OUTFLOW_CARRIER_CALLBACK_URL:-http://127.0.0.1:$OUTFLOW_SHIPPING_PORT/v1/shipments/callbacks}"
export OUTFLOW_CARRIER_URL="${OUTFLOW_CARRIER_URL:-http://127.0.0.1:$OUTFLOW_CARRIER_SANDBOX_PORT}"
export OUTFLOW_SANDBOX_NOTIFY_URL="${OUTFLOW_SANDBOX_NOTIFY_URL:-http://127.0.0.1:$OUTFLOW_PAYMENTS_PORT/v1/payments/notifications}"

# The sandbox keeps its transactions across restarts, as a real provider does.
export OUTFLOW_SANDBOX_JOURNAL="${OUTFLOW_SANDBOX_JOURNAL:-$OUTFLOW_STATE/sandbox/journal.jsonl}"
export OUTFLOW_SANDBOX_FAILURE_RATE="${OUTFLOW_SANDBOX_FAILURE_RATE:-0.0}"
# The carrier keeps its shipments across restarts too; by default every one is delivered.
export OUTFLOW_CARRIER_JOURNAL="${OUTFLOW_CARRIER_JOURNAL:-$OUTFLOW_STATE/carrier/journal.jsonl}"
export OUTFLOW_CARRIER_FAILURE_RATE="${OUTFLOW_CARRIER_FAILURE_RATE:-0.0}"
# Customers' webhooks: in development they may point at this machine (a
# production start refuses that), and a failing receiver is retried within
# seconds rather than hours, its delivery parked after the 5th attempt.
export OUTFLOW_WEBHOOKS__ALLOW_PRIVATE_NETWORKS="${OUTFLOW_WEBHOOKS__ALLOW_PRIVATE_NETWORKS:-true}"
export OUTFLOW_DISPATCH__ALLOW_PRIVATE_NETWORKS="${OUTFLOW_DISPATCH__ALLOW_PRIVATE_NETWORKS:-true}"
export OUTFLOW_DISPATCH__TIMEOUT_MS="${OUTFLOW_DISPATCH__TIMEOUT_MS:-2000}"
export OUTFLOW_DISPATCH__MAX_ATTEMPTS="${OUTFLOW_DISPATCH__MAX_ATTEMPTS:-5}"
export OUTFLOW_DISPATCH__FIRST_RETRY_MS="${OUTFLOW_DISPATCH__FIRST_RETRY_MS:-500}"
export OUTFLOW_DISPATCH__MAX_RETRY_MS="${OUTFLOW_DISPATCH__MAX_RETRY_MS:-4000}"
export OUTFLOW_PROVIDER_URL="${OUTFLOW_PROVIDER_URL:-http://127.0.0.1:$OUTFLOW_SANDBOX_PORT}"
# The saga timeout: a payment still pending after this fails as expired.
export OUTFLOW_PAYMENT_DEADLINE_MS="${OUTFLOW_PAYMENT_DEADLINE_MS:-20000}"
# The monitor reads commit-to-view latency from the view consumer's histogram.
export OUTFLOW_VIEWS_METRICS_URL="${OUTFLOW_VIEWS_METRICS_URL:-http://127.0.0.1:${OUTFLOW_VIEWS_CONSUMER_PORT:-7124}/metrics}"

SERVICE_COMPONENTS=(orders inventory payments shipping notifications sandbox carrier inventory-consumer payments-consumer orders-consumer shipping-consumer views-consumer notifications-consumer query monitor)
COMPONENTS=("${INFRA_COMPONENTS[@]}" "${SERVICE_COMPONENTS[@]}")
RELEASE="$ROOT/target/release"

service_port() {
  case "$1" in
    orders) echo "$OUTFLOW_ORDERS_PORT" ;;
    inventory) echo "$OUTFLOW_INVENTORY_PORT" ;;
    payments) echo "$OUTFLOW_PAYMENTS_PORT" ;;
    shipping) echo "$OUTFLOW_SHIPPING_PORT" ;;
    notifications) echo "$OUTFLOW_NOTIFICATIONS_PORT" ;;
    sandbox) echo "$OUTFLOW_SANDBOX_PORT" ;;
    carrier) echo "$OUTFLOW_CARRIER_SANDBOX_PORT" ;;
    inventory-consumer) echo "${OUTFLOW_INVENTORY_CONSUMER_PORT:-7121}" ;;
    payments-consumer) echo "${OUTFLOW_PAYMENTS_CONSUMER_PORT:-7122}" ;;
    orders-consumer) echo "${OUTFLOW_ORDERS_CONSUMER_PORT:-7123}" ;;
    views-consumer) echo "${OUTFLOW_VIEWS_CONSUMER_PORT:-7124}" ;;
    notifications-consumer) echo "${OUTFLOW_NOTIFICATIONS_CONSUMER_PORT:-7125}" ;;
    shipping-consumer) echo "${OUTFLOW_SHIPPING_CONSUMER_PORT:-7126}" ;;
    query) echo "${OUTFLOW_QUERY_PORT:-7110}" ;;
    monitor) echo "${OUTFLOW_MONITOR_PORT:-7190}" ;;
  esac
}

service_binary() {
  case "$1" in
    sandbox) echo "$RELEASE/outflow-provider-sandbox" ;;
    carrier) echo "$RELEASE/outflow-carrier-sandbox" ;;
    *) echo "$RELEASE/outflow-$1" ;;
  esac
}

component_port() { local p; p="$(port_of "$1")"; [ -n "$p" ] && echo "$p" || service_port "$1"; }

# Calls NAME's own hook (install_postgres, ...) or the services' shared one.
component() {
  local hook="$1" name="$2"
  if declare -F "${hook}_$name" >/dev/null; then "${hook}_$name"; else "${hook}_service" "$name"; fi
}

SERVICES_BUILT=0
install_service() {
  [ "$SERVICES_BUILT" = 1 ] && return 0
  require_tool cargo "install Rust with rustup"
  say "services: cargo build --release (the first build takes a few minutes)"
  mkdir -p "$OUTFLOW_STATE/build"
  local packages=() name
  # Each service's binary is named after its package.
  for name in "${SERVICE_COMPONENTS[@]}"; do packages+=(-p "$(basename "$(service_binary "$name")")"); done
  (cd "$ROOT" && cargo build --release --locked "${packages[@]}") \
    >"$OUTFLOW_STATE/build/cargo.log" 2>&1 \
    || { tail -n 40 "$OUTFLOW_STATE/build/cargo.log" >&2; die "services: the release build failed (log: $OUTFLOW_STATE/build/cargo.log)"; }
  SERVICES_BUILT=1
}

start_service() {
  local name="$1" command
  mapfile -d '' command < <(service_command "$name")
  OUTFLOW_HTTP__PORT="$(service_port "$name")" start_detached "$name" "${command[@]}"
  wait_healthy "$name" 60 healthy_service "$name"
}

# A service's command line (NUL-separated): `env` with the secrets the service
# uses and without every other one, then its binary. No service holds the
# PostgreSQL administrator's password or another service's.
service_command() {
  local name="$1" password keep=()
  case "$name" in orders|inventory|payments|shipping|notifications|query|monitor) keep+=(OUTFLOW_JWT_SECRET) ;; esac
  case "$name" in payments|payments-consumer|sandbox) keep+=(OUTFLOW_PROVIDER_SERVER_KEY) ;; esac
  case "$name" in shipping|shipping-consumer|carrier) keep+=(OUTFLOW_CARRIER_KEY) ;; esac
  env_without_secrets "${keep[@]}"
  printf '%s\0' -u OUTFLOW_PG_USER -u OUTFLOW_REGISTRY_USER -u OUTFLOW_KAFKA_USER -u OUTFLOW_KAFKA_ADMIN_USER
  case "$name" in
    orders|inventory|payments|shipping|notifications|orders-consumer|inventory-consumer|payments-consumer|shipping-consumer|notifications-consumer)
      password="OUTFLOW_PG_$(tr 'a-z-' 'A-Z_' <<< "$name")_PASSWORD"
      printf '%s\0' "OUTFLOW_DATABASE__URL=postgres://outflow_${name//-/_}:$(url_encode "${!password}")@127.0.0.1:$OUTFLOW_PG_PORT/${name%-consumer}" ;;
    monitor) printf '%s\0' OUTFLOW_PG_USER=outflow_monitor "OUTFLOW_PG_PASSWORD=$OUTFLOW_PG_MONITOR_PASSWORD" "OUTFLOW_CONNECT_PASSWORD=$OUTFLOW_CONNECT_PASSWORD" ;;
    views-consumer|query) printf '%s\0' "OUTFLOW_MONGO_PASSWORD=$OUTFLOW_MONGO_PASSWORD" ;;
  esac
  case "$name" in notifications-consumer) printf '%s\0' "OUTFLOW_MONGO_PASSWORD=$OUTFLOW_MONGO_PASSWORD" ;; esac
  # The registry: those that emit events may register their schemas, the others only read.
  case "$name" in
    orders|inventory|payments|shipping|orders-consumer|inventory-consumer|payments-consumer|shipping-consumer)
      printf '%s\0' OUTFLOW_REGISTRY_USER=outflow-writer "OUTFLOW_REGISTRY_PASSWORD=$OUTFLOW_REGISTRY_WRITER_PASSWORD" ;;
    views-consumer|notifications-consumer)
      printf '%s\0' OUTFLOW_REGISTRY_USER=outflow-reader "OUTFLOW_REGISTRY_PASSWORD=$OUTFLOW_REGISTRY_READER_PASSWORD" ;;
  esac
  # Kafka: each consumer as the principal of its group, the monitor as its own.
  case "$name" in
    *-consumer)
      password="OUTFLOW_KAFKA_$(tr 'a-z' 'A-Z' <<< "${name%-consumer}")_PASSWORD"
      printf '%s\0' "OUTFLOW_KAFKA_USER=outflow-${name%-consumer}" "OUTFLOW_KAFKA_PASSWORD=${!password}" ;;
    monitor) printf '%s\0' OUTFLOW_KAFKA_USER=outflow-monitor "OUTFLOW_KAFKA_PASSWORD=$OUTFLOW_KAFKA_MONITOR_PASSWORD" ;;
  esac
  printf '%s\0' "$(service_binary "$name")"
}

url_encode() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

healthy_service() {
  local path=/readyz
  case "$1" in *-consumer|sandbox|carrier) path=/healthz ;; esac
  curl -sf --max-time 2 "http://127.0.0.1:$(service_port "$1")$path" >/dev/null
}

# A service whose binary was rebuilt after it started runs old code.
service_stale() {
  local name="$1" pidfile; pidfile="$(pid_file "$name")"
  [ -f "$pidfile" ] && [ "$(service_binary "$name")" -nt "$pidfile" ]
}
