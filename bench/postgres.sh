#!/usr/bin/env bash
# PostgreSQL: `stowaway backup --addon postgres` against `pg_dumpall | zstd -3` and against
# `pg_dumpall | restic backup --stdin`, in one run, on a database of at least 1 GB served by a
# PostgreSQL 15 server that the script starts itself on a free port of 127.0.0.1.
#
#   bench/postgres.sh
#   RUNS=1 bench/postgres.sh                   # one measurement of each (default: best of 2)
#   KEEP_DATA=0 bench/postgres.sh              # generate the data again (and remove it after)
#   STOWAWAY=/path/to/stowaway bench/postgres.sh
#
# Options (environment):
#   BENCH_DIR     work directory: server data, repositories, dump, logs (default /tmp/stowaway-bench-pg)
#   STOWAWAY      stowaway binary (default target/release/stowaway in the repo root; built if missing)
#   PG_BIN        PostgreSQL server programs (default /usr/lib/postgresql/15/bin)
#   RUNS          backups measured this many times each, the fastest kept (default 2)
#   RESTORE_RUNS  restores measured this many times each, the fastest kept (default RUNS)
#   SCALE         pgbench scale of the generated data (default 50, about 750 MB)
#   DOC_ROWS      rows of the generated `documents` table (default 500000, about 420 MB)
#   KEEP_DATA     1 reuses BENCH_DIR/pgdata when it exists and keeps it (default); 0 generates
#                 the data again and removes it at the end
#
# Measured (each pipeline under /usr/bin/time -v: wall time, max RSS, CPU of the pipeline; the
# server's CPU from /proc/PID/stat of the postmaster and its children; and whatever else the
# machine did meanwhile, from /proc/stat, which should be close to 0):
#   -) pg_dumpall | wc -c                                   the dump alone, a floor
#   a) pg_dumpall | zstd -3 -q > file                       plain pipe
#   b) pg_dumpall | restic backup --stdin                   fresh local restic repository
#   c) stowaway backup --addon postgres                     fresh local Stowaway repository
#   d) the same again on the unchanged database             bytes added (--json), du growth
#   e) stowaway restore latest --param clean=true           against: drop; zstd -dc file | psql
#      with per-table count(*) compared before and after each restore.
#
# Exits 0 whatever the ratios; non-zero when a tool fails or a restore check fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/stowaway-bench-pg}"
STOWAWAY="${STOWAWAY:-$ROOT/target/release/stowaway}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
RUNS="${RUNS:-2}"
RESTORE_RUNS="${RESTORE_RUNS:-$RUNS}"
SCALE="${SCALE:-50}"
DOC_ROWS="${DOC_ROWS:-500000}"
KEEP_DATA="${KEEP_DATA:-1}"

DB=benchdb
PASSWORD="bench-password-not-secret"
export STOWAWAY_PASSWORD="$PASSWORD" RESTIC_PASSWORD="$PASSWORD" PGPASSWORD="$PASSWORD"
export PGUSER=postgres LC_ALL=C

say() { printf '== %s\n' "$*" >&2; }
die() { printf '\n!!!!!!!! FAIL: %s\n\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- dependencies
need=()
command -v restic >/dev/null || need+=(restic)
command -v zstd >/dev/null || need+=(zstd)
[[ -x /usr/bin/time ]] || need+=(time)
[[ -x "$PG_BIN/postgres" ]] || need+=(postgresql-15)
command -v pg_dumpall >/dev/null || need+=(postgresql-client-15)
if ((${#need[@]} > 0)); then
    say "installing ${need[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null; then
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
    fi
fi
if [[ ! -x "$STOWAWAY" ]]; then
    [[ "$STOWAWAY" == "$ROOT/target/release/stowaway" ]] || die "STOWAWAY=$STOWAWAY is not executable"
    say "building stowaway (release; the first build takes several minutes)"
    (cd "$ROOT" && cargo build --release -p stowaway)
fi

mkdir -p "$BENCH_DIR"
BENCH_DIR="$(cd "$BENCH_DIR" && pwd)"
LOG="$BENCH_DIR/log"
PGDATA_DIR="$BENCH_DIR/pgdata"
PGLOG_DIR="$BENCH_DIR/pglog"
DUMP="$BENCH_DIR/dumpall.sql.zst"
REPO_STOWAWAY="$BENCH_DIR/repo-stowaway"
REPO_RESTIC="$BENCH_DIR/repo-restic"
export RESTIC_CACHE_DIR="$BENCH_DIR/cache/restic" STOWAWAY_REPOSITORY="$REPO_STOWAWAY"
rm -rf "$LOG" "$BENCH_DIR/cache" "$REPO_STOWAWAY" "$REPO_RESTIC" "$DUMP"
mkdir -p "$LOG" "$PGLOG_DIR"
[[ "$KEEP_DATA" == 1 ]] || rm -rf "$PGDATA_DIR" "$BENCH_DIR/pgdata.ready"
# pgdata.ready records the SCALE and DOC_ROWS of complete data; anything else is made again.
[[ "$(cat "$BENCH_DIR/pgdata.ready" 2>/dev/null)" == "$SCALE $DOC_ROWS" ]] ||
    rm -rf "$PGDATA_DIR" "$BENCH_DIR/pgdata.ready"

# Busy CPU time of the whole machine so far, in clock ticks (user nice system irq softirq steal).
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
TICKS=$(getconf CLK_TCK)
# Share of all cores busy over 3 s, in percent: what else runs on the machine.
busy_now() {
    local before
    before=$(machine_ticks)
    sleep 3
    echo $(((($(machine_ticks) - before) * 100) / (3 * TICKS * $(nproc))))
}

# ---------------------------------------------------------------- server
# The server programs refuse to run as root: run them as the postgres system user then.
as_pg() {
    if ((EUID == 0)); then
        (cd "$BENCH_DIR" && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}
((EUID != 0)) || chown postgres: "$PGLOG_DIR"
if [[ ! -d "$PGDATA_DIR" ]]; then
    say "initdb $PGDATA_DIR"
    mkdir -p "$PGDATA_DIR"
    printf '%s\n' "$PASSWORD" >"$BENCH_DIR/pwfile"
    if ((EUID == 0)); then chown postgres: "$PGDATA_DIR" "$BENCH_DIR/pwfile"; fi
    as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres --pwfile="$BENCH_DIR/pwfile" \
        --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C \
        >"$LOG/initdb.out" 2>&1 || die "initdb failed (see $LOG/initdb.out)"
    rm -f "$BENCH_DIR/pwfile"
    # A benchmark server: no durability, no background vacuum competing with the timed runs.
    cat >>"$PGDATA_DIR/postgresql.conf" <<'EOF'
# bench/postgres.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
password_encryption = 'scram-sha-256'
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = minimal
max_wal_senders = 0
max_wal_size = '8GB'
checkpoint_timeout = '30min'
shared_buffers = '512MB'
maintenance_work_mem = '512MB'
autovacuum = off
EOF
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
stop_server() { as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null 2>&1 || true; }
trap 'stop_server; [[ "$KEEP_DATA" == 1 ]] || rm -rf "$PGDATA_DIR" "$BENCH_DIR/pgdata.ready"' EXIT
stop_server # a server left running by an interrupted run
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGLOG_DIR/server.log" -w -t 120 -o "-p $PORT" start \
    >"$LOG/pg_ctl.out" 2>&1 || die "the PostgreSQL server did not start (see $PGLOG_DIR/server.log)"
CONN=(-h 127.0.0.1 -p "$PORT" -U postgres)
sql() { psql -X -q -t -A -v ON_ERROR_STOP=1 "${CONN[@]}" "$@"; }
say "PostgreSQL $(sql -d postgres -c 'SHOW server_version') on 127.0.0.1:$PORT (scram password auth)"

# ---------------------------------------------------------------- data
if [[ ! -f "$BENCH_DIR/pgdata.ready" ]]; then
    say "generating the data: pgbench scale $SCALE and $DOC_ROWS documents (both at once)"
    started=$SECONDS
    sql -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
    # pgbench_accounts: numbers and a blank-padded filler, very compressible.
    "$PG_BIN/pgbench" -i -q -s "$SCALE" -I dtGvp "${CONN[@]}" "$DB" >"$LOG/pgbench.out" 2>&1 &
    pgbench_pid=$!
    # documents: text that compresses about 2-3x (repeated sentences, hex digests) and 256
    # random bytes a row (printed as hex by pg_dump: half of it incompressible).
    random_bytes="decode($(printf 'md5(random()::text) || %.0s' {1..15})md5(random()::text), 'hex')"
    sql -d "$DB" >"$LOG/documents.out" 2>&1 <<EOF || die "creating the documents table (see $LOG/documents.out)"
CREATE TABLE documents (
    id bigint PRIMARY KEY,
    created timestamptz NOT NULL,
    title text NOT NULL,
    body text NOT NULL,
    payload bytea NOT NULL
);
INSERT INTO documents
SELECT i,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '37 seconds',
       'document ' || i || ' ' || md5(i::text),
       repeat((ARRAY['Lorem ipsum dolor sit amet, consectetur adipiscing elit. ',
                     'The quick brown fox jumps over the lazy dog near the river bank. ',
                     'Backups that were never restored are only hopes stored on disk. ',
                     'Invoice paid in full; shipment leaves the warehouse on Monday. ',
                     'Sensor 17 reported a temperature outside the expected range. ',
                     'Customer asked for a refund because the parcel arrived damaged. '])[1 + i % 6],
              1 + i % 4)
           || md5(random()::text) || ' ' || md5(random()::text) || ' ' || md5(random()::text)
           || ' ' || (random() * 1000000)::int,
       $random_bytes
FROM generate_series(1, $DOC_ROWS) AS i;
VACUUM (FREEZE, ANALYZE) documents;
EOF
    wait "$pgbench_pid" || die "pgbench -i failed (see $LOG/pgbench.out)"
    sql -d "$DB" -c 'VACUUM (FREEZE, ANALYZE)' -c 'CHECKPOINT'
    echo "$SCALE $DOC_ROWS" >"$BENCH_DIR/pgdata.ready"
    say "data generated in $((SECONDS - started)) s"
fi
DB_BYTES=$(sql -d "$DB" -c "SELECT pg_database_size('$DB')")
((DB_BYTES >= 1000000000)) || die "database $DB is only $DB_BYTES bytes (at least 1 GB wanted): raise SCALE or DOC_ROWS"

# count(*) of every table of $DB, one "table count" a line.
counts() {
    sql -d "$DB" -F ' ' >"$1" <<'EOF'
SELECT format('SELECT %L, count(*) FROM %I.%I', schemaname || '.' || tablename, schemaname, tablename)
FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1
\gexec
EOF
}
counts "$LOG/counts.before"
say "tables: $(tr '\n' ' ' <"$LOG/counts.before")"

# Warm the page cache and the server, and measure the dump.
DUMP_BYTES=$(pg_dumpall "${CONN[@]}" | wc -c)
say "database $DB: $((DB_BYTES / 1000000)) MB (pg_database_size); pg_dumpall output: $((DUMP_BYTES / 1000000)) MB"
# Compile and cache the addon before anything is timed.
"$STOWAWAY" -q addon describe postgres >/dev/null
BUSY_BEFORE=$(busy_now)
((BUSY_BEFORE < 10)) || say "WARNING: the cores were ${BUSY_BEFORE}% busy with something else just before the measurements"

# ---------------------------------------------------------------- measurements
# CPU ticks of the server: the postmaster with the children it has reaped (utime stime cutime
# cstime), plus its live children (backends, checkpointer, background writer...).
POSTMASTER=$(head -n 1 "$PGDATA_DIR/postmaster.pid")
server_ticks() {
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v pm="$POSTMASTER" '
        { pid = $1; line = $0; sub(/^.*\) /, "", line); split(line, a, " ")
          if (pid == pm) t += a[12] + a[13] + a[14] + a[15]; else if (a[2] == pm) t += a[12] + a[13] }
        END { print t + 0 }'
}
declare -A T # T[key] = "wall_s maxrss_kib cpu_s server_cpu_s other_cpu_s" of the fastest run
timed() {
    local key=$1 run=$2
    shift 2
    sync
    local machine server
    machine=$(machine_ticks) server=$(server_ticks)
    /usr/bin/time -v -o "$LOG/$key.$run.time" "$@" >"$LOG/$key.$run.out" 2>"$LOG/$key.$run.err" ||
        die "$key failed: $* (see $LOG/$key.$run.err)"
    sleep 0.2 # the backend's exit reaches the postmaster's counters
    machine=$(($(machine_ticks) - machine)) server=$(($(server_ticks) - server))
    local t f
    t=$(awk -F': ' -v machine="$machine" -v server="$server" -v hz="$TICKS" '
        /Elapsed \(wall clock\) time/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; wall = s }
        /Maximum resident set size/ { rss = $2 }
        /User time|System time/ { cpu += $2 }
        END { other = machine / hz - cpu - server / hz; if (other < 0) other = 0
              printf "%.2f %d %.2f %.2f %.2f", wall, rss, cpu, server / hz, other }' "$LOG/$key.$run.time")
    read -r -a f <<<"$t"
    say "$(printf '%-18s run %s %7ss %5s MiB  cpu: %6ss + server %6ss (other %5ss)' "$key" "$run" "${f[0]}" $((f[1] / 1024)) "${f[2]}" "${f[3]}" "${f[4]}")"
    awk -v o="${f[4]}" -v w="${f[0]}" 'BEGIN { exit !(o > 0.1 * w) }' &&
        say "WARNING: something else used ${f[4]} s of CPU during $key run $run"
    if [[ -z "${T[$key]:-}" ]] || awk -v a="${f[0]}" -v b="${T[$key]%% *}" 'BEGIN { exit !(a < b) }'; then
        T[$key]=$t
        BEST_RUN[$key]=$run
    fi
}
declare -A BEST_RUN SIZE
# keep KEY RUN NAME VALUE: keeps VALUE as SIZE[NAME] when RUN is the fastest run of KEY so far.
keep() { [[ "${BEST_RUN[$1]}" != "$2" ]] || SIZE[$3]=$4; }
du_b() { du -sb "$1" | cut -f1; }
json_field() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$@"; }

PG_PARAMS=(--param host=127.0.0.1 --param "port=$PORT")
for run in $(seq "$RUNS"); do
    timed dump "$run" bash -o pipefail -c "pg_dumpall -h 127.0.0.1 -p $PORT -U postgres | wc -c"
    [[ "$(cat "$LOG/dump.$run.out")" == "$DUMP_BYTES" ]] || die "the dump changed size between runs"

    rm -f "$DUMP"
    timed plain "$run" bash -o pipefail -c "pg_dumpall -h 127.0.0.1 -p $PORT -U postgres | zstd -3 -q > '$DUMP'"
    keep plain "$run" plain "$(stat -c %s "$DUMP")"

    rm -rf "$REPO_RESTIC" "$RESTIC_CACHE_DIR"
    restic -q -r "$REPO_RESTIC" init >/dev/null
    timed restic "$run" bash -o pipefail -c "pg_dumpall -h 127.0.0.1 -p $PORT -U postgres |
        restic -r '$REPO_RESTIC' backup --json --stdin --stdin-filename dumpall.sql"
    keep restic "$run" restic "$(du_b "$REPO_RESTIC")"
    restic_bytes=$(grep '"message_type":"summary"' "$LOG/restic.$run.out" | tail -n 1 |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["total_bytes_processed"])')
    [[ "$restic_bytes" == "$DUMP_BYTES" ]] || die "restic read $restic_bytes bytes, pg_dumpall printed $DUMP_BYTES"

    rm -rf "$REPO_STOWAWAY"
    "$STOWAWAY" -q init >/dev/null
    timed stowaway "$run" "$STOWAWAY" backup --addon postgres "${PG_PARAMS[@]}" --json
    first=$(du_b "$REPO_STOWAWAY")
    keep stowaway "$run" stowaway "$first"
    processed=$(json_field "$LOG/stowaway.$run.out" 'd["summary"]["bytes_processed"]')
    [[ "$processed" == "$DUMP_BYTES" ]] || die "stowaway read $processed bytes, pg_dumpall printed $DUMP_BYTES"
    keep stowaway "$run" stowaway.added "$(json_field "$LOG/stowaway.$run.out" 'd["summary"]["bytes_added"]')"

    timed stowaway2 "$run" "$STOWAWAY" backup --addon postgres "${PG_PARAMS[@]}" --json
    keep stowaway2 "$run" stowaway2 $(($(du_b "$REPO_STOWAWAY") - first))
    keep stowaway2 "$run" stowaway2.added "$(json_field "$LOG/stowaway2.$run.out" 'd["summary"]["bytes_added"]')"
    keep stowaway2 "$run" stowaway2.blobs "$(json_field "$LOG/stowaway2.$run.out" 'd["summary"]["data_blobs_new"]')"
    keep stowaway2 "$run" stowaway2.parent "$(json_field "$LOG/stowaway2.$run.out" 'd["parent"] is not None')"
done

# ---------------------------------------------------------------- restores
check_counts() {
    counts "$LOG/counts.$1"
    diff "$LOG/counts.before" "$LOG/counts.$1" >&2 || die "row counts differ after the $1 restore"
}
# The restores drop and reload benchdb: the data counts as complete again once they pass.
rm -f "$BENCH_DIR/pgdata.ready"
for run in $(seq "$RESTORE_RUNS"); do
    timed stowaway.restore "$run" "$STOWAWAY" restore latest "${PG_PARAMS[@]}" --param clean=true
    check_counts "stowaway.$run"
    timed plain.restore "$run" bash -o pipefail -c "
        psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $PORT -U postgres -d postgres -c 'DROP DATABASE $DB WITH (FORCE)' &&
        zstd -dc '$DUMP' | psql -X -q -h 127.0.0.1 -p $PORT -U postgres -d postgres"
    check_counts "plain.$run"
done
echo "$SCALE $DOC_ROWS" >"$BENCH_DIR/pgdata.ready"

# ---------------------------------------------------------------- report
field() { local f; read -r -a f <<<"${T[$1]}"; echo "${f[$2]}"; }
secs() { field "$1" 0; }
mib() { echo $(($(field "$1" 1) / 1024)); }
cpu() { echo "$(field "$1" 2) | $(field "$1" 3) | $(field "$1" 4)"; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
{
    echo "PostgreSQL $(sql -d postgres -c 'SHOW server_version'), database $(mb "$DB_BYTES") MB" \
        "(pg_database_size), pg_dumpall output $(mb "$DUMP_BYTES") MB; best of $RUNS backup and" \
        "$RESTORE_RUNS restore runs; $(nproc) cores shared by the server, pg_dumpall and the tool;" \
        "cores busy with other work: ${BUSY_BEFORE}% before the measurements, $(busy_now)% after."
    echo
    echo "| whole cluster | wall (s) | peak RSS (MiB) | CPU s: pipeline | server | other | stored (MB) |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    echo "| pg_dumpall \| wc -c (the dump alone) | $(secs dump) | $(mib dump) | $(cpu dump) | |"
    echo "| a) pg_dumpall \| zstd -3 > file | $(secs plain) | $(mib plain) | $(cpu plain) | $(mb "${SIZE[plain]}") |"
    echo "| b) pg_dumpall \| restic backup --stdin | $(secs restic) | $(mib restic) | $(cpu restic) | $(mb "${SIZE[restic]}") |"
    echo "| c) stowaway backup --addon postgres | $(secs stowaway) | $(mib stowaway) | $(cpu stowaway) | $(mb "${SIZE[stowaway]}") |"
    echo "| d) same, unchanged database | $(secs stowaway2) | $(mib stowaway2) | $(cpu stowaway2) | +$(mb "${SIZE[stowaway2]}") |"
    echo "| restore: stowaway restore latest clean=true | $(secs stowaway.restore) | $(mib stowaway.restore) | $(cpu stowaway.restore) | |"
    echo "| restore: drop; zstd -dc file \| psql | $(secs plain.restore) | $(mib plain.restore) | $(cpu plain.restore) | |"
    echo
    echo "| ratio | value | target |"
    echo "|---|---:|---|"
    echo "| stowaway / plain pipe, backup wall | $(ratio "$(secs stowaway)" "$(secs plain)") | <= 1.15 |"
    echo "| stowaway / restic, backup wall | $(ratio "$(secs stowaway)" "$(secs restic)") | |"
    echo "| stowaway / plain pipe, stored bytes | $(ratio "${SIZE[stowaway]}" "${SIZE[plain]}") | |"
    echo "| stowaway / restic, stored bytes | $(ratio "${SIZE[stowaway]}" "${SIZE[restic]}") | |"
    echo "| stowaway / plain pipe, restore wall | $(ratio "$(secs stowaway.restore)" "$(secs plain.restore)") | |"
    echo
    echo "| second backup of the unchanged database | value |"
    echo "|---|---:|"
    echo "| bytes added (--json summary.bytes_added) | ${SIZE[stowaway2.added]} |"
    echo "| new data blobs (summary.data_blobs_new) | ${SIZE[stowaway2.blobs]} |"
    echo "| repository growth (du -sb after - before) | ${SIZE[stowaway2]} |"
    echo "| first backup: bytes added / repository (du -sb) | ${SIZE[stowaway.added]} / ${SIZE[stowaway]} |"
    echo "| used a parent snapshot | ${SIZE[stowaway2.parent]} |"
} | tee "$BENCH_DIR/results.md"
