#!/usr/bin/env bash
# The servers the end-to-end tests run against: moto (S3, from PyPI) and Azurite (Azure Blob,
# from npm) for the storage tests, PostgreSQL 15 and MariaDB (Debian packages) for the database
# tests. The tests start them themselves on free ports of 127.0.0.1 (tests/src/servers.rs,
# tests/src/databases.rs).
#
#   bash scripts/servers.sh install      # moto and Azurite into $STOWAWAY_TEST_PREFIX, the
#                                        # databases with apt-get (idempotent, fast when
#                                        # already installed)
#   eval "$(bash scripts/servers.sh env)" # export STOWAWAY_MOTO, STOWAWAY_AZURITE,
#                                        # STOWAWAY_PG_BINDIR, STOWAWAY_MARIADBD and
#                                        # STOWAWAY_MARIADB_INSTALL_DB
#
# STOWAWAY_TEST_PREFIX defaults to /opt/stowaway-test.
set -euo pipefail

PREFIX="${STOWAWAY_TEST_PREFIX:-/opt/stowaway-test}"
MOTO_VERSION="5.2.5"
AZURITE_VERSION="3.35.0"
MOTO="$PREFIX/venv/bin/moto_server"
AZURITE="$PREFIX/azurite/node_modules/.bin/azurite-blob"
DB_PACKAGES=(postgresql-15 postgresql-client-15 mariadb-server mariadb-client)
PG_BINDIR="/usr/lib/postgresql/15/bin"
MARIADBD="/usr/sbin/mariadbd"
MARIADB_INSTALL_DB="/usr/bin/mariadb-install-db"

say() { printf 'servers: %s\n' "$*" >&2; }

install_moto() {
  local stamp="$PREFIX/venv/.moto-$MOTO_VERSION"
  if [[ -x "$MOTO" && -f "$stamp" ]]; then
    say "moto $MOTO_VERSION already installed"
    return
  fi
  command -v python3 >/dev/null || { say "python3 is missing"; exit 1; }
  if ! python3 -m venv --help >/dev/null 2>&1; then
    say "installing python3-venv"
    apt-get update -qq && apt-get install -y -qq python3-venv
  fi
  say "installing moto[server]==$MOTO_VERSION into $PREFIX/venv"
  python3 -m venv "$PREFIX/venv"
  "$PREFIX/venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  "$MOTO" --help >/dev/null
  touch "$stamp"
}

install_azurite() {
  local stamp="$PREFIX/azurite/.azurite-$AZURITE_VERSION"
  if [[ -x "$AZURITE" && -f "$stamp" ]]; then
    say "azurite $AZURITE_VERSION already installed"
    return
  fi
  if ! command -v npm >/dev/null; then
    say "installing nodejs and npm"
    apt-get update -qq && apt-get install -y -qq nodejs npm
  fi
  say "installing azurite@$AZURITE_VERSION into $PREFIX/azurite"
  mkdir -p "$PREFIX/azurite"
  npm install --prefix "$PREFIX/azurite" --no-audit --no-fund --loglevel=error \
    "azurite@$AZURITE_VERSION" >&2
  "$AZURITE" --version >/dev/null
  touch "$stamp"
}

install_databases() {
  local package missing=()
  for package in "${DB_PACKAGES[@]}"; do
    if [[ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" != "install ok installed" ]]; then
      missing+=("$package")
    fi
  done
  if (( ${#missing[@]} == 0 )); then
    say "PostgreSQL 15 and MariaDB already installed"
    return
  fi
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  "$PG_BINDIR/initdb" --version >/dev/null
  "$MARIADBD" --version >/dev/null
}

case "${1:-}" in
  install)
    mkdir -p "$PREFIX"
    install_moto
    install_azurite
    install_databases
    ;;
  env)
    echo "export STOWAWAY_MOTO='$MOTO'"
    echo "export STOWAWAY_AZURITE='$AZURITE'"
    echo "export STOWAWAY_PG_BINDIR='$PG_BINDIR'"
    echo "export STOWAWAY_MARIADBD='$MARIADBD'"
    echo "export STOWAWAY_MARIADB_INSTALL_DB='$MARIADB_INSTALL_DB'"
    ;;
  *)
    echo "usage: $0 install|env" >&2
    exit 2
    ;;
esac
