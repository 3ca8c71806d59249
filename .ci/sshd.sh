#!/usr/bin/env bash
# An OpenSSH server on 127.0.0.1:2222 for cairn's SFTP tests.
#
#   .ci/sshd.sh start   installs openssh-server when missing, generates a
#                       host key and a client key, starts sshd (public keys
#                       only, root allowed), and sets up ~/.ssh/config so
#                       that `ssh -p 2222 root@127.0.0.1` works without
#                       questions; prints the variables for the tests
#   .ci/sshd.sh env     prints them again (`eval "$(.ci/sshd.sh env)"`)
#   .ci/sshd.sh stop    stops sshd and removes the ~/.ssh/config block
#
# Everything lives in $CAIRN_SSHD_DIR (default /tmp/cairn-sshd). cairn's
# SFTP backend runs the system `ssh`, which reads ~/.ssh/config, so the
# client key and known_hosts file are set there, in a block between
# marker lines that `start` rewrites and `stop` removes. The server
# listens on the loopback interface only.
set -euo pipefail

PORT="${CAIRN_SSHD_PORT:-2222}"
DIR="${CAIRN_SSHD_DIR:-/tmp/cairn-sshd}"
SSH_CONFIG="$HOME/.ssh/config"
BEGIN="# >>> cairn test sshd (.ci/sshd.sh) >>>"
END="# <<< cairn test sshd (.ci/sshd.sh) <<<"
URL="sftp://$(id -un)@127.0.0.1:$PORT/tmp/cairn-sftp-test"

say() { echo "sshd.sh: $*" >&2; }

running() {
  [ -f "$DIR/sshd.pid" ] && kill -0 "$(cat "$DIR/sshd.pid")" 2>/dev/null
}

remove_block() {
  [ -f "$SSH_CONFIG" ] || return 0
  awk -v b="$BEGIN" -v e="$END" '
    $0 == b { skip = 1; next }
    $0 == e { skip = 0; next }
    !skip { print }' "$SSH_CONFIG" > "$SSH_CONFIG.cairn-tmp"
  mv "$SSH_CONFIG.cairn-tmp" "$SSH_CONFIG"
  chmod 600 "$SSH_CONFIG"
}

print_env() {
  echo "export CAIRN_TEST_SFTP=$URL"
}

start() {
  if ! [ -x /usr/sbin/sshd ]; then
    say "installing openssh-server"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq openssh-server openssh-client >/dev/null
  fi
  if running; then
    say "already running (pid $(cat "$DIR/sshd.pid"))"
    print_env
    return 0
  fi
  mkdir -p "$DIR"
  chmod 700 "$DIR"
  [ -f "$DIR/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C cairn-test-host -f "$DIR/host_ed25519"
  [ -f "$DIR/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C cairn-test-client -f "$DIR/client_ed25519"
  cp "$DIR/client_ed25519.pub" "$DIR/authorized_keys"
  echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$DIR/host_ed25519.pub")" > "$DIR/known_hosts"

  cat > "$DIR/sshd_config" <<EOF
Port $PORT
ListenAddress 127.0.0.1
HostKey $DIR/host_ed25519
PidFile $DIR/sshd.pid
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthenticationMethods publickey
AuthorizedKeysFile $DIR/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp internal-sftp
LogLevel VERBOSE
EOF
  # The privilege separation directory Debian's sshd expects.
  mkdir -p /run/sshd
  chmod 755 /run/sshd
  /usr/sbin/sshd -t -f "$DIR/sshd_config"
  /usr/sbin/sshd -f "$DIR/sshd_config" -E "$DIR/sshd.log"

  mkdir -p "$HOME/.ssh"
  chmod 700 "$HOME/.ssh"
  touch "$SSH_CONFIG"
  remove_block
  # Prepended: the first value ssh finds for an option wins.
  {
    echo "$BEGIN"
    echo "Match host 127.0.0.1 exec \"test %p = $PORT\""
    echo "  IdentityFile $DIR/client_ed25519"
    echo "  UserKnownHostsFile $DIR/known_hosts"
    echo "  StrictHostKeyChecking accept-new"
    echo "  BatchMode yes"
    echo "$END"
    cat "$SSH_CONFIG"
  } > "$SSH_CONFIG.cairn-tmp"
  mv "$SSH_CONFIG.cairn-tmp" "$SSH_CONFIG"
  chmod 600 "$SSH_CONFIG"

  local i
  for i in $(seq 1 50); do
    if ssh -p "$PORT" -o ConnectTimeout=2 "$(id -un)@127.0.0.1" true 2>/dev/null; then
      say "sshd listening on 127.0.0.1:$PORT (pid $(cat "$DIR/sshd.pid"))"
      print_env
      return 0
    fi
    sleep 0.2
  done
  say "sshd did not accept a connection; its log:"
  cat "$DIR/sshd.log" >&2 || true
  ssh -v -p "$PORT" "$(id -un)@127.0.0.1" true >&2 || true
  exit 1
}

stop() {
  if running; then
    kill "$(cat "$DIR/sshd.pid")"
    say "stopped"
  fi
  remove_block
  rm -rf "$DIR" /tmp/cairn-sftp-test
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) print_env ;;
  *)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
