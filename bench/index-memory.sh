#!/usr/bin/env bash
# Memory per chunk: peak RSS of commands that load the whole index, on a repository of about
# one million chunks, minus the same command on a nearly empty repository, divided by the
# number of blobs. Then the same for Stowaway and restic on a repository of many small files
# (one blob per file, because restic's chunker cannot be set below ~1 MiB).
#
#   bench/index-memory.sh                          # ~1M chunks from 336 MiB, 200k small files
#   DATA_MB=128 SMALL_FILES=50000 bench/index-memory.sh
#
# Options (environment):
#   BENCH_DIR     work directory (default /tmp/stowaway-index-bench)
#   STOWAWAY      stowaway binary (default $CARGO_TARGET_DIR or target, /release/stowaway)
#   DATA_MB       random data for the million-chunk repository, in 8 MiB files (default 336)
#   CHUNK_MIN/CHUNK_AVG/CHUNK_MAX   its chunker sizes in bytes (default 128/256/1024)
#   PACK_SIZE     pack size of the Stowaway repositories in bytes (default 65536: ~190 blobs a pack and ~12k an index
#                 file, about the shape of a real repository; 8 MiB packs would put all the
#                 blobs in one 45 MB index file)
#   SMALL_FILES   files of 512 random bytes for the small-files repositories; 0 skips (default 200000)
#   TOOLS         subset of "stowaway restic" for the small-files part (default both)
#   BASELINE      another stowaway binary (e.g. an older build) to run the same no-change
#                 backup, check and stats with on the same repositories, for a before/after
#   BASELINE_LABEL  how the baseline rows are labelled (default "baseline")
#   KEEP          1 keeps data and repositories (default 0: only the data is kept)
#
# Results: $BENCH_DIR/results.md; logs and `time` lines in $BENCH_DIR/log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/stowaway-index-bench}"
STOWAWAY="${STOWAWAY:-${CARGO_TARGET_DIR:-$ROOT/target}/release/stowaway}"
DATA_MB="${DATA_MB:-336}"
CHUNK_MIN="${CHUNK_MIN:-128}"
CHUNK_AVG="${CHUNK_AVG:-256}"
CHUNK_MAX="${CHUNK_MAX:-1024}"
PACK_SIZE="${PACK_SIZE:-65536}"
SMALL_FILES="${SMALL_FILES:-200000}"
TOOLS="${TOOLS:-stowaway restic}"
KEEP="${KEEP:-0}"
BASELINE="${BASELINE:-}"
BASELINE_LABEL="${BASELINE_LABEL:-baseline}"

PASSWORD="bench-password-not-secret"
export STOWAWAY_PASSWORD="$PASSWORD" RESTIC_PASSWORD="$PASSWORD"
export RESTIC_CACHE_DIR="$BENCH_DIR/cache/restic" LC_ALL=C
# The cheapest KDF the CLI accepts: Argon2's buffer would otherwise be part of every peak.
KDF=(--kdf-memory-kib 8 --kdf-iterations 1)

say() { printf '== %s\n' "$*" >&2; }
die() { printf '\n!!!!!!!! FAIL: %s\n\n' "$*" >&2; exit 1; }

[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install time)"
if [[ ! -x "$STOWAWAY" ]]; then
    say "building stowaway (release)"
    (cd "$ROOT" && cargo build --release -p stowaway)
fi
[[ -x "$STOWAWAY" ]] || die "STOWAWAY=$STOWAWAY is not executable"
[[ -z "$BASELINE" || -x "$BASELINE" ]] || die "BASELINE=$BASELINE is not executable"

mkdir -p "$BENCH_DIR"
BENCH_DIR="$(cd "$BENCH_DIR" && pwd)"
LOG="$BENCH_DIR/log"
REPOS="$BENCH_DIR/repos"
rm -rf "$LOG" "$REPOS" "$BENCH_DIR/cache"
mkdir -p "$LOG" "$REPOS"
cd "$BENCH_DIR"

declare -A RSS WALL # peak RSS in KiB and wall seconds of each timed command

# timed KEY CMD...: runs CMD under /usr/bin/time and records its peak RSS.
timed() {
    local key=$1 rc=0
    shift
    sync
    /usr/bin/time -f '%e %M %U %S' -o "$LOG/$key.time" "$@" >"$LOG/$key.out" 2>"$LOG/$key.err" || rc=$?
    if ((rc != 0)); then
        tail -n 20 "$LOG/$key.err" >&2 || true
        die "$key exited with $rc: $*  (logs: $LOG/$key.{out,err})"
    fi
    local wall rss user sys
    read -r wall rss user sys <"$LOG/$key.time"
    RSS[$key]=$rss
    WALL[$key]=$wall
    say "$(printf '%-34s %8ss  %7s MiB peak RSS  user %ss sys %ss' "$key" "$wall" "$((rss / 1024))" "$user" "$sys")"
}

# ---------------------------------------------------------------- data
# Random data is kept between runs (a marker records what was generated).
make_data() {
    local dir=$1 marker=$2
    shift 2
    if [[ -f "$dir.done" && "$(cat "$dir.done")" == "$marker" ]]; then return; fi
    say "generating $dir ($marker)"
    rm -rf "$dir" "$dir.done"
    mkdir -p "$dir"
    "$@"
    echo "$marker" >"$dir.done"
}
big_files() {
    local i
    for ((i = 0; i < DATA_MB / 8; i++)); do
        head -c $((8 << 20)) /dev/urandom >"$BENCH_DIR/big/f$(printf '%04d' "$i")"
    done
}
small_files() {
    # 1,000 files per directory.
    local d n
    for ((d = 0; d * 1000 < SMALL_FILES; d++)); do
        n=$((SMALL_FILES - d * 1000))
        ((n > 1000)) && n=1000
        mkdir -p "$BENCH_DIR/small/d$(printf '%04d' "$d")"
        head -c $((n * 512)) /dev/urandom | split -b 512 -a 3 -d - "$BENCH_DIR/small/d$(printf '%04d' "$d")/f"
    done
}
make_data big "$DATA_MB MiB" big_files
mkdir -p tiny
echo "one small file" >tiny/file
if ((SMALL_FILES > 0)); then make_data small "$SMALL_FILES x 512 B" small_files; fi

# ---------------------------------------------------------------- stowaway
# stowaway_run NAME DIR [INIT ARGS...]: init, first backup, no-change backup, check, stats.
stowaway_run() {
    local name=$1 dir=$2
    shift 2
    local repo="$REPOS/$name"
    "$STOWAWAY" -r "$repo" init "${KDF[@]}" "$@" >"$LOG/$name.init.out" 2>&1 || die "init $name failed"
    timed "$name.backup" "$STOWAWAY" -r "$repo" -q backup "$dir"
    timed "$name.nochange" "$STOWAWAY" -r "$repo" -q backup "$dir"
    timed "$name.check" "$STOWAWAY" -r "$repo" check
    timed "$name.stats" "$STOWAWAY" -r "$repo" --json stats
    if [[ -n "$BASELINE" ]]; then
        timed "$name.base.nochange" "$BASELINE" -r "$repo" -q backup "$dir"
        timed "$name.base.check" "$BASELINE" -r "$repo" check
        timed "$name.base.stats" "$BASELINE" -r "$repo" --json stats
    fi
}
stowaway_blobs() {
    grep -o '"\(data\|tree\)_blobs": *[0-9]*' "$LOG/$1.stats.out" | awk -F: '{ n += $2 } END { print n + 0 }'
}

CHUNKS=(--chunk-min "$CHUNK_MIN" --chunk-avg "$CHUNK_AVG" --chunk-max "$CHUNK_MAX" --pack-size "$PACK_SIZE")
say "stowaway, $DATA_MB MiB in chunks of $CHUNK_MIN/$CHUNK_AVG/$CHUNK_MAX bytes, packs of $PACK_SIZE"
stowaway_run stowaway-big big "${CHUNKS[@]}"
stowaway_run stowaway-big-empty tiny "${CHUNKS[@]}"

SMALL=0
[[ " $TOOLS " == *" stowaway "* ]] && ((SMALL_FILES > 0)) && SMALL=1
if ((SMALL)); then
    say "stowaway, $SMALL_FILES files of 512 bytes"
    stowaway_run stowaway-small small --pack-size "$PACK_SIZE"
    stowaway_run stowaway-small-empty tiny --pack-size "$PACK_SIZE"
fi

# ---------------------------------------------------------------- restic
RESTIC=0
[[ " $TOOLS " == *" restic "* ]] && ((SMALL_FILES > 0)) && command -v restic >/dev/null && RESTIC=1
if [[ " $TOOLS " == *" restic "* ]] && ((SMALL_FILES > 0 && RESTIC == 0)); then
    say "restic not installed: skipping it"
fi
restic_run() {
    local name=$1 dir=$2 repo="$REPOS/$1"
    restic -r "$repo" init --repository-version 2 >"$LOG/$name.init.out" 2>&1 || die "restic init $name failed"
    timed "$name.backup" restic -r "$repo" -q backup "$dir"
    timed "$name.nochange" restic -r "$repo" -q backup "$dir"
    timed "$name.check" restic -r "$repo" check
    timed "$name.stats" restic -r "$repo" list blobs
}
if ((RESTIC)); then
    say "restic $(restic version | cut -d' ' -f2), $SMALL_FILES files of 512 bytes"
    restic_run restic-small small
    restic_run restic-small-empty tiny
fi

# ---------------------------------------------------------------- report
{
    echo "# Index memory per chunk"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Peak RSS (\`/usr/bin/time\` %M); per blob = (peak − peak on a nearly empty repository) / blobs."
    echo
    echo "| repository | blobs | command | wall s | peak RSS MiB | empty repo MiB | bytes per blob |"
    echo "| --- | ---: | --- | ---: | ---: | ---: | ---: |"
    row() { # row LABEL NAME BLOBS [PREFIX]
        local label=$1 name=$2 blobs=$3 pre=${4:-} cmd
        for cmd in nochange check stats; do
            local full=${RSS[$name.$pre$cmd]} empty=${RSS[$name-empty.$pre$cmd]}
            local what=$cmd
            [[ $cmd == nochange ]] && what="no-change backup"
            [[ $cmd == stats && $name == restic* ]] && what="list blobs (index only)"
            [[ $cmd == stats && $name == stowaway* ]] && what="stats (index only)"
            printf '| %s | %s | %s | %s | %d | %d | %d |\n' "$label" "$blobs" "$what" \
                "${WALL[$name.$pre$cmd]}" "$((full / 1024))" "$((empty / 1024))" "$(((full - empty) * 1024 / blobs))"
        done
    }
    row "Stowaway, $DATA_MB MiB, chunks $CHUNK_MIN/$CHUNK_AVG/$CHUNK_MAX, packs $PACK_SIZE" stowaway-big "$(stowaway_blobs stowaway-big)"
    if [[ -n "$BASELINE" ]]; then
        row "$BASELINE_LABEL, same repository" stowaway-big "$(stowaway_blobs stowaway-big)" base.
    fi
    ((SMALL)) && row "Stowaway, $SMALL_FILES × 512 B files" stowaway-small "$(stowaway_blobs stowaway-small)"
    ((SMALL)) && [[ -n "$BASELINE" ]] && row "$BASELINE_LABEL, same repository" stowaway-small "$(stowaway_blobs stowaway-small)" base.
    ((RESTIC)) && row "restic, $SMALL_FILES × 512 B files" restic-small "$(wc -l <"$LOG/restic-small.stats.out")"
    true
} >"$BENCH_DIR/results.md"
cat "$BENCH_DIR/results.md"

if ((KEEP == 0)); then rm -rf "$REPOS" "$BENCH_DIR/cache"; fi
