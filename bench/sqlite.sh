#!/usr/bin/env bash
# Live SQLite databases: cairn (`backup --sqlite`) against restic (`backup FILE`).
#
#   bash bench/sqlite.sh
#
# Builds a database of DB_MB MiB (default 530) in WAL mode with 4 KiB pages,
# whose rows are random text and random bytes (not compressible), then:
#   (a) initial   first backup with cairn and with restic
#   (b) incr      a random UPDATE_FRACTION (default 0.001) of the rows is
#                 rewritten, then both back up again: bytes added to each
#                 repository (du -sb before/after; cairn's --json
#                 bytes_added_stored) as a share of the database size, and
#                 the wall time of the incremental backup
#   (d) restore   both restore the database (cairn's restore includes its
#                 fsync and PRAGMA integrity_check); checked against the
#                 database's SHA-256; RESTORE_ROUNDS times (default 5),
#                 taking turns to go first, reporting the median
#   (c) writer    a writer process (on CPU 0) commits small transactions
#                 flat out for WRITER_SECONDS (default 20) at a time: alone,
#                 while cairn backs the database up in a loop, while cairn
#                 does so kept off CPU 0 with taskset, and while cairn
#                 --low-priority (nice 19, idle I/O class) does,
#                 WRITER_ROUNDS times (default 3)
#                 interleaved, the backup modes taking turns to follow
#                 the run alone (see below), then alone once more.
#                 Reports mean
#                 transactions/s with backups relative to alone (target:
#                 under 5% slower in WAL mode), commit latencies, how often
#                 the writer found the database locked (its busy timeout is
#                 0, so each is counted and retried), transactions per
#                 second of the writer's own CPU time (which CPU contention
#                 on this shared machine does not lower), and the WAL's size
# Phases run in the order a, b, d, c so that the restore is of a database at
# rest whose bytes are known.
#
# Environment:
#   BENCH_DIR       work directory (default: a new mktemp -d /var/tmp/cairn-sqlite-bench.XXXX)
#   KEEP=1          keep the database, repositories and caches
#   CAIRN_BIN       use this cairn binary instead of building one
#   DB_MB           database size in MiB (default 530; at least 500 for the report)
#   UPDATE_FRACTION share of rows rewritten in (b) (default 0.001)
#   WRITER_SECONDS  length of each writer run in (c) (default 20)
#   WRITER_ROUNDS   rounds of (alone, cairn, pinned cairn, low-priority cairn) in (c)
#                   (default 3; a multiple of 3 puts each mode first equally often)
#   RESTORE_ROUNDS  restores of the database by each tool in (d) (default 5)
#
# Output: tables on stdout, $BENCH_DIR/results.tsv (timed phases),
# $BENCH_DIR/writer.tsv (writer runs), $BENCH_DIR/ratios.tsv, and logs in
# $BENCH_DIR/logs/. Exits non-zero when a phase failed or a restore did not
# match.

set -euo pipefail

say() { printf '%s\n' "$*"; }
note() { printf '==> %s\n' "$*"; }
warn() { printf 'sqlite.sh: warning: %s\n' "$*" >&2; }
die() { printf 'sqlite.sh: %s\n' "$*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELPER=$ROOT/tests/support/sqlite_writer.py

[[ $# -eq 0 ]] || die "usage: $0 (no arguments; see the environment variables at the top)"
DB_MB=${DB_MB:-530}
UPDATE_FRACTION=${UPDATE_FRACTION:-0.001}
WRITER_SECONDS=${WRITER_SECONDS:-20}
WRITER_ROUNDS=${WRITER_ROUNDS:-3}
RESTORE_ROUNDS=${RESTORE_ROUNDS:-5}
[[ $DB_MB =~ ^[0-9]+$ ]] || die "DB_MB must be a whole number of MiB"
[[ $WRITER_SECONDS =~ ^[0-9]+$ ]] || die "WRITER_SECONDS must be a whole number"
[[ $WRITER_ROUNDS =~ ^[1-9][0-9]*$ ]] || die "WRITER_ROUNDS must be a positive whole number"
[[ $RESTORE_ROUNDS =~ ^[1-9][0-9]*$ ]] || die "RESTORE_ROUNDS must be a positive whole number"
# bulk rows take ~1026 bytes each with 4 KiB pages (4 rows a page).
ROWS=$(( DB_MB * 1048576 / 1026 ))

# ------------------------------------------------------------- dependencies
as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}
apt_install() {
    note "installing with apt-get: $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" ||
        { as_root apt-get update &&
          as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"; } ||
        die "apt-get install $* failed"
}
missing=()
[[ -x /usr/bin/time ]] || missing+=(time)
command -v restic >/dev/null || missing+=(restic)
command -v python3 >/dev/null || missing+=(python3)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
[[ ${#missing[@]} -eq 0 ]] || apt_install "${missing[@]}"
[[ -f $HELPER ]] || die "missing $HELPER"

# -------------------------------------------------------------------- build
if [[ -n ${CAIRN_BIN:-} ]]; then
    CAIRN=$(realpath -e -- "$CAIRN_BIN") || die "CAIRN_BIN not found: $CAIRN_BIN"
    note "using CAIRN_BIN=$CAIRN (not building)"
else
    note "building cairn (cargo build --release -p cairn in $ROOT)"
    (cd "$ROOT" && cargo build --release -p cairn) || die "cargo build failed"
    target_dir=${CARGO_TARGET_DIR:-target}
    [[ $target_dir == /* ]] || target_dir=$ROOT/$target_dir
    CAIRN=$target_dir/release/cairn
    [[ -x $CAIRN ]] || die "built binary not found at $CAIRN"
fi
"$CAIRN" backup --help | grep -q -- --sqlite || die "$CAIRN has no backup --sqlite"

# ----------------------------------------------------------------- work dir
if [[ -n ${BENCH_DIR:-} ]]; then
    mkdir -p -- "$BENCH_DIR"
else
    BENCH_DIR=$(mktemp -d /var/tmp/cairn-sqlite-bench.XXXX)
fi
BENCH_DIR=$(realpath -e -- "$BENCH_DIR")
DATA=$BENCH_DIR/data
REPOS=$BENCH_DIR/repos
RESTORE=$BENCH_DIR/restore
CACHE=$BENCH_DIR/cache
LOGS=$BENCH_DIR/logs
for d in "$DATA" "$REPOS" "$RESTORE" "$CACHE"; do
    [[ ! -e $d ]] || die "$d already exists (left by an earlier KEEP=1 run?); remove it first"
done
BG_PIDS=()
cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ ${KEEP:-0} != 1 ]]; then
        rm -rf -- "$DATA" "$REPOS" "$RESTORE" "$CACHE"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p -- "$DATA" "$REPOS" "$RESTORE" "$CACHE" "$LOGS"

fstype=$(stat -f -c %T -- "$BENCH_DIR")
case $fstype in
    tmpfs|ramfs) die "$BENCH_DIR is on $fstype; set BENCH_DIR to a directory on a real disk" ;;
esac
# The database, two repositories, two restores, WAL growth, 1 GiB slack.
need=$(( DB_MB * 1048576 * 6 + (1 << 30) ))
avail=$(( $(df -P -B1 -- "$BENCH_DIR" | awk 'NR == 2 { print $4 }') ))
(( avail >= need )) ||
    die "not enough room in $BENCH_DIR: $((avail >> 20)) MiB free, want $((need >> 20)) MiB"

# -------------------------------------------------------------- environment
PASSWORD=cairn-bench-password
export CAIRN_PASSWORD=$PASSWORD RESTIC_PASSWORD=$PASSWORD
unset CAIRN_REPOSITORY CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND CAIRN_NEW_PASSWORD_FILE
unset RESTIC_REPOSITORY RESTIC_REPOSITORY_FILE RESTIC_PASSWORD_FILE RESTIC_PASSWORD_COMMAND
unset RESTIC_COMPRESSION RESTIC_PACK_SIZE
export CAIRN_CACHE_DIR=$CACHE/cairn RESTIC_CACHE_DIR=$CACHE/restic

DB=$DATA/app.db
CREPO=$REPOS/cairn
RREPO=$REPOS/restic

say "cairn SQLite benchmark"
say "  work dir:  $BENCH_DIR ($fstype, $((avail >> 30)) GiB free)"
say "  machine:   $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
say "  cairn:     $("$CAIRN" version 2>/dev/null | head -n1) ($CAIRN, rev $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown))"
say "  restic:    $(restic version 2>/dev/null | head -n1)"
say "  python3:   $(python3 -c 'import sqlite3, sys; print(sys.version.split()[0], "sqlite", sqlite3.sqlite_version)')"
say "  settings:  cairn init --kdf-memory 64 (zstd 3, 16 MiB packs), backup --sqlite DB"
say "             restic init (repository v2, compression auto), backup DB"
say

# ------------------------------------------------------------------ helpers
declare -A WALL CPU MEM STATUS ADDED ADDED_STORED
FAILED=()

# measure KEY -- CMD...: runs CMD under GNU time, stdout/stderr to logs/KEY.*
measure() {
    local key=$1 rc=0 wall user sys maxkb
    shift
    local tf=$LOGS/$key.time
    note "$key: $*"
    # Write out what earlier phases left dirty, untimed, so that their
    # write-back does not land in this phase's time.
    sync
    /usr/bin/time -f '%e %U %S %M' -o "$tf" "$@" >"$LOGS/$key.out" 2>"$LOGS/$key.err" || rc=$?
    read -r wall user sys maxkb < <(tail -n1 "$tf") || true
    WALL[$key]=${wall:-}
    CPU[$key]=$(awk -v u="${user:-0}" -v s="${sys:-0}" 'BEGIN { printf "%.2f", u + s }')
    MEM[$key]=$(awk -v k="${maxkb:-0}" 'BEGIN { printf "%.1f", k / 1024 }')
    if (( rc == 0 )); then
        STATUS[$key]=ok
        printf '    %ss wall, %ss CPU, %s MiB peak\n' "${WALL[$key]}" "${CPU[$key]}" "${MEM[$key]}"
    else
        STATUS[$key]="FAIL($rc)"
        FAILED+=("$key")
        say "    FAILED with status $rc; stderr ($LOGS/$key.err):"
        tail -n 20 "$LOGS/$key.err" | sed 's/^/      /'
    fi
    return "$rc"
}

repo_bytes() { du -sb -- "$1" | cut -f1; }
json_field() { # FILE FIELD: FIELD of the last JSON summary line of FILE
    python3 - "$1" "$2" <<'EOF'
import json, sys
val = ""
for line in open(sys.argv[1]):
    try:
        v = json.loads(line)
    except ValueError:
        continue
    if isinstance(v, dict) and v.get("message_type") == "summary":
        s = v.get("summary", v)
        val = s.get(sys.argv[2], "")
print(val)
EOF
}
pct() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b + 0 == 0) print "n/a"; else printf "%.3f", 100 * a / b }'; }
ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
mib() { awk -v a="${1:-0}" 'BEGIN { printf "%.1f", a / 1048576 }'; }

# --------------------------------------------------------------- database
note "creating a ${DB_MB} MiB database ($ROWS rows of random text and bytes, WAL, 4 KiB pages)"
t0=$(date +%s)
python3 "$HELPER" bulk "$DB" --journal wal --page-size 4096 --rows "$ROWS" --row-bytes 1000 \
    >"$LOGS/create.out" 2>"$LOGS/create.err" || die "creating the database failed (see $LOGS/create.err)"
DB_BYTES=$(stat -c %s -- "$DB")
say "    $DB_BYTES bytes ($(mib "$DB_BYTES") MiB) in $(( $(date +%s) - t0 ))s; $(sqlite3 "$DB" 'PRAGMA journal_mode; PRAGMA page_size' | paste -sd' ')"
(( DB_BYTES >= 500 * 1000 * 1000 )) || warn "the database is under 500 MB ($DB_BYTES bytes)"
gz=$(head -c 64M -- "$DB" | gzip -1 | wc -c)
say "    gzip -1 of its first 64 MiB: $(pct "$gz" $((64 << 20)))% of the input"
cat -- "$DB" >/dev/null   # warm page cache for both tools
say

note "init"
"$CAIRN" -r "$CREPO" init --kdf-memory 64 >"$LOGS/cairn.init.out" 2>"$LOGS/cairn.init.err" ||
    die "cairn init failed: $(tail -n3 "$LOGS/cairn.init.err")"
restic -r "$RREPO" init >"$LOGS/restic.init.out" 2>"$LOGS/restic.init.err" ||
    die "restic init failed: $(tail -n3 "$LOGS/restic.init.err")"
declare -A RB RA
RB[cairn/initial]=$(repo_bytes "$CREPO")
RB[restic/initial]=$(repo_bytes "$RREPO")

# ------------------------------------------------------- (a) first backup
say; say "---------------------------------------------------------- (a) initial backup"
measure cairn.initial "$CAIRN" -r "$CREPO" --json backup --sqlite "$DB" || true
RA[cairn/initial]=$(repo_bytes "$CREPO")
ADDED_STORED[cairn/initial]=$(json_field "$LOGS/cairn.initial.out" bytes_added_stored)
measure restic.initial restic -r "$RREPO" backup --json "$DB" || true
RA[restic/initial]=$(repo_bytes "$RREPO")
ADDED_STORED[restic/initial]=""

# ------------------------------------------------ (b) incremental backup
say; say "------------------------------------------------------ (b) incremental backup"
note "rewriting ${UPDATE_FRACTION} of the rows at random"
python3 "$HELPER" update "$DB" --fraction "$UPDATE_FRACTION" --seed 11 >"$LOGS/update.out" ||
    die "update failed"
say "    $(cat "$LOGS/update.out")"
[[ ! -s $DB-wal ]] || die "the database still has a WAL after the update"
DB_SHA=$(sha256sum -- "$DB" | cut -d' ' -f1)
DB_BYTES=$(stat -c %s -- "$DB")
cat -- "$DB" >/dev/null
RB[cairn/incr]=$(repo_bytes "$CREPO")
measure cairn.incr "$CAIRN" -r "$CREPO" --json backup --sqlite "$DB" || true
RA[cairn/incr]=$(repo_bytes "$CREPO")
ADDED_STORED[cairn/incr]=$(json_field "$LOGS/cairn.incr.out" bytes_added_stored)
RB[restic/incr]=$(repo_bytes "$RREPO")
measure restic.incr restic -r "$RREPO" backup --json "$DB" || true
RA[restic/incr]=$(repo_bytes "$RREPO")
ADDED_STORED[restic/incr]=""
for k in cairn/initial restic/initial cairn/incr restic/incr; do
    ADDED[$k]=$(( ${RA[$k]} - ${RB[$k]} ))
done

# ------------------------------------------------------------ (d) restore
say; say "----------------------------------------------------------------- (d) restore"
verify() { # KEY FILE
    local sha
    if [[ ! -f $2 ]]; then
        say "    MISMATCH: $1 restored nothing at $2"; STATUS[$1]=MISMATCH; FAILED+=("$1(mismatch)"); return
    fi
    sha=$(sha256sum -- "$2" | cut -d' ' -f1)
    if [[ $sha != "$DB_SHA" ]]; then
        say "    !!!!!!!! MISMATCH: $1 restored a different database ($sha, want $DB_SHA) !!!!!!!!"
        STATUS[$1]=MISMATCH; FAILED+=("$1(mismatch)")
    else
        say "    restore check ok: SHA-256 matches the database"
    fi
}
# One run per tool is not enough: on a virtual machine, how fast the
# kernel finds memory for the restored file's pages swings a single run's
# system time by 2x and more. The tools take turns going first, and the
# median of the rounds is reported.
restore_once() { # TOOL ROUND
    local t=$1 r=$2 k=$1.restore.r$2
    if [[ $t == cairn ]]; then
        if measure "$k" "$CAIRN" -r "$CREPO" restore "latest:$DB" --target "$RESTORE/cairn"; then
            verify "$k" "$RESTORE/cairn/app.db"
        fi
        rm -rf -- "$RESTORE/cairn"
    else
        if measure "$k" restic -r "$RREPO" restore latest --target "$RESTORE/restic"; then
            verify "$k" "$RESTORE/restic$DB"
            # What cairn's restore does beyond writing the file: the
            # integrity check.
            if (( r == 1 )); then
                measure integrity_check.restored sqlite3 "$RESTORE/restic$DB" 'PRAGMA integrity_check' || true
            fi
        fi
        rm -rf -- "$RESTORE/restic"
    fi
}
for ((r = 1; r <= RESTORE_ROUNDS; r++)); do
    if (( r % 2 )); then order=(cairn restic); else order=(restic cairn); fi
    for t in "${order[@]}"; do restore_once "$t" "$r"; done
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
declare -A ROUNDS
for t in cairn restic; do
    walls=() cpus=() mems=() st=ok
    for ((r = 1; r <= RESTORE_ROUNDS; r++)); do
        k=$t.restore.r$r
        [[ -n ${WALL[$k]:-} ]] && walls+=("${WALL[$k]}") && cpus+=("${CPU[$k]}") && mems+=("${MEM[$k]}")
        [[ ${STATUS[$k]:-} == ok ]] || st=${STATUS[$k]:-missing}
    done
    ROUNDS[$t]="${walls[*]}"
    WALL[$t.restore]=$(median "${walls[@]}")
    CPU[$t.restore]=$(median "${cpus[@]}")
    MEM[$t.restore]=$(printf '%s\n' "${mems[@]}" | sort -g | tail -n1)
    STATUS[$t.restore]=$st
done

# ------------------------------------------------------- (c) writer impact
say; say "------------------------------------------------------------ (c) writer impact"
WRITER_TSV=$BENCH_DIR/writer.tsv
printf 'run\tbackup\ttransactions\tseconds\ttps\twriter_cpu_s\ttx_per_cpu_s\tp50_ms\tp99_ms\tmax_ms\tbusy\twal_mib_at_end\tbackups_done\tbackups_failed\n' >"$WRITER_TSV"
# The writer always runs on CPU 0. Backups run: not at all (none), with
# the scheduler's choice of CPUs (cairn), on the other CPUs only (pinned:
# no CPU contention with the writer beyond other processes), or with
# --low-priority (low).
NCPU=$(nproc)
WRITER_PRE=()
MODES=(cairn low)
if command -v taskset >/dev/null && (( NCPU >= 2 )); then
    WRITER_PRE=(taskset -c 0)
    MODES=(cairn pinned low)
else
    warn "taskset missing or a single CPU: no pinned runs"
fi
declare -A TPS_SUM TPS_N BUSY_SUM TPC_SUM
writer_run() { # NAME MODE(none|cairn|pinned|low)
    local name=$1 mode=$2 stop=$BENCH_DIR/stop.$1 loop_pid= done_n=0 fail_n=0 out
    rm -f -- "$stop"
    if [[ $mode != none ]]; then
        local -a pre=() opt=()
        case $mode in
            low) opt=(--low-priority) ;;
            pinned) pre=(taskset -c "1-$((NCPU - 1))") ;;
        esac
        (
            i=0
            while [[ ! -e $stop ]]; do
                i=$((i + 1))
                if "${pre[@]}" "$CAIRN" "${opt[@]}" -r "$CREPO" --json backup --sqlite "$DB" \
                    >"$LOGS/writer.$name.backup$i.out" 2>"$LOGS/writer.$name.backup$i.err"; then
                    echo ok >>"$LOGS/writer.$name.backups"
                else
                    echo "fail $?" >>"$LOGS/writer.$name.backups"
                fi
            done
        ) &
        loop_pid=$!
        BG_PIDS+=("$loop_pid")
        sleep 1 # the first backup is under way when the writer starts
    fi
    note "writer $name ($WRITER_SECONDS s, backups: $mode)"
    local rc=0 msg
    out=$("${WRITER_PRE[@]}" python3 "$HELPER" churn "$DB" --seconds "$WRITER_SECONDS" \
        2>"$LOGS/writer.$name.err") || rc=$?
    if (( rc != 0 )); then
        # With the disk full, even the writer's stderr may not have been kept.
        msg=$(tail -n3 -- "$LOGS/writer.$name.err" 2>/dev/null || true)
        die "the writer failed with status $rc: ${msg:-no message;} ($(df -h --output=avail -- "$BENCH_DIR" | tail -n1 | tr -d ' ') free in $BENCH_DIR)"
    fi
    touch -- "$stop"
    if [[ -n $loop_pid ]]; then
        wait "$loop_pid" || true
        done_n=$(grep -c '^ok' "$LOGS/writer.$name.backups" 2>/dev/null || true)
        fail_n=$(grep -c '^fail' "$LOGS/writer.$name.backups" 2>/dev/null || true)
        (( ${fail_n:-0} == 0 )) || FAILED+=("writer.$name.backup")
    fi
    rm -f -- "$stop"
    read -r tx secs tps wcpu tpc p50 p99 mx busy wal < <(python3 -c '
import json, sys
v = json.loads(sys.argv[1])
print(v["transactions"], v["seconds"], v["tps"], v["cpu_seconds"], v["tx_per_cpu_second"],
      v["p50_ms"], v["p99_ms"], v["max_ms"], v["busy"],
      "%.1f" % (v["wal_bytes"] / 1048576))' "$out")
    TPS_SUM[$mode]=$(awk -v a="${TPS_SUM[$mode]:-0}" -v b="$tps" 'BEGIN { print a + b }')
    TPS_N[$mode]=$(( ${TPS_N[$mode]:-0} + 1 ))
    BUSY_SUM[$mode]=$(( ${BUSY_SUM[$mode]:-0} + busy ))
    TPC_SUM[$mode]=$(awk -v a="${TPC_SUM[$mode]:-0}" -v b="$tpc" 'BEGIN { print a + b }')
    say "    $tx transactions in ${secs}s: $tps/s, writer CPU ${wcpu}s ($tpc per CPU second); commit p50 ${p50} ms, p99 ${p99} ms, max ${mx} ms; busy $busy; WAL ${wal} MiB; backups done: ${done_n:-0}, failed: ${fail_n:-0}"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$mode" "$tx" "$secs" "$tps" "$wcpu" "$tpc" "$p50" "$p99" "$mx" \
        "$busy" "$wal" "${done_n:-0}" "${fail_n:-0}" >>"$WRITER_TSV"
}
# Interleaved, so that drifting load from other processes hits every mode.
# The backup modes take turns to come right after the run alone: that run's
# writer, the last connection, checkpoints and deletes the WAL on closing,
# so the next run's writer grows a new WAL file as the backups' read
# snapshots hold it back (allocating blocks as it goes), while a later run
# writes into the WAL its predecessor left grown. In 6 rounds over two runs
# (backups at nice 10 and at nice 19 alike), the writer made 0.77-0.81 of
# its transactions per CPU second alone in the first position, 0.89-0.97
# in the second. So each mode holds the first position in turn.
for r in $(seq 1 "$WRITER_ROUNDS"); do
    writer_run "alone$r" none
    n=${#MODES[@]}
    for k in $(seq 0 $((n - 1))); do
        m=${MODES[$(( (k + r - 1) % n ))]}
        writer_run "${m}_$r" "$m"
    done
done
writer_run "alone$((WRITER_ROUNDS + 1))" none
mean_tps() { awk -v a="${TPS_SUM[$1]:-}" -v n="${TPS_N[$1]:-0}" 'BEGIN { if (n == 0) print ""; else printf "%.1f", a / n }'; }
mean_tpc() { awk -v a="${TPC_SUM[$1]:-}" -v n="${TPS_N[$1]:-0}" 'BEGIN { if (n == 0) print ""; else printf "%.1f", a / n }'; }
BASE_TPS=$(mean_tps none)
BASE_TPC=$(mean_tpc none)

# ------------------------------------------------------------------ results
RESULTS=$BENCH_DIR/results.tsv
RATIOS=$BENCH_DIR/ratios.tsv
say
say "== Results: database $DB_BYTES bytes ($(mib "$DB_BYTES") MiB), $UPDATE_FRACTION of rows updated =="
printf 'tool\tphase\tstatus\twall_s\tcpu_s\tpeak_mib\trepo_added_bytes\trepo_added_pct_of_db\tbytes_added_stored\tstored_pct_of_db\n' >"$RESULTS"
printf '%-7s %-8s %8s %8s %9s %14s %9s %14s %9s  %s\n' tool phase "wall s" "CPU s" "peak MiB" \
    "repo +bytes" "% of DB" "added_stored" "% of DB" status
for p in initial incr restore; do
    for t in cairn restic; do
        k=$t.$p kk=$t/$p
        a=${ADDED[$kk]:-} s=${ADDED_STORED[$kk]:-}
        printf '%-7s %-8s %8s %8s %9s %14s %9s %14s %9s  %s\n' "$t" "$p" "${WALL[$k]:--}" "${CPU[$k]:--}" \
            "${MEM[$k]:--}" "${a:--}" "$( [[ -n $a ]] && pct "$a" "$DB_BYTES" || echo -)" \
            "${s:--}" "$( [[ -n $s ]] && pct "$s" "$DB_BYTES" || echo -)" "${STATUS[$k]:-}"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$p" "${STATUS[$k]:-}" "${WALL[$k]:-}" \
            "${CPU[$k]:-}" "${MEM[$k]:-}" "$a" "$( [[ -n $a ]] && pct "$a" "$DB_BYTES")" "$s" \
            "$( [[ -n $s ]] && pct "$s" "$DB_BYTES")" >>"$RESULTS"
    done
done
say "(restore: median of $RESTORE_ROUNDS rounds, taking turns to go first; wall s per round: cairn ${ROUNDS[cairn]:-}; restic ${ROUNDS[restic]:-})"
k=integrity_check.restored
if [[ -n ${WALL[$k]:-} ]]; then
    say "(sqlite3 PRAGMA integrity_check of the restored database alone: ${WALL[$k]}s wall; cairn's restore includes it)"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t\t\t\t\n' sqlite3 integrity_check "${STATUS[$k]:-}" "${WALL[$k]}" \
        "${CPU[$k]}" "${MEM[$k]}" >>"$RESULTS"
fi
say
say "== Writer (${WRITER_SECONDS}s runs, one UPDATE per transaction, WAL, synchronous=NORMAL) =="
column -t -s $'\t' "$WRITER_TSV"
say
printf 'measure\tvalue\tmeaning\n' >"$RATIOS"
row() { printf '  %-34s %10s   %s\n' "$1" "$2" "$3"; printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RATIOS"; }
say "== Ratios =="
row incr_repo_added_cairn_pct "$(pct "${ADDED[cairn/incr]:-}" "$DB_BYTES")" "% of the DB added to cairn's repository by the incremental backup"
row incr_repo_added_restic_pct "$(pct "${ADDED[restic/incr]:-}" "$DB_BYTES")" "% of the DB added to restic's repository"
row incr_added_stored_cairn_pct "$(pct "${ADDED_STORED[cairn/incr]:-}" "$DB_BYTES")" "cairn --json bytes_added_stored, % of the DB"
row incr_repo_added_restic_over_cairn "$(ratio "${ADDED[restic/incr]:-}" "${ADDED[cairn/incr]:-}")" ">1: cairn adds less"
row incr_wall_restic_over_cairn "$(ratio "${WALL[restic.incr]:-}" "${WALL[cairn.incr]:-}")" ">1: cairn faster"
row initial_wall_restic_over_cairn "$(ratio "${WALL[restic.initial]:-}" "${WALL[cairn.initial]:-}")" ">1: cairn faster"
row restore_wall_restic_over_cairn "$(ratio "${WALL[restic.restore]:-}" "${WALL[cairn.restore]:-}")" ">1: cairn faster (cairn also fsyncs and runs integrity_check)"
row writer_tps_alone "$BASE_TPS" "mean tps of the runs without backups (writer on CPU 0)"
row writer_tx_per_cpu_s_alone "$BASE_TPC" "mean transactions per second of the writer's own CPU time, alone"
for m in "${MODES[@]}"; do
    case $m in
        cairn) what="cairn backs up in a loop" ;;
        pinned) what="cairn, kept off the writer's CPU, backs up in a loop" ;;
        low) what="cairn --low-priority backs up in a loop" ;;
    esac
    row "writer_tps_with_$m" "$(mean_tps "$m")" "mean tps while $what"
    row "writer_tps_with_${m}_ratio" "$(ratio "$(mean_tps "$m")" "$BASE_TPS")" "over alone (target >= 0.95)"
    row "writer_tx_per_cpu_s_with_${m}_ratio" "$(ratio "$(mean_tpc "$m")" "$BASE_TPC")" "transactions per writer CPU second, over alone (CPU contention left out)"
    row "writer_busy_with_$m" "${BUSY_SUM[$m]:-0}" "times the writer found the database locked (busy timeout 0)"
done
say
say "results: $RESULTS"
say "writer:  $WRITER_TSV"
say "ratios:  $RATIOS"
say "logs:    $LOGS"
[[ ${KEEP:-0} != 1 ]] || say "kept:    $DATA $REPOS (KEEP=1)"
say "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ ${#FAILED[@]} -gt 0 ]]; then
    say
    say "!!! FAILURES: ${FAILED[*]}"
    exit 1
fi
