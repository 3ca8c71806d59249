#!/usr/bin/env bash
# A single-node Garage (S3-compatible object store) on 127.0.0.1:3900 for
# cairn's S3 tests.
#
#   .ci/garage.sh start   installs Garage when `garage` is not on the PATH
#                         (`cargo install`, about 10 minutes on 2 cores),
#                         starts a fresh server with a bucket and a key, and
#                         prints the variables for the tests
#   .ci/garage.sh env     prints them again (`eval "$(.ci/garage.sh env)"`)
#   .ci/garage.sh stop    stops the server and deletes its data
#
# Everything lives in $CAIRN_GARAGE_DIR (default /tmp/cairn-garage); the
# variables are also in its file `env`. The server listens on the loopback
# interface only (S3 API on 3900, RPC on 3901).
set -euo pipefail

GARAGE_VERSION="2.5.0"
DIR="${CAIRN_GARAGE_DIR:-/tmp/cairn-garage}"
CONFIG="$DIR/garage.toml"
BUCKET="cairn-test"
KEY_NAME="cairn-test-key"
export PATH="$HOME/.cargo/bin:$PATH"

say() { echo "garage.sh: $*" >&2; }

running() {
  [ -f "$DIR/garage.pid" ] && kill -0 "$(cat "$DIR/garage.pid")" 2>/dev/null
}

g() { garage -c "$CONFIG" "$@"; }

install() {
  if command -v garage >/dev/null 2>&1; then
    return 0
  fi
  say "installing Garage $GARAGE_VERSION with cargo (this takes a while)"
  local t0=$SECONDS
  # Only the SQLite metadata engine; no LMDB, metrics or K2V.
  cargo install garage --version "$GARAGE_VERSION" --locked --quiet \
    --no-default-features --features bundled-libs,sqlite
  say "installed in $((SECONDS - t0)) s"
}

stop() {
  if running; then
    local pid
    pid="$(cat "$DIR/garage.pid")"
    kill "$pid"
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    say "stopped"
  fi
  rm -rf "$DIR"
}

start() {
  install
  if running; then
    say "already running (pid $(cat "$DIR/garage.pid"))"
    cat "$DIR/env"
    return 0
  fi
  rm -rf "$DIR"
  mkdir -p "$DIR/meta" "$DIR/data"
  chmod 700 "$DIR"
  local secret
  secret="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
  cat > "$CONFIG" <<EOF
metadata_dir = "$DIR/meta"
data_dir = "$DIR/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:3901"
rpc_public_addr = "127.0.0.1:3901"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:3900"
root_domain = ".s3.garage.localhost"
EOF
  chmod 600 "$CONFIG"
  RUST_LOG=garage=warn nohup garage -c "$CONFIG" server > "$DIR/garage.log" 2>&1 &
  echo $! > "$DIR/garage.pid"

  local ok=""
  for _ in $(seq 1 100); do
    if ! running; then
      break
    fi
    if g status >/dev/null 2>&1; then
      ok=1
      break
    fi
    sleep 0.2
  done
  if [ -z "$ok" ]; then
    say "the server did not come up; its log:"
    cat "$DIR/garage.log" >&2
    exit 1
  fi

  local node key_out key_id key_secret
  node="$(g node id -q)"
  node="${node%%@*}"
  g layout assign -z dc1 -c 1G "$node" >/dev/null
  g layout apply --version 1 >/dev/null
  g bucket create "$BUCKET" >/dev/null
  key_out="$(g key create "$KEY_NAME")"
  key_id="$(printf '%s\n' "$key_out" | awk -F': *' '/Key ID/ { print $2; exit }' | tr -d ' ')"
  key_secret="$(printf '%s\n' "$key_out" | awk -F': *' '/Secret key/ { print $2; exit }' | tr -d ' ')"
  if [ -z "$key_id" ] || [ -z "$key_secret" ]; then
    say "cannot read the key from \`garage key create\`:"
    printf '%s\n' "$key_out" >&2
    exit 1
  fi
  g bucket allow --read --write --owner "$BUCKET" --key "$KEY_NAME" >/dev/null

  cat > "$DIR/env" <<EOF
export AWS_ACCESS_KEY_ID=$key_id
export AWS_SECRET_ACCESS_KEY=$key_secret
export AWS_DEFAULT_REGION=garage
export CAIRN_TEST_S3=s3:http://127.0.0.1:3900/$BUCKET
EOF
  chmod 600 "$DIR/env"

  # Wait for the S3 endpoint to accept connections.
  for _ in $(seq 1 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/3900) 2>/dev/null; then
      break
    fi
    sleep 0.2
  done
  say "Garage listening on 127.0.0.1:3900 (pid $(cat "$DIR/garage.pid")), bucket $BUCKET"
  cat "$DIR/env"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) cat "$DIR/env" ;;
  install) install ;;
  *)
    echo "usage: $0 start|stop|env|install" >&2
    exit 2
    ;;
esac
