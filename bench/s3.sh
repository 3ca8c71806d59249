#!/usr/bin/env bash
# Compare cairn with restic (and rustic, when on the PATH) backing up to and
# restoring from the same S3 server: a single-node Garage on loopback.
#
#   bash bench/s3.sh [TREE]
#
# TREE defaults to `rustc --print sysroot`. The server is the one
# `.ci/garage.sh` runs (started here, and stopped at the end, unless
# CAIRN_TEST_S3 and the AWS_ variables already point at one). Each tool
# gets its own prefix in the bucket. Phases, each under GNU time:
#   backup1  first backup of TREE
#   backup2  the same backup again, nothing changed
#   restore  restore the latest snapshot into an empty directory (checked
#            against the source: file count, bytes, symlinks)
# Prints wall time, CPU time, peak RSS and the bytes the tool stored in the
# bucket, then peer/cairn ratios: throughput ratios, since the same bytes
# go to the same server.
#
# Environment: BENCH_DIR (default mktemp -d /var/tmp/cairn-s3-bench.XXXX),
# SKIP=restic,rustic, CAIRN_BIN (a cairn binary instead of building one).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { printf '%s\n' "$*"; }
note() { printf '==> %s\n' "$*"; }
die() { printf 's3.sh: %s\n' "$*" >&2; exit 1; }

[[ $# -le 1 ]] || die "usage: $0 [TREE]"
TREE=${1:-$(rustc --print sysroot)}
[[ -d $TREE ]] || die "not a directory: $TREE"
TREE=$(realpath -e -- "$TREE")
SKIP=${SKIP:-}
skipped() { [[ ",${SKIP//[[:space:]]/,}," == *",$1,"* ]]; }

need=()
[[ -x /usr/bin/time ]] || need+=(time)
if ! skipped restic && ! command -v restic >/dev/null; then need+=(restic); fi
if [[ ${#need[@]} -gt 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; } ||
        die "apt-get install ${need[*]} failed"
fi
TOOLS=(cairn)
skipped restic || TOOLS+=(restic)
if ! skipped rustic && command -v rustic >/dev/null; then TOOLS+=(rustic); fi

if [[ -n ${CAIRN_BIN:-} ]]; then
    CAIRN=$(realpath -e -- "$CAIRN_BIN")
else
    note "building cairn (cargo build --release -p cairn)"
    (cd "$ROOT" && cargo build --release -p cairn) || die "cargo build failed"
    CAIRN=${CARGO_TARGET_DIR:-$ROOT/target}/release/cairn
fi

STARTED=
if [[ -z ${CAIRN_TEST_S3:-} ]]; then
    note "starting Garage (.ci/garage.sh start)"
    eval "$(bash "$ROOT/.ci/garage.sh" start)"
    STARTED=1
fi
BASE=${CAIRN_TEST_S3#s3:}          # http://HOST:PORT/BUCKET
ENDPOINT=${BASE%/*}
BUCKET=${BASE##*/}

BENCH_DIR=${BENCH_DIR:-$(mktemp -d /var/tmp/cairn-s3-bench.XXXX)}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(realpath -e -- "$BENCH_DIR")
LOGS=$BENCH_DIR/logs RESTORE=$BENCH_DIR/restore CACHE=$BENCH_DIR/cache
mkdir -p "$LOGS" "$RESTORE" "$CACHE"
RUN=$(date +%s)-$$
PREFIX=bench-$RUN

cleanup() {
    rm -rf -- "$RESTORE" "$CACHE"
    [[ -z $STARTED ]] || bash "$ROOT/.ci/garage.sh" stop || true
}
trap cleanup EXIT

export CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench RUSTIC_PASSWORD=bench
export CAIRN_CACHE_DIR=$CACHE/cairn RESTIC_CACHE_DIR=$CACHE/restic
unset CAIRN_REPOSITORY RESTIC_REPOSITORY RUSTIC_REPOSITORY
REGION=${AWS_DEFAULT_REGION:-garage}

repo_of() {
    case $1 in
        cairn) echo "s3:$ENDPOINT/$BUCKET/$PREFIX-cairn" ;;
        restic) echo "s3:$ENDPOINT/$BUCKET/$PREFIX-restic" ;;
        rustic) echo "opendal:s3" ;;
    esac
}

set_cmd() { # TOOL ACTION [ARG]
    local r
    r=$(repo_of "$1")
    case $1/$2 in
        cairn/init) CMD=("$CAIRN" -r "$r" init --kdf-memory 64) ;;
        cairn/backup) CMD=("$CAIRN" -r "$r" backup "$TREE") ;;
        cairn/restore) CMD=("$CAIRN" -r "$r" restore latest --target "$3") ;;
        restic/init) CMD=(restic -o s3.region="$REGION" -r "$r" init) ;;
        restic/backup) CMD=(restic -o s3.region="$REGION" -r "$r" backup "$TREE") ;;
        restic/restore) CMD=(restic -o s3.region="$REGION" -r "$r" restore latest --target "$3") ;;
        rustic/*)
            # rustic takes backend options only from a profile file.
            printf '[repository]\nrepository = "opendal:s3"\n[repository.options]\nendpoint = "%s"\nbucket = "%s"\nroot = "/%s-rustic"\nregion = "%s"\n' \
                "$ENDPOINT" "$BUCKET" "$PREFIX" "$REGION" >"$BENCH_DIR/rustic.toml"
            local o=(-P "$BENCH_DIR/rustic")
            case $2 in
                init) CMD=(rustic "${o[@]}" init) ;;
                backup) CMD=(rustic "${o[@]}" backup "$TREE") ;;
                restore) CMD=(rustic "${o[@]}" restore latest "$3") ;;
            esac ;;
    esac
}

declare -A WALL CPU MEM STORED STATUS
FAILED=()
measure() { # TOOL PHASE
    local k=$1/$2 tf=$LOGS/$1.$2.time rc=0 w u s m
    note "$1 $2: ${CMD[*]}"
    # Write out what earlier phases left dirty, untimed, so that their
    # write-back does not land in this phase's time.
    sync
    /usr/bin/time -f '%e %U %S %M' -o "$tf" "${CMD[@]}" >"$LOGS/$1.$2.out" 2>"$LOGS/$1.$2.err" || rc=$?
    read -r w u s m < <(tail -n1 "$tf") || true
    WALL[$k]=$w
    CPU[$k]=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
    MEM[$k]=$(awk -v m="$m" 'BEGIN { printf "%.1f", m / 1024 }')
    if ((rc == 0)); then
        STATUS[$k]=ok
        say "    ${WALL[$k]}s wall, ${CPU[$k]}s CPU, ${MEM[$k]} MiB peak"
    else
        STATUS[$k]="FAIL($rc)"
        FAILED+=("$k")
        tail -n 5 "$LOGS/$1.$2.err" | sed 's/^/      /'
    fi
}

# Bytes a tool stored in the bucket: the sizes of the objects under its
# prefix, listed with S3 ListObjectsV2 through curl's SigV4 signing (asking
# cairn's own client would be circular; Garage's bucket totals lag behind).
# Query parameters stay in sorted order, as the signature needs them.
prefix_bytes() { # PREFIX
    local token="" q page total=0 sum
    while :; do
        q="list-type=2&prefix=$1"
        [[ -z $token ]] || q="continuation-token=$token&$q"
        page=$(curl -sS --fail --aws-sigv4 "aws:amz:$REGION:s3" \
            --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
            -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
            "$ENDPOINT/$BUCKET?$q") || { echo 0; return; }
        sum=$(grep -o '<Size>[0-9]*</Size>' <<<"$page" | tr -dc '0-9\n' | awk '{ s += $1 } END { printf "%.0f", s }')
        total=$((total + ${sum:-0}))
        grep -q '<IsTruncated>true</IsTruncated>' <<<"$page" || break
        token=$(grep -o '<NextContinuationToken>[^<]*' <<<"$page" | sed 's/^<NextContinuationToken>//; s/%/%25/g; s/]/%5D/g; s/+/%2B/g; s#/#%2F#g; s/=/%3D/g')
    done
    echo "$total"
}

read -r src_files src_bytes < <(find "$TREE" -type f -printf '%s\n' | awk '{ n++; s += $1 } END { printf "%d %.0f\n", n, s }')
src_links=$(find "$TREE" -type l | wc -l)
say "S3 benchmark: $TREE, $src_files files, $((src_bytes >> 20)) MiB; server $ENDPOINT bucket $BUCKET"
say "  machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); tools: ${TOOLS[*]}"
find "$TREE" -type f -print0 | xargs -0 -r cat >/dev/null

for t in "${TOOLS[@]}"; do
    say "---------------------------------------------------------------- $t"
    set_cmd "$t" init
    "${CMD[@]}" >"$LOGS/$t.init.out" 2>"$LOGS/$t.init.err" || { FAILED+=("$t/init"); tail -n 5 "$LOGS/$t.init.err"; continue; }
    set_cmd "$t" backup; measure "$t" backup1
    set_cmd "$t" backup; measure "$t" backup2
    STORED[$t]=$(awk -v b="$(prefix_bytes "$PREFIX-$t")" 'BEGIN { printf "%.1f", b / 1048576 }')
    say "    stored in the bucket: ${STORED[$t]} MiB"
    dst=$RESTORE/$t
    mkdir -p "$dst"
    set_cmd "$t" restore "$dst"; measure "$t" restore
    if [[ ${STATUS[$t/restore]} == ok ]]; then
        read -r f b < <(find "$dst$TREE" -type f -printf '%s\n' | awk '{ n++; s += $1 } END { printf "%d %.0f\n", n, s }')
        l=$(find "$dst$TREE" -type l | wc -l)
        if [[ $f != "$src_files" || $b != "$src_bytes" || $l != "$src_links" ]]; then
            say "    MISMATCH: restored $f files, $b bytes, $l symlinks"
            STATUS[$t/restore]=MISMATCH; FAILED+=("$t/restore")
        else
            say "    restore check ok"
        fi
    fi
    rm -rf -- "$dst"
done

say
say "== Results (S3 on loopback, warm page cache) =="
printf '%-8s %-8s %9s %9s %10s %12s\n' tool phase "wall s" "CPU s" "peak MiB" "stored MiB"
for t in "${TOOLS[@]}"; do
    for p in backup1 backup2 restore; do
        k=$t/$p
        printf '%-8s %-8s %9s %9s %10s %12s %s\n' "$t" "$p" "${WALL[$k]:--}" "${CPU[$k]:--}" "${MEM[$k]:--}" \
            "$([[ $p == backup1 ]] && echo "${STORED[$t]:--}" || echo -)" "${STATUS[$k]:-}"
    done
done
say
say "== Ratios: wall and CPU peer/cairn (>1: cairn faster), mem and stored cairn/peer (<1: cairn smaller) =="
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
for t in "${TOOLS[@]}"; do
    [[ $t != cairn ]] || continue
    for p in backup1 backup2 restore; do
        c=cairn/$p k=$t/$p
        if [[ ${STATUS[$c]:-} == ok && ${STATUS[$k]:-} == ok ]]; then
            printf '%-8s %-8s wall %6s  CPU %6s  mem %6s' "$t" "$p" "$(ratio "${WALL[$k]}" "${WALL[$c]}")" \
                "$(ratio "${CPU[$k]}" "${CPU[$c]}")" "$(ratio "${MEM[$c]}" "${MEM[$k]}")"
            [[ $p != backup1 ]] || printf '  stored %6s' "$(ratio "${STORED[cairn]}" "${STORED[$t]}")"
            printf '\n'
        fi
    done
done
say "logs: $LOGS"
[[ ${#FAILED[@]} -eq 0 ]] || { say "FAILURES: ${FAILED[*]}"; exit 1; }
