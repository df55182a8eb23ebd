#!/usr/bin/env bash
# Backup and restore to an S3 server (moto on loopback) against restic to the same server, in
# one run.
#
#   bench/s3.sh
#   CORPUS=/tmp/stowaway-bench/corpus CORPUS_MAX_MB=600 bench/s3.sh
#
# The corpus defaults to the one bench/peers.sh builds (/tmp/stowaway-bench/corpus); if it is
# missing, about CORPUS_MAX_MB of /usr/lib/x86_64-linux-gnu and /usr/share is copied. moto keeps
# objects in memory and is single-threaded Python: it is the slowest part of both runs, so the
# ratios compare the clients' request patterns more than their CPU cost.
#
# Exits 0 whatever the ratios; non-zero when a tool fails or a restore differs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/stowaway-bench-s3}"
STOWAWAY="${STOWAWAY:-$ROOT/target/release/stowaway}"
CORPUS="${CORPUS:-/tmp/stowaway-bench/corpus}"
CORPUS_MAX_MB="${CORPUS_MAX_MB:-1400}"

say() { printf '== %s\n' "$*" >&2; }
die() { printf '\n!!!!!!!! FAIL: %s\n\n' "$*" >&2; exit 1; }

command -v restic >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q restic >/dev/null
[[ -x /usr/bin/time ]] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null
bash "$ROOT/scripts/servers.sh" install >/dev/null
eval "$(bash "$ROOT/scripts/servers.sh" env)"
if [[ ! -x "$STOWAWAY" ]]; then
    say "building stowaway (release)"
    (cd "$ROOT" && cargo build --release -p stowaway)
fi

mkdir -p "$BENCH_DIR"
BENCH_DIR="$(cd "$BENCH_DIR" && pwd)"
LOG="$BENCH_DIR/log"
rm -rf "$LOG" "$BENCH_DIR/restore-"*
mkdir -p "$LOG"
if [[ ! -d "$CORPUS" ]]; then
    CORPUS="$BENCH_DIR/corpus"
    if [[ ! -d "$CORPUS" ]]; then
        say "building a corpus of about $CORPUS_MAX_MB MB"
        mkdir -p "$CORPUS.tmp"
        for src in /usr/lib/x86_64-linux-gnu /usr/share; do
            [[ $(du -sm "$CORPUS.tmp" | cut -f1) -lt $CORPUS_MAX_MB ]] || break
            cp -a "$src" "$CORPUS.tmp/"
        done
        mv "$CORPUS.tmp" "$CORPUS"
    fi
fi
say "corpus $CORPUS: $(du -sm "$CORPUS" | cut -f1) MB, $(find "$CORPUS" -type f | wc -l) files"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$STOWAWAY_MOTO" -H 127.0.0.1 -p "$PORT" >"$LOG/moto.log" 2>&1 &
MOTO_PID=$!
trap 'kill $MOTO_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
curl -s -f -X PUT "http://127.0.0.1:$PORT/bench" >/dev/null || die "creating the bucket"

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
export STOWAWAY_PASSWORD=bench RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$BENCH_DIR/cache/restic"
export STOWAWAY_REPOSITORY="s3://bench/stowaway?endpoint=http://127.0.0.1:$PORT&path-style=true"
export RESTIC_REPOSITORY="s3:http://127.0.0.1:$PORT/bench/restic"
rm -rf "$RESTIC_CACHE_DIR"

declare -A T
timed() {
    local key=$1
    shift
    sync
    /usr/bin/time -f '%e %M' -o "$LOG/$key.time" "$@" >"$LOG/$key.out" 2>"$LOG/$key.err" ||
        die "$key failed: $* (see $LOG/$key.err)"
    T[$key]=$(tail -n 1 "$LOG/$key.time")
    say "$(printf '%-18s %8ss %7s MiB' "$key" ${T[$key]% *} $((${T[$key]#* } / 1024)))"
}
warm() { tar -C "$(dirname "$CORPUS")" -cf - "$(basename "$CORPUS")" | cat >/dev/null; }

"$STOWAWAY" -q init >/dev/null
restic -q init >/dev/null
parent="$(dirname "$CORPUS")" name="$(basename "$CORPUS")"
warm
timed stowaway.backup env -C "$parent" "$STOWAWAY" -q backup "$name"
warm
timed restic.backup env -C "$parent" restic -q backup "$name"
mkdir -p "$BENCH_DIR/restore-stowaway" "$BENCH_DIR/restore-restic"
timed stowaway.restore "$STOWAWAY" -q restore latest --target "$BENCH_DIR/restore-stowaway"
timed restic.restore restic -q restore latest --target "$BENCH_DIR/restore-restic"
diff -r --no-dereference "$CORPUS" "$BENCH_DIR/restore-stowaway/$name" >/dev/null || die "stowaway restore differs"
restored=$(find "$BENCH_DIR/restore-restic" -maxdepth 8 -type d -name "$name" -print -quit)
diff -r --no-dereference "$CORPUS" "$restored" >/dev/null || die "restic restore differs"
rm -rf "$BENCH_DIR/restore-"*

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }
{
    echo "| moto S3 on loopback | stowaway | restic | ratio |"
    echo "|---|---|---|---|"
    row "backup (s)" "${T[stowaway.backup]% *}" "${T[restic.backup]% *}"
    row "restore (s)" "${T[stowaway.restore]% *}" "${T[restic.restore]% *}"
    row "backup peak RSS (MiB)" $((${T[stowaway.backup]#* } / 1024)) $((${T[restic.backup]#* } / 1024))
    row "restore peak RSS (MiB)" $((${T[stowaway.restore]#* } / 1024)) $((${T[restic.restore]#* } / 1024))
} | tee "$BENCH_DIR/results.md"
