#!/usr/bin/env bash
# Stowaway against its peers (restic 0.14, borg 1.2) and the 2-core tar|zstd ceiling, on one
# corpus, in one run, with a warm page cache and local repositories.
#
#   bench/peers.sh                      # everything, one run
#   RUNS=3 bench/peers.sh               # three runs, medians reported
#   BENCH_DIR=/scratch/b STOWAWAY=/path/to/stowaway bench/peers.sh
#
# Options (environment):
#   BENCH_DIR        work directory: corpus, repositories, restores, logs (default /tmp/stowaway-bench)
#   STOWAWAY         stowaway binary (default target/release/stowaway in the repo root; built if missing)
#   RUNS             number of runs; with more than one, each figure is the median (default 1)
#   CORPUS_SOURCES   directories copied into the corpus (default "/usr/lib/x86_64-linux-gnu /usr/share")
#   CORPUS_MAX_MB    stop copying sources once the corpus reaches this size (default: no cap)
#   TOOLS            subset of "stowaway native restic borg tar" to run (default: all)
#   KEEP             1 keeps repositories and restores after the run (default 0)
#
# Exits 0 whatever the ratios are; exits non-zero only when a tool fails or a restore does not
# match the corpus. See bench/README.md for what each figure means.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/stowaway-bench}"
STOWAWAY="${STOWAWAY:-$ROOT/target/release/stowaway}"
RUNS="${RUNS:-1}"
CORPUS_SOURCES="${CORPUS_SOURCES:-/usr/lib/x86_64-linux-gnu /usr/share}"
CORPUS_MAX_MB="${CORPUS_MAX_MB:-0}"
TOOLS="${TOOLS:-stowaway native restic borg tar}"
KEEP="${KEEP:-0}"

PASSWORD="bench-password-not-secret"
export STOWAWAY_PASSWORD="$PASSWORD" RESTIC_PASSWORD="$PASSWORD" BORG_PASSPHRASE="$PASSWORD"
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
# Keep the peers' caches with the bench so runs do not litter $HOME (each run uses fresh repos).
export RESTIC_CACHE_DIR="$BENCH_DIR/cache/restic" BORG_BASE_DIR="$BENCH_DIR/cache/borg"
export LC_ALL=C

say() { printf '== %s\n' "$*" >&2; }
die() { printf '\n!!!!!!!! FAIL: %s\n\n' "$*" >&2; exit 1; }
has_tool() { [[ " $TOOLS " == *" $1 "* ]]; }

# ---------------------------------------------------------------- dependencies
install_missing() {
    local need=()
    command -v restic >/dev/null || need+=(restic)
    command -v borg >/dev/null || need+=(borgbackup)
    [[ -x /usr/bin/time ]] || need+=(time)
    command -v zstd >/dev/null || need+=(zstd)
    command -v sha256sum >/dev/null || need+=(coreutils)
    ((${#need[@]} == 0)) && return 0
    say "installing ${need[*]}"
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    if ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${need[@]}" >/dev/null; then
        "${sudo[@]}" apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${need[@]}" >/dev/null
    fi
}
install_missing
if [[ ! -x "$STOWAWAY" ]]; then
    [[ "$STOWAWAY" == "$ROOT/target/release/stowaway" ]] || die "STOWAWAY=$STOWAWAY is not executable"
    say "building stowaway (release; the first build takes several minutes)"
    (cd "$ROOT" && cargo build --release -p stowaway)
fi

# ---------------------------------------------------------------- corpus
mkdir -p "$BENCH_DIR"
BENCH_DIR="$(cd "$BENCH_DIR" && pwd)"
CORPUS="$BENCH_DIR/corpus"
if [[ ! -d "$CORPUS" ]]; then
    say "building the corpus from $CORPUS_SOURCES"
    rm -rf "$CORPUS.tmp"
    mkdir -p "$CORPUS.tmp"
    for src in $CORPUS_SOURCES; do
        [[ -d "$src" ]] || { say "skipping missing source $src"; continue; }
        if ((CORPUS_MAX_MB > 0)); then
            have=$(du -sm "$CORPUS.tmp" | cut -f1)
            ((have < CORPUS_MAX_MB)) || { say "corpus cap ${CORPUS_MAX_MB} MB reached, skipping $src"; continue; }
        fi
        cp -a "$src" "$CORPUS.tmp/"
    done
    mv "$CORPUS.tmp" "$CORPUS"
fi
CORPUS_BYTES=$(du -sb "$CORPUS" | cut -f1)
# Bytes of distinct regular files (hard links counted once: /usr/lib's mesa drivers are one
# 25 MB file under 13 names).
CORPUS_APPARENT=$(find "$CORPUS" -type f -printf '%i %s\n' | sort -u -k1,1 | awk '{s+=$2} END {print s+0}')
CORPUS_HARDLINKED=$(find "$CORPUS" -type f -links +1 | wc -l)
CORPUS_FILES=$(find "$CORPUS" -type f | wc -l)
CORPUS_ENTRIES=$(find "$CORPUS" | wc -l)
say "corpus $CORPUS: $((CORPUS_APPARENT / 1000000)) MB of distinct file content ($((CORPUS_BYTES / 1000000)) MB du -sb), $CORPUS_FILES files ($CORPUS_HARDLINKED of them hard links), $CORPUS_ENTRIES entries (sources: $CORPUS_SOURCES; cap: $( ((CORPUS_MAX_MB > 0)) && echo "${CORPUS_MAX_MB} MB" || echo none))"

# Manifests of the corpus, computed once: structure (fatal if a restore differs), content hashes
# (fatal) and metadata (mode/owner/file mtime; reported loudly but not fatal).
manifest_structure() { (cd "$1" && find . -mindepth 1 -printf '%y %p -> %l\n' | sort); }
manifest_content() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }
manifest_meta() {
    (cd "$1" && { find . -mindepth 1 -printf '%y %m %U:%G %p\n'; find . -type f -printf 'mtime %T@ %p\n'; } | sort)
}
MAN="$BENCH_DIR/manifest"
mkdir -p "$MAN"
if [[ ! -s "$MAN/corpus.content" || "$MAN/corpus.content" -ot "$CORPUS" ]]; then
    say "hashing the corpus (for restore verification)"
    manifest_structure "$CORPUS" >"$MAN/corpus.structure"
    manifest_content "$CORPUS" >"$MAN/corpus.content"
    manifest_meta "$CORPUS" >"$MAN/corpus.meta"
fi

# ---------------------------------------------------------------- helpers
LOG="$BENCH_DIR/log"
mkdir -p "$LOG"
declare -A R # R[run,key] = value

warm() { tar -C "$BENCH_DIR" -cf - corpus | cat >/dev/null; }

# timed RUN KEY OKCODES CMD...: runs CMD under /usr/bin/time, records wall seconds, peak RSS
# (KiB), user and sys CPU seconds as R[run,KEY.s|rss|user|sys]. Exit codes other than those in
# OKCODES (space-separated) are fatal; a non-zero accepted code is printed as a warning.
timed() {
    local run=$1 key=$2 ok=$3
    shift 3
    local tf="$LOG/$run.$key.time" rc=0
    sync
    /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" >"$LOG/$run.$key.out" 2>"$LOG/$run.$key.err" || rc=$?
    if [[ " $ok " != *" $rc "* ]]; then
        tail -n 20 "$LOG/$run.$key.err" >&2 || true
        die "$key (run $run) exited with $rc: $*  (logs: $LOG/$run.$key.{out,err})"
    fi
    ((rc == 0)) || say "WARNING: $key (run $run) exited with $rc (accepted as warnings; see $LOG/$run.$key.err)"
    local line
    line=$(tail -n 1 "$tf")
    read -r R[$run,$key.s] R[$run,$key.rss] R[$run,$key.user] R[$run,$key.sys] <<<"$line"
    say "$(printf '%-22s %8ss  %7s MiB peak RSS  user %ss sys %ss' "$key" "${R[$run,$key.s]}" "$((R[$run,$key.rss] / 1024))" "${R[$run,$key.user]}" "${R[$run,$key.sys]}")"
}

# verify RUN TOOL DIR: compares a restored tree with the corpus.
verify() {
    local run=$1 tool=$2 dir=$3 m="$MAN/$run.$2"
    [[ -d "$dir" ]] || die "$tool restore: $dir does not exist"
    manifest_structure "$dir" >"$m.structure"
    manifest_content "$dir" >"$m.content"
    manifest_meta "$dir" >"$m.meta"
    local bad=0 n
    if ! cmp -s "$MAN/corpus.structure" "$m.structure"; then
        n=$(diff "$MAN/corpus.structure" "$m.structure" | grep -c '^[<>]' || true)
        printf '\n!!!!!!!! %s restore (run %s): %s entries differ in type/name/link target:\n' "$tool" "$run" "$n" >&2
        diff "$MAN/corpus.structure" "$m.structure" | head -n 20 >&2 || true
        bad=1
    fi
    if ! cmp -s "$MAN/corpus.content" "$m.content"; then
        n=$(diff "$MAN/corpus.content" "$m.content" | grep -c '^[<>]' || true)
        printf '\n!!!!!!!! %s restore (run %s): %s lines of file contents differ:\n' "$tool" "$run" "$n" >&2
        diff "$MAN/corpus.content" "$m.content" | head -n 20 >&2 || true
        bad=1
    fi
    ((bad == 0)) || die "$tool restore does not match the corpus (manifests in $MAN)"
    if ! cmp -s "$MAN/corpus.meta" "$m.meta"; then
        n=$(diff "$MAN/corpus.meta" "$m.meta" | grep -c '^>' || true)
        say "WARNING: $tool restore: $n entries differ in mode/owner/file mtime (content is identical); first ones:"
        diff "$MAN/corpus.meta" "$m.meta" | head -n 10 >&2 || true
        R[$run,$tool.metadiff]=$n
    else
        R[$run,$tool.metadiff]=0
    fi
    say "$tool restore verified: $(wc -l <"$m.content") files identical"
}

# The directory a restore put the corpus in (restic keeps the backed-up path below --target).
restored_corpus() {
    local out=$1
    if [[ -d "$out/corpus" ]]; then echo "$out/corpus"; return; fi
    find "$out" -maxdepth 8 -type d -name corpus -print -quit
}

fresh() { rm -rf "$1"; }

# ---------------------------------------------------------------- the tools
run_stowaway() {
    local run=$1 repo="$BENCH_DIR/repo-stowaway" out="$BENCH_DIR/restore-stowaway"
    fresh "$repo"; fresh "$out"
    "$STOWAWAY" -r "$repo" init >"$LOG/$run.stowaway.init.out" 2>&1 || die "stowaway init failed (see $LOG/$run.stowaway.init.out)"
    warm
    timed "$run" stowaway.full "0 3" env -C "$BENCH_DIR" "$STOWAWAY" -r "$repo" backup corpus --json
    "$STOWAWAY" -r "$repo" stats --json >"$LOG/$run.stowaway.stats.json" 2>&1 || die "stowaway stats failed"
    timed "$run" stowaway.nochange "0 3" env -C "$BENCH_DIR" "$STOWAWAY" -r "$repo" backup corpus --json
    R[$run,stowaway.size]=$(du -sb "$repo" | cut -f1)
    mkdir -p "$out"
    timed "$run" stowaway.restore "0" "$STOWAWAY" -r "$repo" restore latest --target "$out"
    verify "$run" stowaway "$(restored_corpus "$out")"
    ((KEEP)) || { fresh "$out"; }
}

run_native() {
    local run=$1 repo="$BENCH_DIR/repo-stowaway-native"
    fresh "$repo"
    "$STOWAWAY" -r "$repo" init >"$LOG/$run.native.init.out" 2>&1 || die "stowaway init (native) failed"
    warm
    timed "$run" native.full "0 3" env -C "$BENCH_DIR" "$STOWAWAY" -r "$repo" backup corpus --native --json
    R[$run,native.size]=$(du -sb "$repo" | cut -f1)
    ((KEEP)) || fresh "$repo"
}

run_restic() {
    local run=$1 repo="$BENCH_DIR/repo-restic" out="$BENCH_DIR/restore-restic"
    fresh "$repo"; fresh "$out"
    restic -r "$repo" init --repository-version 2 >"$LOG/$run.restic.init.out" 2>&1 || die "restic init failed (see $LOG/$run.restic.init.out)"
    warm
    timed "$run" restic.full "0" env -C "$BENCH_DIR" restic -r "$repo" backup corpus
    timed "$run" restic.nochange "0" env -C "$BENCH_DIR" restic -r "$repo" backup corpus
    R[$run,restic.size]=$(du -sb "$repo" | cut -f1)
    mkdir -p "$out"
    timed "$run" restic.restore "0" restic -r "$repo" restore latest --target "$out"
    verify "$run" restic "$(restored_corpus "$out")"
    ((KEEP)) || { fresh "$out"; }
}

run_borg() {
    local run=$1 repo="$BENCH_DIR/repo-borg" out="$BENCH_DIR/restore-borg"
    fresh "$repo"; fresh "$out"
    borg init -e repokey-blake2 "$repo" >"$LOG/$run.borg.init.out" 2>&1 || die "borg init failed (see $LOG/$run.borg.init.out)"
    warm
    timed "$run" borg.full "0" env -C "$BENCH_DIR" borg create -C zstd,3 "$repo::full" corpus
    timed "$run" borg.nochange "0" env -C "$BENCH_DIR" borg create -C zstd,3 "$repo::nochange" corpus
    R[$run,borg.size]=$(du -sb "$repo" | cut -f1)
    mkdir -p "$out"
    timed "$run" borg.restore "0" env -C "$out" borg extract "$repo::nochange"
    verify "$run" borg "$(restored_corpus "$out")"
    ((KEEP)) || { fresh "$out"; }
}

run_tar() {
    local run=$1
    warm
    timed "$run" tar.full "0" bash -c 'set -o pipefail; tar -C "$1" -cf - corpus | zstd -3 -T2 -q -c >/dev/null' _ "$BENCH_DIR"
}

# ---------------------------------------------------------------- warm-up
# The first stowaway command compiles the addon (cached afterwards): do it outside the timings.
say "warming stowaway's addon cache"
WARM="$BENCH_DIR/warmup"
rm -rf "$WARM"; mkdir -p "$WARM/data"
echo hello >"$WARM/data/file"
"$STOWAWAY" -r "$WARM/repo" init --kdf-memory-kib 8192 --kdf-iterations 1 >/dev/null 2>&1 ||
    "$STOWAWAY" -r "$WARM/repo" init >/dev/null 2>&1 || die "stowaway init (warm-up) failed"
"$STOWAWAY" -r "$WARM/repo" backup "$WARM/data" >"$LOG/warmup.out" 2>&1 || die "stowaway warm-up backup failed (see $LOG/warmup.out)"
rm -rf "$WARM"

# ---------------------------------------------------------------- runs
say "reading the corpus once (warm page cache)"
warm
for ((run = 1; run <= RUNS; run++)); do
    say "run $run/$RUNS (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
    R[$run,load]=$(cut -d' ' -f1 /proc/loadavg)
    for tool in stowaway native restic borg tar; do
        if has_tool "$tool"; then "run_$tool" "$run"; fi
    done
done
((KEEP)) || rm -rf "$BENCH_DIR/repo-stowaway" "$BENCH_DIR/repo-restic" "$BENCH_DIR/repo-borg" "$BENCH_DIR/cache/borg" "$BENCH_DIR/cache/restic"

# ---------------------------------------------------------------- report
# med KEY: median over the runs of R[run,KEY] (empty if the key was never recorded).
med() {
    local key=$1 vals=() run
    for ((run = 1; run <= RUNS; run++)); do
        [[ -n "${R[$run,$key]:-}" ]] && vals+=("${R[$run,$key]}")
    done
    ((${#vals[@]})) || { echo ""; return; }
    printf '%s\n' "${vals[@]}" | sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}
mib() { [[ -n "$1" ]] && awk -v v="$1" -v d="$2" 'BEGIN {printf "%.0f", v/d}' || echo "-"; }
secs() { [[ -n "$1" ]] && awk -v v="$1" 'BEGIN {printf "%.2f", v}' || echo "-"; }
ratio() { [[ -n "$1" && -n "$2" ]] && awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a/b; else print "-"}' || echo "-"; }
cpu() {
    local u s
    u=$(med "$1.user"); s=$(med "$1.sys")
    [[ -n "$u" ]] && awk -v u="$u" -v s="$s" 'BEGIN {printf "%.1f (%.1f+%.1f)", u+s, u, s}' || echo "-"
}
verdict() { # ratio target
    [[ "$1" == "-" ]] && { echo ""; return; }
    awk -v r="$1" -v t="$2" 'BEGIN {print (r <= t) ? "met" : "MISSED"}'
}
row() { # label stowaway restic target borg
    local r
    r=$(ratio "$2" "$3")
    printf '| %s | %s | %s | %s | <= %s %s | %s |\n' "$1" "$4" "$5" "$r" "$6" "$(verdict "$r" "$6")" "$7"
}

s_full=$(med stowaway.full.s); r_full=$(med restic.full.s); b_full=$(med borg.full.s)
s_nc=$(med stowaway.nochange.s); r_nc=$(med restic.nochange.s); b_nc=$(med borg.nochange.s)
s_rs=$(med stowaway.restore.s); r_rs=$(med restic.restore.s); b_rs=$(med borg.restore.s)
s_rss=$(med stowaway.full.rss); r_rss=$(med restic.full.rss); b_rss=$(med borg.full.rss)
s_size=$(med stowaway.size); r_size=$(med restic.size); b_size=$(med borg.size)
n_full=$(med native.full.s); t_full=$(med tar.full.s)

{
    echo
    echo "Corpus: $((CORPUS_APPARENT / 1000000)) MB of distinct content in $CORPUS_FILES regular files ($CORPUS_HARDLINKED hard links; $CORPUS_ENTRIES entries; du -sb $((CORPUS_BYTES / 1000000)) MB); sources: $CORPUS_SOURCES"
    echo "Runs: $RUNS ($( ((RUNS > 1)) && echo "medians" || echo "single run")); load average at each run's start: $(for ((r = 1; r <= RUNS; r++)); do printf '%s ' "${R[$r,load]}"; done)"
    echo "Versions: $("$STOWAWAY" --version 2>/dev/null | head -n1); $(restic version | cut -d' ' -f1-2); $(borg --version); $(zstd --version | head -n1)"
    echo
    echo "| metric | stowaway | restic | stowaway/restic | target | borg |"
    echo "| --- | ---: | ---: | ---: | --- | ---: |"
    row "full backup (s)" "$s_full" "$r_full" "$(secs "$s_full")" "$(secs "$r_full")" 0.5 "$(secs "$b_full")"
    row "no-change re-backup (s)" "$s_nc" "$r_nc" "$(secs "$s_nc")" "$(secs "$r_nc")" 0.25 "$(secs "$b_nc")"
    row "restore (s)" "$s_rs" "$r_rs" "$(secs "$s_rs")" "$(secs "$r_rs")" 0.5 "$(secs "$b_rs")"
    row "peak RSS, full backup (MiB)" "$s_rss" "$r_rss" "$(mib "$s_rss" 1024)" "$(mib "$r_rss" 1024)" 1 "$(mib "$b_rss" 1024)"
    row "repository size (MB)" "$s_size" "$r_size" "$(mib "$s_size" 1000000)" "$(mib "$r_size" 1000000)" 1.02 "$(mib "$b_size" 1000000)"
    echo
    echo "| extra | value |"
    echo "| --- | ---: |"
    echo "| stowaway full backup, --native (s) | $(secs "$n_full") |"
    r=$(ratio "$s_full" "$n_full")
    echo "| wasm/native full backup (target <= 1.05) | $r $(verdict "$r" 1.05) |"
    echo "| tar \\| zstd -3 -T2 ceiling (s) | $(secs "$t_full") |"
    echo "| stowaway full / ceiling | $(ratio "$s_full" "$t_full") |"
    echo "| CPU s (user+sys) full backup: stowaway / native / restic / borg | $(cpu stowaway.full) / $(cpu native.full) / $(cpu restic.full) / $(cpu borg.full) |"
    echo "| CPU s (user+sys) no-change: stowaway / restic / borg | $(cpu stowaway.nochange) / $(cpu restic.nochange) / $(cpu borg.nochange) |"
    echo "| CPU s (user+sys) restore: stowaway / restic / borg | $(cpu stowaway.restore) / $(cpu restic.restore) / $(cpu borg.restore) |"
    echo "| peak RSS no-change / restore, stowaway (MiB) | $(mib "$(med stowaway.nochange.rss)" 1024) / $(mib "$(med stowaway.restore.rss)" 1024) |"
    echo "| peak RSS no-change / restore, restic (MiB) | $(mib "$(med restic.nochange.rss)" 1024) / $(mib "$(med restic.restore.rss)" 1024) |"
    echo "| stowaway --native repository (MB) | $(mib "$(med native.size)" 1000000) |"
    echo "| restore metadata differences (mode/owner/mtime): stowaway / restic / borg | $(med stowaway.metadiff) / $(med restic.metadiff) / $(med borg.metadiff) |"
    if [[ -s "$LOG/$RUNS.stowaway.stats.json" ]]; then
        echo
        echo "stowaway stats --json after the full backup (last run): $(tr -d '\n ' <"$LOG/$RUNS.stowaway.stats.json")"
    fi
} | tee "$BENCH_DIR/results.md"
say "table also written to $BENCH_DIR/results.md; logs in $LOG"
exit 0
