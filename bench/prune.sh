#!/usr/bin/env bash
# Prune against restic's, on the same 30-snapshot history, in one run.
#
#   bench/prune.sh
#   BENCH_DIR=/scratch/p SNAPSHOTS=30 SOURCE_MB=400 bench/prune.sh
#
# Builds a corpus (SOURCE_MB of /usr/share, copied once), then SNAPSHOTS rounds of: change the
# corpus a little (rewrite 2% of the files, delete 0.5%, add 2 MB of new files), back up with
# both tools. Then both forget all but the last KEEP_LAST snapshots and prune with the same
# max-unused (5%). Stowaway prunes in two phases; both are timed (grace 0: mark and repack,
# then delete), and their sum is compared with one `restic prune`. Peak RSS is the larger of
# the two phases. The surviving snapshots are restored and compared with the corpus by both.
#
# Exits 0 whatever the ratios; non-zero when a tool fails or a restore differs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/stowaway-bench-prune}"
STOWAWAY="${STOWAWAY:-$ROOT/target/release/stowaway}"
SNAPSHOTS="${SNAPSHOTS:-30}"
KEEP_LAST="${KEEP_LAST:-10}"
SOURCE_MB="${SOURCE_MB:-400}"
SOURCE="${SOURCE:-/usr/share}"

export STOWAWAY_PASSWORD=bench RESTIC_PASSWORD=bench LC_ALL=C
export RESTIC_CACHE_DIR="$BENCH_DIR/cache/restic"
say() { printf '== %s\n' "$*" >&2; }
die() { printf '\n!!!!!!!! FAIL: %s\n\n' "$*" >&2; exit 1; }

command -v restic >/dev/null || { say "installing restic"; DEBIAN_FRONTEND=noninteractive apt-get install -y -q restic >/dev/null; }
[[ -x /usr/bin/time ]] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null
if [[ ! -x "$STOWAWAY" ]]; then
    say "building stowaway (release)"
    (cd "$ROOT" && cargo build --release -p stowaway)
fi

mkdir -p "$BENCH_DIR"
BENCH_DIR="$(cd "$BENCH_DIR" && pwd)"
DATA="$BENCH_DIR/data"
LOG="$BENCH_DIR/log"
rm -rf "$DATA" "$BENCH_DIR/repo-stowaway" "$BENCH_DIR/repo-restic" "$BENCH_DIR/restore-"* "$LOG"
mkdir -p "$LOG" "$DATA"
say "copying about $SOURCE_MB MB of $SOURCE"
# Whole top-level directories until the size is reached (deterministic order).
for d in $(ls "$SOURCE" | sort); do
    [[ $(du -sm "$DATA" | cut -f1) -lt $SOURCE_MB ]] || break
    cp -a "$SOURCE/$d" "$DATA/" 2>/dev/null || true
done
chmod -R u+w "$DATA"
say "corpus: $(du -sm "$DATA" | cut -f1) MB, $(find "$DATA" -type f | wc -l) files"

declare -A T # T[key] = "seconds rss_kib"
timed() {
    local key=$1
    shift
    /usr/bin/time -f '%e %M' -o "$LOG/$key.time" "$@" >"$LOG/$key.out" 2>"$LOG/$key.err" ||
        die "$key failed: $* (see $LOG/$key.err)"
    T[$key]=$(tail -n 1 "$LOG/$key.time")
    say "$(printf '%-20s %8ss %7s MiB' "$key" ${T[$key]% *} $((${T[$key]#* } / 1024)))"
}

# One round of changes, deterministic per round.
mutate() {
    local round=$1 files n
    mapfile -t files < <(find "$DATA" -type f | sort)
    n=${#files[@]}
    for ((i = 0; i < n / 50; i++)); do
        f=${files[$(((i * 7919 + round * 104729) % n))]}
        [[ -f "$f" ]] || continue
        head -c "$(stat -c %s "$f")" /dev/urandom >"$f.new" && mv "$f.new" "$f"
    done
    for ((i = 0; i < n / 200; i++)); do
        rm -f "${files[$(((i * 15485863 + round * 32452843) % n))]}"
    done
    mkdir -p "$DATA/new"
    head -c $((2 * 1024 * 1024)) /dev/urandom >"$DATA/new/round-$round"
}

S=(env -C "$BENCH_DIR" "$STOWAWAY" -q -r "$BENCH_DIR/repo-stowaway")
R=(env -C "$BENCH_DIR" restic -q -r "$BENCH_DIR/repo-restic")
"${S[@]}" init >/dev/null
"${R[@]}" init >/dev/null
say "building a history of $SNAPSHOTS snapshots"
for ((round = 1; round <= SNAPSHOTS; round++)); do
    ((round == 1)) || mutate "$round"
    "${S[@]}" backup data >/dev/null 2>"$LOG/backup.err" || die "stowaway backup $round"
    "${R[@]}" backup data >/dev/null 2>>"$LOG/backup.err" || die "restic backup $round"
done
say "stowaway repository: $(du -sm "$BENCH_DIR/repo-stowaway" | cut -f1) MB, restic: $(du -sm "$BENCH_DIR/repo-restic" | cut -f1) MB"

"${S[@]}" forget --keep-last "$KEEP_LAST" >/dev/null || die "stowaway forget"
"${R[@]}" forget --keep-last "$KEEP_LAST" >/dev/null || die "restic forget"
sync
timed stowaway.mark "${S[@]}" prune --grace 0s --clock-skew 0s --max-unused 5%
timed stowaway.delete "${S[@]}" prune --grace 0s --clock-skew 0s --max-unused 5%
timed restic.prune "${R[@]}" prune --max-unused 5%
S_SIZE=$(du -sm "$BENCH_DIR/repo-stowaway" | cut -f1)
R_SIZE=$(du -sm "$BENCH_DIR/repo-restic" | cut -f1)

"${S[@]}" check --read-data >/dev/null || die "stowaway check after prune"
mkdir -p "$BENCH_DIR/restore-stowaway" "$BENCH_DIR/restore-restic"
"${S[@]}" restore latest --target "$BENCH_DIR/restore-stowaway" >/dev/null || die "stowaway restore"
"${R[@]}" restore latest --target "$BENCH_DIR/restore-restic" >/dev/null || die "restic restore"
diff -r --no-dereference "$DATA" "$BENCH_DIR/restore-stowaway/data" >/dev/null || die "stowaway restore differs"
restored_restic=$(find "$BENCH_DIR/restore-restic" -maxdepth 6 -type d -name data -print -quit)
diff -r --no-dereference "$DATA" "$restored_restic" >/dev/null || die "restic restore differs"

s_mark=${T[stowaway.mark]% *} s_del=${T[stowaway.delete]% *} r=${T[restic.prune]% *}
s_rss=$(( ${T[stowaway.mark]#* } > ${T[stowaway.delete]#* } ? ${T[stowaway.mark]#* } : ${T[stowaway.delete]#* } ))
r_rss=${T[restic.prune]#* }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
cat <<EOF | tee "$BENCH_DIR/results.md"
| prune, $SNAPSHOTS snapshots, keep last $KEEP_LAST | stowaway | restic | ratio |
|---|---|---|---|
| time (s) | $s_mark + $s_del | $r | $(ratio "$(awk -v a="$s_mark" -v b="$s_del" 'BEGIN{print a+b}')" "$r") |
| peak RSS (MiB) | $((s_rss / 1024)) | $((r_rss / 1024)) | $(ratio "$s_rss" "$r_rss") |
| repository after (MB) | $S_SIZE | $R_SIZE | $(ratio "$S_SIZE" "$R_SIZE") |
EOF
