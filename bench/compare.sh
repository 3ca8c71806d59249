#!/usr/bin/env bash
# Compare cairn with restic, borg and (when on the PATH) rustic.
#
#   bash bench/compare.sh [TREE]
#
# TREE defaults to `rustc --print sysroot` (about 1.4 GB in ~52k files).
# For each tool: init a repository, then measure three phases with GNU time:
#   backup1  first backup of TREE
#   backup2  the same backup again, nothing changed
#   restore  restore the latest snapshot into an empty directory
# and print wall time, CPU time (user+sys), peak RSS and repository size,
# followed by peer/cairn ratios. With ROUNDS=N every tool goes through those
# phases N times, in a rotated order, and the medians are reported.
#
# Environment:
#   BENCH_DIR  work directory (default: a new mktemp -d /var/tmp/cairn-bench.XXXX)
#   KEEP=1     keep repositories and caches (otherwise only logs and TSVs stay)
#   SKIP=...   tools to leave out, comma- or space-separated (e.g. SKIP=borg,rustic)
#   CAIRN_BIN  use this cairn binary instead of building one
#   ROUNDS=N   rounds of backup1/backup2/restore per tool (default 1); each
#              round starts from a new repository, and round r starts with
#              the r-th tool so no tool always runs first; medians reported
#
# Output: a table and ratios on stdout, $BENCH_DIR/results.tsv and
# $BENCH_DIR/ratios.tsv, per-phase stdout/stderr in $BENCH_DIR/logs/.
# Exits non-zero when any phase failed or a restore did not match the source.

set -euo pipefail

say() { printf '%s\n' "$*"; }
note() { printf '==> %s\n' "$*"; }
warn() { printf 'compare.sh: warning: %s\n' "$*" >&2; }
die() { printf 'compare.sh: %s\n' "$*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# ---------------------------------------------------------------- arguments
[[ $# -le 1 ]] || die "usage: $0 [TREE]"
if [[ $# -eq 1 ]]; then
    TREE=$1
else
    command -v rustc >/dev/null || die "rustc not found; give a TREE to back up"
    TREE=$(rustc --print sysroot)
fi
[[ -d $TREE ]] || die "not a directory: $TREE"
TREE=$(realpath -e -- "$TREE")

SKIP=${SKIP:-}
ROUNDS=${ROUNDS:-1}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
skipped() { [[ ",${SKIP//[[:space:]]/,}," == *",$1,"* ]]; }

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
if ! skipped restic && ! command -v restic >/dev/null; then missing+=(restic); fi
if ! skipped borg && ! command -v borg >/dev/null; then missing+=(borgbackup); fi
[[ ${#missing[@]} -eq 0 ]] || apt_install "${missing[@]}"
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) still missing"

TOOLS=()
skipped cairn || TOOLS+=(cairn)
skipped restic || TOOLS+=(restic)
skipped borg || TOOLS+=(borg)
if ! skipped rustic && command -v rustic >/dev/null; then TOOLS+=(rustic); fi
[[ ${#TOOLS[@]} -gt 0 ]] || die "SKIP left no tools to run"

# -------------------------------------------------------------------- build
CAIRN=
if [[ " ${TOOLS[*]} " == *" cairn "* && -n ${CAIRN_BIN:-} ]]; then
    CAIRN=$(realpath -e -- "$CAIRN_BIN") || die "CAIRN_BIN not found: $CAIRN_BIN"
    note "using CAIRN_BIN=$CAIRN (not building)"
elif [[ " ${TOOLS[*]} " == *" cairn "* ]]; then
    note "building cairn (cargo build --release -p cairn in $ROOT)"
    (cd "$ROOT" && cargo build --release -p cairn) || die "cargo build failed"
    target_dir=${CARGO_TARGET_DIR:-target}
    [[ $target_dir == /* ]] || target_dir=$ROOT/$target_dir
    CAIRN=$target_dir/release/cairn
    [[ -x $CAIRN ]] || die "built binary not found at $CAIRN"
fi

# ----------------------------------------------------------------- work dir
if [[ -n ${BENCH_DIR:-} ]]; then
    mkdir -p -- "$BENCH_DIR"
else
    BENCH_DIR=$(mktemp -d /var/tmp/cairn-bench.XXXX)
fi
BENCH_DIR=$(realpath -e -- "$BENCH_DIR")
REPOS=$BENCH_DIR/repos
RESTORE=$BENCH_DIR/restore
CACHE=$BENCH_DIR/cache
LOGS=$BENCH_DIR/logs
for d in "$REPOS" "$RESTORE" "$CACHE"; do
    [[ ! -e $d ]] || die "$d already exists (left by an earlier KEEP=1 run?); remove it first"
done

cleanup() {
    # Remove only what this script created; logs and the TSVs stay.
    if [[ ${KEEP:-0} != 1 ]]; then
        rm -rf -- "$REPOS" "$RESTORE" "$CACHE" "$BENCH_DIR/churn" "$BENCH_DIR/churn-src"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p -- "$REPOS" "$RESTORE" "$CACHE" "$LOGS"

fstype=$(stat -f -c %T -- "$BENCH_DIR")
case $fstype in
    tmpfs|ramfs) die "$BENCH_DIR is on $fstype; set BENCH_DIR to a directory on a real disk" ;;
esac
if [[ $(stat -c %d -- "$BENCH_DIR") != $(stat -c %d -- "$TREE") ]]; then
    warn "$BENCH_DIR and $TREE are on different file systems"
fi

# Source statistics: regular files, their total bytes, symlinks, du.
src_files=0 src_bytes=0
read -r src_files src_bytes < <(find "$TREE" -type f -printf '%s\n' |
    awk '{ n++; s += $1 } END { printf "%d %.0f\n", n, s }')
src_links=$(find "$TREE" -type l | wc -l)
src_du=$(du -sb --apparent-size -- "$TREE" | cut -f1)

# Room: a repository per tool at worst as large as the tree, plus every
# restore (they are kept until the end, see run_tool), plus 1 GiB of slack.
# Deliberately pessimistic.
need=$(( src_du * ${#TOOLS[@]} * (ROUNDS + 1) + (1 << 30) ))
avail=$(( $(df -P -B1 -- "$BENCH_DIR" | awk 'NR == 2 { print $4 }') ))
(( avail >= need )) ||
    die "not enough room in $BENCH_DIR: $((avail >> 20)) MiB free, want $((need >> 20)) MiB"

# -------------------------------------------------------------- environment
PASSWORD=cairn-bench-password
export CAIRN_PASSWORD=$PASSWORD RESTIC_PASSWORD=$PASSWORD
export BORG_PASSPHRASE=$PASSWORD RUSTIC_PASSWORD=$PASSWORD
unset CAIRN_REPOSITORY CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND CAIRN_NEW_PASSWORD_FILE
unset RESTIC_REPOSITORY RESTIC_REPOSITORY_FILE RESTIC_PASSWORD_FILE RESTIC_PASSWORD_COMMAND
unset RESTIC_COMPRESSION RESTIC_PACK_SIZE
unset BORG_REPO BORG_PASSCOMMAND BORG_PASSPHRASE_FD BORG_NEW_PASSPHRASE
unset RUSTIC_REPOSITORY RUSTIC_PASSWORD_FILE RUSTIC_PASSWORD_COMMAND
# Keep every tool's cache and state inside the work dir (not counted in
# repository sizes).
export CAIRN_CACHE_DIR=$CACHE/cairn RESTIC_CACHE_DIR=$CACHE/restic
export BORG_BASE_DIR=$CACHE/borg
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

version_of() {
    case $1 in
        cairn) "$CAIRN" version 2>/dev/null | head -n1 ;;
        restic) restic version 2>/dev/null | head -n1 ;;
        borg) borg --version 2>/dev/null | head -n1 ;;
        rustic) rustic --version 2>/dev/null | head -n1 ;;
    esac
}

# ------------------------------------------------------------------ header
say "cairn comparison benchmark"
say "  tree:      $TREE"
say "             $src_files files, $src_links symlinks, $((src_bytes >> 20)) MiB in files, du --apparent-size $((src_du >> 20)) MiB"
say "  work dir:  $BENCH_DIR ($fstype, $((avail >> 30)) GiB free)"
say "  machine:   $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ -n $CAIRN ]]; then
    say "  cairn rev: $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
fi
for t in "${TOOLS[@]}"; do
    say "  $(printf '%-10s' "$t:") $(version_of "$t" || true)"
done
say "  settings:  cairn init --kdf-memory 64 (otherwise defaults: zstd level 3, 16 MiB packs)"
say "             restic: default compression (auto), default pack size"
say "             borg: init --encryption=repokey-blake2, create --compression zstd,3"
[[ " ${TOOLS[*]} " != *" rustic "* ]] || say "             rustic: defaults"
[[ -n ${SKIP// /} ]] && say "  skipped:   $SKIP"
(( ROUNDS == 1 )) || say "  rounds:    $ROUNDS (rotated tool order; medians reported; prune in the last round only)"
say
note "warming the page cache: reading every file of the tree once"
find "$TREE" -type f -print0 | xargs -0 -r cat >/dev/null ||
    warn "some files of the tree could not be read during warm-up"
say "   (the page cache is warm for every tool; it is not dropped between phases,"
say "    so these numbers are for a warm cache, not cold disk reads)"
say

# ---------------------------------------------------------------- measuring
PHASES=(backup1 backup2 restore prune)
# The prune phase: every tool that has one backs up CHURN_STEPS more
# snapshots, each with TREE plus a different CHURN_MIB MiB file, forgets
# all but the last 2, and prunes. The churn files are made once, so every
# tool sees the same bytes.
CHURN_STEPS=${CHURN_STEPS:-10}
CHURN_MIB=${CHURN_MIB:-20}
CHURN_SRC=$BENCH_DIR/churn-src
mkdir -p -- "$CHURN_SRC"
for ((i = 1; i <= CHURN_STEPS; i++)); do
    [[ -f $CHURN_SRC/f$i ]] || head -c "$((CHURN_MIB << 20))" /dev/urandom >"$CHURN_SRC/f$i"
done
declare -A FREED
declare -A WALL CPU MEM REPO STATUS
FAILED=()

set_cmd() { # TOOL ACTION REPO [ARG] -> CMD array
    local tool=$1 action=$2 repo=$3 arg=${4:-}
    case $tool/$action in
        cairn/init)     CMD=("$CAIRN" -r "$repo" init --kdf-memory 64) ;;
        cairn/backup)   CMD=("$CAIRN" -r "$repo" backup "$TREE") ;;
        cairn/restore)  CMD=("$CAIRN" -r "$repo" restore latest --target "$arg") ;;
        cairn/churn)    CMD=("$CAIRN" -r "$repo" backup -q "$TREE" "$arg") ;;
        cairn/forget)   CMD=("$CAIRN" -r "$repo" forget -q --keep-last 2) ;;
        # restic deletes at once; so does cairn with --instant-delete (its
        # default keeps unused packs for a 24 h grace period).
        cairn/prune)    CMD=("$CAIRN" -r "$repo" prune --instant-delete) ;;
        restic/churn)   CMD=(restic -r "$repo" backup -q "$TREE" "$arg") ;;
        restic/forget)  CMD=(restic -r "$repo" forget -q --keep-last 2) ;;
        restic/prune)   CMD=(restic -r "$repo" prune) ;;
        restic/init)    CMD=(restic -r "$repo" init) ;;
        restic/backup)  CMD=(restic -r "$repo" backup "$TREE") ;;
        restic/restore) CMD=(restic -r "$repo" restore latest --target "$arg") ;;
        borg/init)      CMD=(borg init --encryption=repokey-blake2 "$repo") ;;
        borg/backup)    CMD=(borg create --compression "zstd,3" "$repo::$arg" "$TREE") ;;
        borg/restore)   CMD=(borg extract "$repo::$arg") ;; # run inside the target dir
        rustic/init)    CMD=(rustic -r "$repo" init) ;;
        rustic/backup)  CMD=(rustic -r "$repo" backup "$TREE") ;;
        rustic/restore) CMD=(rustic -r "$repo" restore latest "$arg") ;;
        *) die "no command for $tool/$action" ;;
    esac
}

# measure TOOL PHASE CWD -- runs CMD in CWD under GNU time, fills the arrays.
# Returns the command's exit status.
measure() {
    local tool=$1 phase=$2 cwd=$3 key="$1/$2/$ROUND" log=$LOGS/$1.$2$SFX
    local tf=$log.time rc=0 wall user sys maxkb
    note "$tool $phase: ${CMD[*]}"
    # Write out what earlier phases left dirty, untimed, so that their
    # write-back does not land in this phase's time.
    sync
    (cd "$cwd" && /usr/bin/time -f '%e %U %S %M' -o "$tf" "${CMD[@]}") \
        >"$log.out" 2>"$log.err" || rc=$?
    # On failure GNU time writes "Command exited with non-zero status N" first.
    read -r wall user sys maxkb < <(tail -n1 "$tf") || true
    WALL[$key]=${wall:-}
    CPU[$key]=$(awk -v u="${user:-0}" -v s="${sys:-0}" 'BEGIN { printf "%.2f", u + s }')
    MEM[$key]=$(awk -v k="${maxkb:-0}" 'BEGIN { printf "%.1f", k / 1024 }')
    if (( rc == 0 )); then
        STATUS[$key]=ok
        printf '    %ss wall, %ss CPU, %s MiB peak\n' "${WALL[$key]}" "${CPU[$key]}" "${MEM[$key]}"
    else
        STATUS[$key]="FAIL($rc)"
        FAILED+=("$tool.$phase")
        say "    FAILED with status $rc; stderr ($log.err):"
        tail -n 20 "$log.err" | sed 's/^/      /'
    fi
    return "$rc"
}

repo_mib() { du -sb -- "$1" | awk '{ printf "%.1f", $1 / 1048576 }'; }

verify_restore() { # TOOL DST
    local tool=$1 dst=$2 sub files bytes links du_b
    # All tools store the absolute path, so the tree reappears under DST.
    sub=$dst$TREE
    if [[ ! -d $sub ]]; then
        say "    MISMATCH: $tool restored nothing at $sub"
        return 1
    fi
    read -r files bytes < <(find "$sub" -type f -printf '%s\n' |
        awk '{ n++; s += $1 } END { printf "%d %.0f\n", n, s }')
    links=$(find "$sub" -type l | wc -l)
    du_b=$(du -sb --apparent-size -- "$sub" | cut -f1)
    if [[ $files != "$src_files" || $bytes != "$src_bytes" || $links != "$src_links" ]]; then
        say "    !!!!!!!! MISMATCH: $tool restore differs from the source !!!!!!!!"
        say "      source:   $src_files files, $src_bytes bytes, $src_links symlinks"
        say "      restored: $files files, $bytes bytes, $links symlinks"
        return 1
    fi
    say "    restore check ok: $files files, $bytes bytes, $links symlinks"
    if [[ $du_b != "$src_du" ]]; then
        # Directory entries' own sizes depend on how a directory was filled.
        say "    (du --apparent-size: source $src_du, restored $du_b; the difference is directory sizes)"
    fi
}

run_tool() {
    local tool=$1 repo=$REPOS/$1 dst=$RESTORE/$1$SFX last=
    say "---------------------------------------------------------------- $tool${SFX:+ (round $ROUND)}"
    rm -rf -- "$repo" "$CACHE/${tool}"
    set_cmd "$tool" init "$repo"
    note "$tool init: ${CMD[*]}"
    if ! "${CMD[@]}" >"$LOGS/$tool.init$SFX.out" 2>"$LOGS/$tool.init$SFX.err"; then
        say "    init FAILED; stderr ($LOGS/$tool.init$SFX.err):"
        tail -n 20 "$LOGS/$tool.init$SFX.err" | sed 's/^/      /'
        FAILED+=("$tool.init")
        local p
        for p in "${PHASES[@]}"; do STATUS[$tool/$p/$ROUND]="FAIL(init)"; done
        return 0
    fi

    local n
    for n in 1 2; do
        set_cmd "$tool" backup "$repo" "b$n"
        if measure "$tool" "backup$n" "$BENCH_DIR"; then last=b$n; fi
        REPO[$tool/backup$n/$ROUND]=$(repo_mib "$repo")
        say "    repository: ${REPO[$tool/backup$n/$ROUND]} MiB"
    done
    if [[ -z $last ]]; then
        STATUS[$tool/restore/$ROUND]="skip(no snapshot)"
        return 0
    fi

    mkdir -p -- "$dst"
    set_cmd "$tool" restore "$repo" "$( [[ $tool == borg ]] && echo "$last" || echo "$dst")"
    if measure "$tool" restore "$dst"; then
        if ! verify_restore "$tool" "$dst"; then
            STATUS[$tool/restore/$ROUND]=MISMATCH
            FAILED+=("$tool.restore(mismatch)")
        fi
    fi
    # The restored tree stays until the end of the run. On ext4 without a
    # journal, a file created minutes after a mass deletion in its block
    # group costs the kernel a scan past the recently deleted inodes:
    # restoring this tree right after deleting another took twice the
    # system time, and the cost fades over 10-20 minutes. Deleting each
    # restore would charge it to whichever tool restores next.

    if [[ $tool != cairn && $tool != restic ]]; then
        STATUS[$tool/prune/$ROUND]="n/a"
    elif (( ROUND == ROUNDS )); then
        local churn=$BENCH_DIR/churn i before after
        note "$tool: $CHURN_STEPS churn backups for the prune phase"
        for ((i = 1; i <= CHURN_STEPS; i++)); do
            rm -rf -- "$churn" && mkdir -p -- "$churn" && cp -- "$CHURN_SRC/f$i" "$churn/"
            set_cmd "$tool" churn "$repo" "$churn"
            "${CMD[@]}" >>"$LOGS/$tool.churn.out" 2>>"$LOGS/$tool.churn.err" || { FAILED+=("$tool.churn"); STATUS[$tool/prune/$ROUND]="FAIL(churn)"; return 0; }
        done
        rm -rf -- "$churn"
        set_cmd "$tool" forget "$repo"
        "${CMD[@]}" >"$LOGS/$tool.forget.out" 2>"$LOGS/$tool.forget.err" || { FAILED+=("$tool.forget"); STATUS[$tool/prune/$ROUND]="FAIL(forget)"; return 0; }
        before=$(du -sb -- "$repo" | cut -f1)
        set_cmd "$tool" prune "$repo"
        measure "$tool" prune "$BENCH_DIR" || true
        after=$(du -sb -- "$repo" | cut -f1)
        FREED[$tool]=$(awk -v a="$before" -v b="$after" 'BEGIN { printf "%.1f", (a - b) / 1048576 }')
        REPO[$tool/prune/$ROUND]=$(repo_mib "$repo")
        say "    freed ${FREED[$tool]} MiB; repository now ${REPO[$tool/prune/$ROUND]} MiB"
    fi
    # Only the last round's repositories are kept (KEEP=1).
    (( ROUND == ROUNDS )) || rm -rf -- "$repo"
}

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    SFX=
    (( ROUNDS == 1 )) || SFX=.r$ROUND
    # Round r starts with the r-th tool, so that whatever the machine
    # charges the first run (or the last) does not always fall on one tool.
    for ((ti = 0; ti < ${#TOOLS[@]}; ti++)); do
        run_tool "${TOOLS[$(( (ti + ROUND - 1) % ${#TOOLS[@]} ))]}"
    done
done
say

# Per phase: the median of the rounds' figures, and a status that is ok
# only when every round that ran the phase was.
median() { # numbers... -> median with 2 decimals, or nothing
    [[ $# -gt 0 ]] || return 0
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.2f", m }'
}
for t in "${TOOLS[@]}"; do
    for p in "${PHASES[@]}"; do
        k=$t/$p ws=() cs=() ms=() st= rp=
        for ((r = 1; r <= ROUNDS; r++)); do
            s=${STATUS[$k/$r]:-}
            [[ -n $s ]] || continue
            if [[ $s == ok ]]; then
                ws+=("${WALL[$k/$r]}") cs+=("${CPU[$k/$r]}") ms+=("${MEM[$k/$r]}")
                [[ -n $st ]] || st=ok
            else
                [[ $st != ok && -n $st ]] || st=$s
            fi
            rp=${REPO[$k/$r]:-$rp}
        done
        [[ -z $st ]] || STATUS[$k]=$st
        WALL[$k]=$(median "${ws[@]}") CPU[$k]=$(median "${cs[@]}") MEM[$k]=$(median "${ms[@]}")
        [[ -z $rp ]] || REPO[$k]=$rp
    done
done

# ------------------------------------------------------------------ results
RESULTS=$BENCH_DIR/results.tsv
RATIOS=$BENCH_DIR/ratios.tsv
printf 'tool\tphase\tround\tstatus\twall_s\tcpu_s\tpeak_mib\trepo_mib\n' >"$RESULTS"

say "== Results ($src_files files, $((src_bytes >> 20)) MiB; warm page cache${SFX:+; medians of $ROUNDS rounds}) =="
printf '%-8s %-8s %9s %9s %10s %10s  %s\n' tool phase "wall s" "CPU s" "peak MiB" "repo MiB" status
for t in "${TOOLS[@]}"; do
    for p in "${PHASES[@]}"; do
        k=$t/$p
        printf '%-8s %-8s %9s %9s %10s %10s  %s\n' "$t" "$p" "${WALL[$k]:--}" "${CPU[$k]:--}" \
            "${MEM[$k]:--}" "${REPO[$k]:--}" "${STATUS[$k]:-}"
        for ((n = 1; n <= ROUNDS; n++)); do
            [[ -n ${STATUS[$k/$n]:-} ]] || continue
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$p" "$n" "${STATUS[$k/$n]}" \
                "${WALL[$k/$n]:-}" "${CPU[$k/$n]:-}" "${MEM[$k/$n]:-}" "${REPO[$k/$n]:-}" >>"$RESULTS"
        done
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$p" median "${STATUS[$k]:-}" "${WALL[$k]:-}" \
            "${CPU[$k]:-}" "${MEM[$k]:-}" "${REPO[$k]:-}" >>"$RESULTS"
    done
done
say

ratio() { # A B -> A/B with 2 decimals, or n/a
    awk -v a="${1:-}" -v b="${2:-}" \
        'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'
}
ok() { [[ ${STATUS[$1]:-} == ok ]]; }

printf 'peer\tphase\twall_peer_over_cairn\tcpu_peer_over_cairn\tmem_cairn_over_peer\trepo_cairn_over_peer\n' >"$RATIOS"
if [[ " ${TOOLS[*]} " == *" cairn "* && ${#TOOLS[@]} -gt 1 ]]; then
    say "== Ratios =="
    say "  wall, CPU:  peer / cairn   (>1: cairn faster or cheaper)"
    say "  mem, repo:  cairn / peer   (<1: cairn uses less)"
    printf '%-8s %-8s %10s %10s %10s %10s\n' peer phase wall CPU mem repo
    for t in "${TOOLS[@]}"; do
        [[ $t != cairn ]] || continue
        for p in "${PHASES[@]}"; do
            c=cairn/$p k=$t/$p
            w=n/a u=n/a m=n/a r=n/a
            if ok "$c" && ok "$k"; then
                w=$(ratio "${WALL[$k]}" "${WALL[$c]}")
                u=$(ratio "${CPU[$k]}" "${CPU[$c]}")
                m=$(ratio "${MEM[$c]}" "${MEM[$k]}")
                [[ $p == restore ]] || r=$(ratio "${REPO[$c]:-}" "${REPO[$k]:-}")
                [[ $p != prune ]] || say "  prune: space freed cairn ${FREED[cairn]:-?} MiB, $t ${FREED[$t]:-?} MiB"
            fi
            printf '%-8s %-8s %10s %10s %10s %10s\n' "$t" "$p" "$w" "$u" "$m" "$r"
            if (( ROUNDS > 1 )) && [[ $p != prune ]]; then
                rounds=()
                for ((n = 1; n <= ROUNDS; n++)); do
                    if [[ ${STATUS[$c/$n]:-} == ok && ${STATUS[$k/$n]:-} == ok ]]; then
                        rounds+=("$(ratio "${WALL[$k/$n]}" "${WALL[$c/$n]}")")
                    else
                        rounds+=(n/a)
                    fi
                done
                say "                  wall by round: ${rounds[*]}"
            fi
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$p" "$w" "$u" "$m" "$r" >>"$RATIOS"
        done
    done
    say
fi

say "results: $RESULTS"
say "ratios:  $RATIOS"
say "logs:    $LOGS"
if [[ ${KEEP:-0} == 1 ]]; then
    say "kept:    $REPOS (KEEP=1)"
fi
say "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

if [[ ${#FAILED[@]} -gt 0 ]]; then
    say
    say "!!! FAILURES: ${FAILED[*]}"
    exit 1
fi
