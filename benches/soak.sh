#!/usr/bin/env bash
# Where a soak loses requests: the plain proxy at half its maximum rate for
# SOAK seconds, then what went unanswered, and the datagrams the kernel
# dropped on each process's UDP sockets (the drops column of /proc/net/udp,
# matched to processes through /proc/PID/fd), and the proxy's own drop
# counters from /metrics.
#   bash benches/soak.sh [SOAK_SECONDS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK=${1:-10}
RUNS=${2:-3}
NAS_SECRET=bench-nas-secret-0123456789
UP_SECRET=bench-upstream-secret-0123456789
UP=127.0.0.1:21912 MFA=127.0.0.1:21913 HTTP=127.0.0.1:21980

cargo build --release --quiet
cargo build --release --quiet --bench loadgen
LOADGEN=$(ls -t target/release/deps/loadgen-* | grep -v '\.d$' | head -1)
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# Kernel drops on the UDP sockets of process $1 (sum over its sockets).
drops() {
  python3 - "$1" <<'PY'
import os, sys
pid = sys.argv[1]
inodes = set()
for fd in os.listdir(f"/proc/{pid}/fd"):
    try:
        t = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        continue
    if t.startswith("socket:["):
        inodes.add(t[8:-1])
total = 0
for table in ("/proc/net/udp", "/proc/net/udp6"):
    for line in open(table).read().splitlines()[1:]:
        f = line.split()
        if len(f) > 12 and f[9] in inodes:
            total += int(f[12])
print(total)
PY
}

"$LOADGEN" upstream "$UP" "$UP_SECRET" & UP_PID=$!; pids+=($UP_PID)
cat > "$work/proxy.toml" <<TOML
[server]
auth_listen = ["$MFA"]
http_listen = "$HTTP"
[mfa]
enabled = false
[[client]]
name = "bench"
address = "127.0.0.1"
secret = "$NAS_SECRET"
[[upstream]]
name = "standin"
address = "$UP"
secret = "$UP_SECRET"
health_check = "none"
TOML
RUST_LOG=warn target/release/mfa-proxy serve --config "$work/proxy.toml" 2>"$work/mfa.log" & MFA_PID=$!; pids+=($MFA_PID)
sleep 0.5
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
max=$("$LOADGEN" load "$MFA" "$NAS_SECRET" window 64 5 "$MFA_PID")
echo "max rate:  $max"
rate=$(echo "$max" | field rate); half=$(( ${rate%.*} / 2 ))
for i in $(seq "$RUNS"); do
  before_up=$(drops "$UP_PID"); before_mfa=$(drops "$MFA_PID")
  out=$("$LOADGEN" load "$MFA" "$NAS_SECRET" rate "$half" "$SOAK" "$MFA_PID")
  echo "soak ${SOAK}s @${half}/s: $out"
  echo "  kernel drops: stand-in upstream +$(( $(drops "$UP_PID") - before_up )), mfa-proxy +$(( $(drops "$MFA_PID") - before_mfa ))"
done
echo "  mfa-proxy /metrics (non-zero drops):"
curl -s "http://$HTTP/metrics" | grep -E '^mfa_proxy_(drops_total|udp_kernel_drops_total)' | grep -v ' 0$' | sed 's/^/    /' || true
