#!/usr/bin/env bash
# Checks the systemd unit with systemd-analyze, for CI and by hand:
#   packaging/verify-unit.sh [UNIT]        (default: packaging/mfa-proxy.service)
#   packaging/verify-unit.sh --syscalls FILE [UNIT]
#
# The second form checks only 3., with the system calls named in FILE (one a
# line: test-deb.sh records those of the installed proxy with strace).
#
# 1. `systemd-analyze verify` finds nothing to say about the unit (an unknown
#    or misspelt key is only a warning there, so any line naming the unit
#    fails the check). The binary is not installed where the unit runs it,
#    so a copy of the unit runs a stub instead.
# 2. `systemd-analyze security --offline` rates its exposure "OK" or better.
# 3. The system calls the proxy needs (listed below: its sockets, the event
#    loop, threads, the SQLite store, setrlimit for the open-files limit)
#    pass the unit's SystemCallFilter.
#
# Without systemd-analyze the check is skipped, unless CI=true: then it fails.
# Prints "N passed, N failed" last and exits non-zero on a failure.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
seen=""
if [ "${1:-}" = --syscalls ]; then
  seen=${2:?--syscalls needs a file}
  shift 2
fi
unit=${1:-$here/mfa-proxy.service}
name=$(basename "$unit")
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAILED: $*"; }
summary() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

if ! command -v systemd-analyze >/dev/null 2>&1; then
  if [ "${CI:-}" = true ]; then
    fail "systemd-analyze is not installed (apt-get install systemd)"
    summary
[ "$failed" -eq 0 ]
    exit 1
  fi
  echo "skipping: systemd-analyze is not installed"
  exit 0
fi
if [ ! -r "$unit" ]; then
  fail "$unit: cannot read the unit"
  summary
[ "$failed" -eq 0 ]
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin"
printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/mfa-proxy"
chmod 755 "$tmp/bin/mfa-proxy"
sed "s#/usr/bin/mfa-proxy#$tmp/bin/mfa-proxy#g" "$unit" >"$tmp/$name"

verify_and_rate() {
  # 1. verify
  out=$(systemd-analyze verify "$tmp/$name" 2>&1)
  rc=$?
  mine=$(printf '%s\n' "$out" | grep -F -e "$tmp/$name" -e "$name:" || true)
  if [ "$rc" -eq 0 ] && [ -z "$mine" ]; then
    ok "systemd-analyze verify $name"
  else
    fail "systemd-analyze verify $name (exit $rc):"
    printf '%s\n' "${mine:-$out}" | sed "s#$tmp/##g; s/^/    /"
  fi
  for key in 'ExecStart=/usr/bin/mfa-proxy serve --config /etc/mfa-proxy/proxy.toml' \
    'ExecStartPre=/usr/bin/mfa-proxy check --config /etc/mfa-proxy/proxy.toml' \
    'ExecReload=/bin/kill -HUP $MAINPID' 'User=mfa-proxy' 'LimitNOFILE=65536' \
    'ReadWritePaths=/var/lib/mfa-proxy' 'NoNewPrivileges=yes' 'ProtectSystem=strict' \
    'AmbientCapabilities=CAP_NET_BIND_SERVICE' 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE'; do
    if grep -qxF "$key" "$unit"; then ok "$key"; else fail "the unit lacks the line: $key"; fi
  done

  # 2. exposure: 1.7 of 10 when written; "OK" ends at 3.9.
  if sec=$(systemd-analyze security --offline=yes --threshold=39 "$tmp/$name" 2>&1); then
    ok "$(printf '%s\n' "$sec" | grep -o 'Overall exposure level.*' | sed "s#$tmp/##")"
  else
    fail "systemd-analyze security: $(printf '%s\n' "$sec" | tail -1 | sed "s#$tmp/##")"
  fi
}

[ -n "$seen" ] || verify_and_rate

# 3. SystemCallFilter: the allowed set is the first (allow) line's groups and
# calls, less every "~" line's. Groups nest.
expand() {
  local g
  for g in "$@"; do
    case "$g" in
      @*) systemd-analyze syscall-filter --no-pager "$g" 2>/dev/null |
        awk 'NR > 1 && /^    [^#]/ {print $1}' | while read -r s; do expand "$s"; done ;;
      *) echo "$g" ;;
    esac
  done
}
allow=$(grep '^SystemCallFilter=[^~]' "$unit" | sed 's/^SystemCallFilter=//' | tr ' ' '\n')
deny=$(grep '^SystemCallFilter=~' "$unit" | sed 's/^SystemCallFilter=~//' | tr ' ' '\n')
# shellcheck disable=SC2086
allowed=$(expand $allow @default | sort -u)
# shellcheck disable=SC2086
denied=$(expand $deny | sort -u)
needed="setrlimit prlimit64 getrlimit socket bind setsockopt getsockopt getsockname
  connect sendto recvfrom sendmsg recvmsg sendmmsg recvmmsg accept4 listen shutdown
  epoll_create1 epoll_ctl epoll_wait epoll_pwait eventfd2 pipe2 poll ppoll
  mmap munmap mremap madvise mprotect brk futex clone3 clone set_robust_list rseq
  getrandom openat close read write pread64 pwrite64 fsync fdatasync ftruncate
  fcntl flock unlink unlinkat newfstatat statx fstat lseek getcwd readlink
  rt_sigaction rt_sigprocmask rt_sigreturn sigaltstack sched_getaffinity
  sched_yield nanosleep clock_nanosleep clock_gettime gettid getpid exit exit_group"
if [ -n "$seen" ]; then
  needed=$(grep -Eo '^[a-z0-9_]+' "$seen" | sort -u)
fi
missing=""
for s in $needed; do
  if ! grep -qxF "$s" <<<"$allowed" || grep -qxF "$s" <<<"$denied"; then
    missing="$missing $s"
  fi
done
if [ -z "$allowed" ]; then
  fail "systemd-analyze syscall-filter listed no system calls"
elif [ -z "$missing" ]; then
  ok "SystemCallFilter allows the $(wc -w <<<"$needed") system calls mfa-proxy needs${seen:+ (as seen in $seen)}"
else
  fail "SystemCallFilter denies system calls mfa-proxy needs:$missing"
fi

summary
