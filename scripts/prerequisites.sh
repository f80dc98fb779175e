# Installs the Debian packages Outflow needs, when something is missing.
# Sourced by scripts/up and scripts/test; as root it runs apt-get, otherwise it
# prints the one command to run.

DEBIAN_PACKAGES=(
  "postgresql-$POSTGRES_MAJOR" postgresql-client
  openjdk-17-jdk-headless maven
  curl iproute2 python3 util-linux procps
  # scripts/check-k8s keeps kubernetes-validate in a virtualenv of its own.
  python3-venv
  # rdkafka's bundled librdkafka: cmake and the libraries it links.
  build-essential cmake pkg-config libssl-dev libcurl4-openssl-dev libsasl2-dev zlib1g-dev libzstd-dev
  # The monitor's page is tested in a real headless browser (tests/tests/monitor.rs).
  chromium
  # promtool checks every /metrics page and the alerting rules; the test starts
  # Prometheus itself against the running stack (tests/tests/prometheus.rs).
  prometheus
)

ensure_prerequisites() {
  local missing=() pkg
  command -v dpkg-query >/dev/null 2>&1 || return 0 # not Debian: the README lists what to install
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  # Java, Maven and Go may come from elsewhere than Debian (SDK installs): accept them.
  if command -v java >/dev/null 2>&1; then missing=("${missing[@]/openjdk-17-jdk-headless}"); fi
  if command -v mvn >/dev/null 2>&1; then missing=("${missing[@]/maven}"); fi
  read -r -a missing <<< "${missing[*]}"
  if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
      die "missing Debian packages: ${missing[*]}. Install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
    fi
    say "installing missing Debian packages: ${missing[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >"${TMPDIR:-/tmp}/outflow-apt.log" 2>&1 \
      || { tail -n 30 "${TMPDIR:-/tmp}/outflow-apt.log" >&2; die "apt-get could not install: ${missing[*]}"; }
  fi
  # The Debian PostgreSQL package starts its own cluster on 5432; Outflow runs
  # its own cluster and leaves that one alone.
  command -v go >/dev/null 2>&1 || die "Go is missing: install Go 1.21 or newer (it fetches the toolchain the registry needs from the Go module proxy)"
  command -v cargo >/dev/null 2>&1 || die "Rust is missing: install it with rustup (cargo 1.85 or newer)"
}
