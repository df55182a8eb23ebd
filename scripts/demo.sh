#!/usr/bin/env bash
# The main job on a fresh machine: builds Stowaway, backs up a sample directory into a local
# repository through the volume addon, lists the snapshot, restores it and checks the restore.
#
#   bash scripts/demo.sh [DIRECTORY]
#
# DIRECTORY defaults to this repository's docs/ and wit/ (copied into a sample directory).
# The repository, the password file and the restore go to $DEMO_DIR (default
# /tmp/stowaway-demo); run it again to see an incremental backup.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
cargo build --release --locked -p stowaway
stowaway="$PWD/target/release/stowaway"

demo="${DEMO_DIR:-/tmp/stowaway-demo}"
mkdir -p "$demo"
source_dir="${1:-}"
if [ -z "$source_dir" ]; then
  source_dir="$demo/sample"
  mkdir -p "$source_dir"
  cp -a docs wit README.md "$source_dir"/
fi
export STOWAWAY_REPOSITORY="$demo/repo"
export STOWAWAY_PASSWORD_FILE="$demo/password"
if [ ! -s "$STOWAWAY_PASSWORD_FILE" ]; then
  (umask 077; head -c 24 /dev/urandom | base64 > "$STOWAWAY_PASSWORD_FILE")
fi

set -x
[ -f "$STOWAWAY_REPOSITORY/config" ] || "$stowaway" init
"$stowaway" backup "$source_dir" --tag demo
"$stowaway" snapshots
"$stowaway" check --read-data
rm -rf "$demo/restore"
"$stowaway" restore latest --target "$demo/restore"
diff -r "$source_dir" "$demo/restore/$(basename "$source_dir")"
set +x
echo
echo "backup and restore of $source_dir match; repository: $STOWAWAY_REPOSITORY"
echo "password file: $STOWAWAY_PASSWORD_FILE (keep it: without it the data cannot be read)"
