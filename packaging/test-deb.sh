#!/usr/bin/env bash
# The Debian package end to end, as root on a Debian machine without the
# package (CI runs it):
#   packaging/test-deb.sh [FILE.deb]
#
# Builds the package with `cargo deb` (unless FILE.deb is given), installs it
# and checks the files, owners, modes, conffile and system user; runs the
# installed binary with the installed configuration as mfa-proxy.service
# would (its user, umask, open-files limit, ExecStartPre and ExecStart, read
# from the installed unit) and waits for its READY=1; adds a user with a
# local password and an authenticator app as the service user, and logs in
# with radclient (password, Access-Challenge, TOTP code, Access-Accept);
# stops it with SIGTERM; then removes and purges the package and checks that
# only the conffile and the store survive the removal, and nothing the purge.
# Prints "N passed, N failed" last; exits non-zero on a failure.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAILED: $*"; }
summary() { echo "$passed passed, $failed failed"; }
# check DESCRIPTION COMMAND...: the command's success is the check.
check() {
  local what=$1
  shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}
# owned PATH USER:GROUP MODE
owned() {
  local got
  got=$(stat -c '%U:%G %a' "$1" 2>/dev/null || echo "missing")
  if [ "$got" = "$2 $3" ]; then ok "$1 is $2 $3"; else fail "$1 is $got, not $2 $3"; fi
}
gone() { if [ -e "$1" ] || [ -L "$1" ]; then fail "$1 is left"; else ok "$1 is gone"; fi; }
stop() {
  echo "$*"
  fail "$*"
  summary
  exit 1
}

[ "$(id -u)" = 0 ] || stop "run as root: it installs and purges the package"
for tool in dpkg dpkg-query radclient python3 setpriv runuser; do
  command -v "$tool" >/dev/null 2>&1 || stop "$tool is not installed"
done
if dpkg-query -W -f='${Status}' mfa-proxy 2>/dev/null | grep -qv 'not-installed'; then
  stop "the package mfa-proxy is on this machine: this test would replace and purge it"
fi
getent passwd mfa-proxy >/dev/null && stop "a user mfa-proxy exists: this test would delete it"

tmp=$(mktemp -d)
chmod 755 "$tmp"
serve_pid=""
cleanup() {
  if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then
    kill -TERM "$serve_pid" 2>/dev/null
    wait "$serve_pid" 2>/dev/null
  fi
  if dpkg-query -W -f='${Status}' mfa-proxy 2>/dev/null | grep -qv 'not-installed'; then
    dpkg -P mfa-proxy >/dev/null 2>&1
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- build -------------------------------------------------------------------
deb=${1:-}
if [ -z "$deb" ]; then
  if ! cargo deb --version >/dev/null 2>&1; then
    cargo install --locked cargo-deb@3.8.0 || stop "cannot install cargo-deb"
  fi
  (cd "$repo" && cargo deb --locked --output "$tmp/") >"$tmp/cargo-deb.log" 2>&1 ||
    stop "cargo deb failed: $(tail -20 "$tmp/cargo-deb.log")"
  deb=$(ls "$tmp"/mfa-proxy_*.deb 2>/dev/null | head -1)
fi
[ -f "$deb" ] || stop "no package: $deb"
ok "package $(basename "$deb")"
version=$(dpkg-deb -f "$deb" Version)

# --- install -----------------------------------------------------------------
if dpkg -i "$deb" >"$tmp/dpkg-i.log" 2>&1; then ok "dpkg -i"; else stop "dpkg -i: $(cat "$tmp/dpkg-i.log")"; fi
check "status: install ok installed" \
  test "$(dpkg-query -W -f='${Status}' mfa-proxy)" = "install ok installed"
unit=/lib/systemd/system/mfa-proxy.service
config=/etc/mfa-proxy/proxy.toml
owned /usr/bin/mfa-proxy root:root 755
if command -v readelf >/dev/null 2>&1; then
  check "the binary is stripped (its symbols are in the -dbgsym package)" \
    bash -c '! readelf -S /usr/bin/mfa-proxy | grep -q debug_info'
fi
owned "$unit" root:root 644
owned /etc/mfa-proxy root:root 755
owned "$config" root:mfa-proxy 640
owned /usr/share/mfa-proxy/dictionaries/dictionary root:root 644
owned /usr/share/mfa-proxy/dictionaries/dictionary.rfc2865 root:root 644
owned /usr/share/mfa-proxy/templates/totp.en.txt root:root 644
owned /usr/share/doc/mfa-proxy/README.md root:root 644
owned /var/lib/mfa-proxy mfa-proxy:mfa-proxy 750
check "the unit installed is packaging/mfa-proxy.service" cmp -s "$unit" "$here/mfa-proxy.service"
check "the configuration installed is packaging/proxy.toml" cmp -s "$config" "$here/proxy.toml"
check "$config is a conffile" \
  grep -q "^ $config " <(dpkg-query -W -f='${Conffiles}\n' mfa-proxy)
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd mfa-proxy)
check "mfa-proxy is a system user (uid $uid), home /var/lib/mfa-proxy, no login shell" \
  test "$uid" -lt 1000 -a "$home" = /var/lib/mfa-proxy -a "$shell" = /usr/sbin/nologin
check "group mfa-proxy" bash -c 'getent group mfa-proxy >/dev/null'
v=$(/usr/bin/mfa-proxy --version)
check "--version: $v" grep -Eq "^mfa-proxy ${version%-*} \(commit [0-9a-z.+_-]+\)$" <<<"$v"

# --- run as the unit would ---------------------------------------------------
val() { sed -n "s/^$1=//p" "$unit" | head -1; }
user=$(val User)
group=$(val Group)
umask=$(val UMask)
nofile=$(val LimitNOFILE)
pre=$(val ExecStartPre)
start=$(val ExecStart)
check "ExecStart runs /usr/bin/mfa-proxy serve --config $config" \
  test "$start" = "/usr/bin/mfa-proxy serve --config $config"
# systemd raises the hard limit; root without CAP_SYS_RESOURCE (a container)
# cannot, and runs the proxy with the hard limit it has.
if (ulimit -n "$nofile") 2>/dev/null; then
  limit=$nofile
else
  limit=$(ulimit -Hn)
  echo "note: cannot raise the open-files limit to $nofile here; the proxy runs with $limit"
fi
# As systemd starts it: a clean environment, the unit's user, group, umask
# and limit. (The ambient CAP_NET_BIND_SERVICE is not needed for port 1812.)
# It execs: call it in a subshell, or in the background ($! is then the
# proxy's own process).
as_unit() {
  umask "$umask" && ulimit -n "$limit" &&
    exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin ${NOTIFY_SOCKET:+NOTIFY_SOCKET=$NOTIFY_SOCKET} \
      setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs -- "$@"
}
admin() { runuser -u "$user" -- /usr/bin/mfa-proxy "$@" --config "$config"; }

# shellcheck disable=SC2086 # the unit's command line, split as systemd does
if (as_unit $pre) >"$tmp/check.log" 2>&1; then
  ok "ExecStartPre: $pre"
else
  fail "ExecStartPre: $pre: $(cat "$tmp/check.log")"
fi
if /usr/bin/mfa-proxy init --help >/dev/null 2>&1; then
  check "mfa-proxy init (as $user)" admin init
fi

# Where the installed configuration listens, and the NAS's secret.
auth=$(sed -n 's/^auth_listen = \["\([^"]*\)".*/\1/p' "$config")
http=$(sed -n 's/^http_listen = "\([^"]*\)".*/\1/p' "$config")
secret=$(sed -n 's/^secret = "\([^"]*\)".*/\1/p' "$config" | head -1)
[ -n "$auth" ] && [ -n "$http" ] && [ -n "$secret" ] ||
  stop "no auth_listen, http_listen or client secret in $config"
python3 - "$auth" "$http" <<'EOF' || stop "$auth (UDP) or $http (TCP) is taken: stop what listens there"
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).bind((host, int(port)))
host, port = sys.argv[2].rsplit(":", 1)
socket.socket(socket.AF_INET, socket.SOCK_STREAM).bind((host, int(port)))
EOF

# start_serve LOG [WRAPPER...]: runs ExecStart as the unit would (a WRAPPER
# such as strace goes between setpriv and the proxy) and waits for its
# READY=1 on a notification socket where python plays systemd's part.
start_serve() {
  local log=$1 notify_pid
  shift
  export NOTIFY_SOCKET=$tmp/notify.sock
  rm -f "$NOTIFY_SOCKET"
  python3 - "$NOTIFY_SOCKET" >"$tmp/notify.txt" 2>&1 <<'EOF' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
s.settimeout(30)
print(s.recv(4096).decode().strip())
EOF
  notify_pid=$!
  for _ in $(seq 50); do [ -S "$NOTIFY_SOCKET" ] && break; sleep 0.1; done
  # shellcheck disable=SC2086 # the unit's command line, split as systemd does
  as_unit "$@" $start 2>"$log" &
  serve_pid=$!
  unset NOTIFY_SOCKET
  wait "$notify_pid"
  grep -qx 'READY=1' "$tmp/notify.txt" && kill -0 "$serve_pid" 2>/dev/null
}
if start_serve "$tmp/serve.log"; then
  ok "serve (as $user) told systemd READY=1"
else
  stop "serve did not get ready: $(cat "$tmp/notify.txt") $(cat "$tmp/serve.log")"
fi
owned /var/lib/mfa-proxy/mfa.db mfa-proxy:mfa-proxy 600
owned /var/lib/mfa-proxy/seed.key mfa-proxy:mfa-proxy 600
check "open-files limit $limit" grep -Eq "^Max open files +$limit +$limit " "/proc/$serve_pid/limits"

# --- a user, an authenticator app, a login ----------------------------------
totp() {
  python3 - "$1" "$2" <<'EOF'
import base64, hashlib, hmac, struct, sys
secret, t = sys.argv[1], int(sys.argv[2])
key = base64.b32decode(secret + "=" * (-len(secret) % 8))
h = hmac.new(key, struct.pack(">Q", t // 30), hashlib.sha1).digest()
o = h[-1] & 15
print("%06d" % ((struct.unpack(">I", h[o:o + 4])[0] & 0x7FFFFFFF) % 1000000))
EOF
}
check "user add alice --password-stdin (as $user)" \
  admin user add alice --password-stdin <<<"alice-pass-0123"
seed=$(admin totp enroll alice | grep -o 'secret=[A-Z2-7]*' | cut -d= -f2)
t0=$(date +%s)
check "totp enroll alice" test -n "$seed"
check "totp activate alice" admin totp activate alice "$(totp "$seed" "$t0")"

rad() { radclient -x -r 1 -t 5 "$auth" auth "$secret" 2>&1; }
first=$(printf 'User-Name = alice\nUser-Password = "alice-pass-0123"\nMessage-Authenticator = 0x00\n' | rad)
state=$(sed -n '/Received/,$s/^[[:space:]]*State = \(0x[0-9a-fA-F]*\).*/\1/p' <<<"$first" | head -1)
if grep -q 'Received Access-Challenge' <<<"$first" && [ -n "$state" ]; then
  ok "the password gets an Access-Challenge"
else
  fail "no Access-Challenge: $first"
fi
# The activation claimed this step's code: the login uses the next step's.
code=$(totp "$seed" $((t0 + 30)))
second=$(printf 'User-Name = alice\nUser-Password = "%s"\nState = %s\nMessage-Authenticator = 0x00\n' "$code" "$state" | rad)
if grep -q 'Received Access-Accept' <<<"$second"; then
  ok "the code gets an Access-Accept"
else
  fail "no Access-Accept: $second"
fi
check "report signins: SUCCESS_OATH_CODE_VERIFIED" \
  grep -q 'alice,SUCCESS_OATH_CODE_VERIFIED,accept' <(admin report signins --format csv)

kill -TERM "$serve_pid"
wait "$serve_pid"
rc=$?
serve_pid=""
check "SIGTERM stops serve with status 0 (got $rc)" test "$rc" = 0
check "the log says it stopped on SIGTERM" grep -q 'SIGTERM: stopping' "$tmp/serve.log"
check "no password or code in the log" \
  bash -c "! grep -Fq -e alice-pass-0123 -e '$code' -e '$seed' '$tmp/serve.log'"

# --- the system calls it makes, against the unit's filter --------------------
if command -v strace >/dev/null 2>&1; then
  mkdir -m 777 "$tmp/trace"
  if start_serve "$tmp/trace/serve.log" strace -f -qq -c -o "$tmp/trace/counts"; then
    printf 'User-Name = alice\nUser-Password = "alice-pass-0123"\nMessage-Authenticator = 0x00\n' |
      rad >/dev/null
    kill -TERM "$(pgrep -P "$serve_pid")"
    wait "$serve_pid"
    serve_pid=""
    awk '$NF ~ /^[a-z0-9_]+$/ && $NF != "total" && $NF != "syscall" {print $NF}' \
      "$tmp/trace/counts" >"$tmp/trace/syscalls"
    out=$(bash "$here/verify-unit.sh" --syscalls "$tmp/trace/syscalls" "$unit" 2>&1)
    if [ "$(tail -1 <<<"$out")" = "1 passed, 0 failed" ]; then
      ok "the unit's SystemCallFilter allows the $(wc -l <"$tmp/trace/syscalls") system calls strace saw serve make: $(tr '\n' ' ' <"$tmp/trace/syscalls")"
    elif grep -q '^skipping' <<<"$out"; then
      echo "$out"
    else
      fail "strace saw serve make system calls the unit denies: $out"
    fi
  else
    fail "serve under strace did not get ready: $(cat "$tmp/trace/serve.log")"
  fi
else
  echo "skipping the system call check: strace is not installed"
fi

# --- remove, purge -----------------------------------------------------------
if dpkg -r mfa-proxy >"$tmp/dpkg-r.log" 2>&1; then ok "dpkg -r"; else fail "dpkg -r: $(cat "$tmp/dpkg-r.log")"; fi
check "status: deinstall ok config-files" \
  test "$(dpkg-query -W -f='${Status}' mfa-proxy)" = "deinstall ok config-files"
for f in /usr/bin/mfa-proxy "$unit" /usr/share/mfa-proxy /usr/share/doc/mfa-proxy; do gone "$f"; done
check "remove keeps the conffile $config" test -f "$config"
check "remove keeps the store" test -f /var/lib/mfa-proxy/mfa.db -a -f /var/lib/mfa-proxy/seed.key
check "remove keeps the user" bash -c 'getent passwd mfa-proxy >/dev/null'

if dpkg -P mfa-proxy >"$tmp/dpkg-p.log" 2>&1; then ok "dpkg -P"; else fail "dpkg -P: $(cat "$tmp/dpkg-p.log")"; fi
check "status: not installed" \
  bash -c "! dpkg-query -W -f='\${Status}' mfa-proxy 2>/dev/null | grep -qv not-installed"
for f in "$config" /etc/mfa-proxy /var/lib/mfa-proxy; do gone "$f"; done
check "purge removes the user" bash -c '! getent passwd mfa-proxy'
check "purge removes the group" bash -c '! getent group mfa-proxy'
left=$(find /etc /var /usr /run /tmp -xdev -path "$tmp" -prune -o -uid "$uid" -print 2>/dev/null | head -5)
check "no file is left owned by uid $uid${left:+: $left}" test -z "$left"

summary
[ "$failed" -eq 0 ]
