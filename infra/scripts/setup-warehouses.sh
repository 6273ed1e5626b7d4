#!/usr/bin/env bash
# Installs the warehouse emulators and servers the warehouse tests start (tests/src/warehouses/),
# idempotently, with nothing downloaded at test time:
#   - .venv-snowflake: fakesnow server (Snowflake's connector protocol)
#   - .venv-bigquery:  bqemulator (BigQuery REST + Storage Read/Write gRPC), a venv of its own
#                      because its cryptography pin conflicts with fakesnow's connector
#   - .venv:           chdb (a current ClickHouse engine in-process) and the benchmark peers
#                      (DuckDB with sqlite_scanner, drt)
#   - DuckDB's spatial and sqlite_scanner extensions, copied from their PyPI packages into
#     ~/.duckdb/extensions (DuckDB would otherwise download them, and bqemulator needs spatial)
#   - clickhouse-server (Debian's 18.16) through apt-get when missing
#   - MariaDB server and client through apt-get when missing (the machine normally has them)
# Versions are pinned in infra/local/requirements-{snowflake,bigquery,peers}.txt.
# Safe to run again; a second run takes seconds. Prints what it does; fails with a message
# naming what could not be installed.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

log() { printf '==> %s\n' "$*"; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

duckdb_version=1.5.5
extension_dir="$HOME/.duckdb/extensions/v$duckdb_version/linux_amd64"

# venv DIR REQUIREMENTS...: creates DIR when missing, then installs the pinned requirements.
# pip returns in about a second when everything is already installed.
venv() {
  local dir="$1"
  shift
  if [ ! -x "$dir/bin/python" ]; then
    log "creating $dir"
    python3 -m venv "$dir" || die "cannot create the virtualenv $dir (python3 -m venv)"
    "$dir/bin/pip" install --quiet --upgrade pip || die "cannot upgrade pip in $dir"
  fi
  local args=()
  for req in "$@"; do args+=(-r "$req"); done
  log "installing $* into $dir if missing"
  "$dir/bin/pip" install --quiet --disable-pip-version-check "${args[@]}" ||
    die "pip could not install $* into $dir; see pip's message above"
}

# extension VENV PACKAGE_DIR NAME: copies NAME.duckdb_extension out of the PyPI package into
# DuckDB's extension folder, where `INSTALL NAME` then finds it without a download.
extension() {
  local venv_dir="$1" package="$2" name="$3"
  local src
  src="$("$venv_dir/bin/python" -c "import $package, os; print(os.path.dirname($package.__file__))")/extensions/v$duckdb_version/$name.duckdb_extension"
  [ -f "$src" ] || die "$src is missing: reinstall $package==$duckdb_version in $venv_dir"
  if ! cmp -s "$src" "$extension_dir/$name.duckdb_extension"; then
    log "copying DuckDB's $name extension into $extension_dir"
    mkdir -p "$extension_dir"
    cp "$src" "$extension_dir/$name.duckdb_extension.tmp"
    mv "$extension_dir/$name.duckdb_extension.tmp" "$extension_dir/$name.duckdb_extension"
  fi
}

# apt_install PACKAGE...: installs Debian packages, refreshing the package lists only when the
# first attempt fails (a new machine's lists may be empty or stale).
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get is not available to install $*; install them by hand"
  log "installing $* with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q "$@" >/dev/null; then
    apt-get update -q >/dev/null || die "apt-get update failed; cannot install $*"
    apt-get install -y -q "$@" >/dev/null || die "apt-get could not install $*"
  fi
}

command -v python3 >/dev/null 2>&1 || die "python3 is required to create the warehouse virtualenvs"

venv .venv-snowflake infra/local/requirements-snowflake.txt
[ -x .venv-snowflake/bin/fakesnow ] || die ".venv-snowflake has no fakesnow command after install"

venv .venv-bigquery infra/local/requirements-bigquery.txt
[ -x .venv-bigquery/bin/bqemulator ] || die ".venv-bigquery has no bqemulator command after install"
extension .venv-bigquery duckdb_extension_spatial spatial

# Resolved together with requirements.txt, so a conflict with moto's tools fails here.
venv .venv infra/local/requirements.txt infra/local/requirements-peers.txt
extension .venv duckdb_extension_sqlite_scanner sqlite_scanner

log "checking that DuckDB loads its extensions offline"
.venv-bigquery/bin/python -c "import duckdb; c = duckdb.connect(); c.execute('SET autoinstall_known_extensions = false'); c.execute('INSTALL spatial'); c.execute('LOAD spatial')" ||
  die "DuckDB cannot load the spatial extension from $extension_dir"
.venv/bin/python -c "import duckdb; c = duckdb.connect(); c.execute('SET autoinstall_known_extensions = false'); c.execute('INSTALL sqlite_scanner'); c.execute('LOAD sqlite_scanner')" ||
  die "DuckDB cannot load the sqlite_scanner extension from $extension_dir"

clickhouse=""
for candidate in "$(command -v clickhouse-server 2>/dev/null || true)" /usr/sbin/clickhouse-server /usr/bin/clickhouse-server; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then
    clickhouse="$candidate"
    break
  fi
done
if [ -z "$clickhouse" ]; then
  apt_install clickhouse-server
  [ -x /usr/sbin/clickhouse-server ] || die "clickhouse-server is still missing after apt-get install"
fi

if [ ! -x /usr/sbin/mariadbd ] || ! command -v mariadb >/dev/null 2>&1; then
  apt_install mariadb-server mariadb-client
fi

log "warehouse emulators ready"
