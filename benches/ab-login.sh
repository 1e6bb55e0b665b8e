#!/usr/bin/env bash
# A/B of complete TOTP logins (128 in flight, 100,000 users each): the tree
# here (new) against another checkout built in release (old, OLD=path),
# runs alternating, each at the start of a fresh 30 s step so that no user
# logs in twice in one. Prints the load generator's line for each run.
#   OLD=/path/to/other/checkout bash benches/ab-login.sh
set -euo pipefail
NAS_SECRET=bench-nas-secret-0123456789
UP_SECRET=bench-upstream-secret-0123456789
UP=127.0.0.1:22812
declare -A PORT=([new]=22813 [old]=22814)
declare -A TREE=([new]="$(cd "$(dirname "$0")/.." && pwd)" [old]="${OLD:?set OLD to another checkout built with cargo build --release and --bench loadgen}")
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
declare -A LG
for v in new old; do LG[$v]=$(ls -t ${TREE[$v]}/target/release/deps/loadgen-* | grep -v '\.d$' | head -1); done
"${LG[new]}" upstream "$UP" "$UP_SECRET" & pids+=($!)
declare -A PID
for v in new old; do
  mkdir -p "$work/$v"
  "${LG[$v]}" populate "$work/$v" 100000 >/dev/null
  cat > "$work/$v/proxy.toml" <<TOML
[server]
auth_listen = ["127.0.0.1:${PORT[$v]}"]
[store]
path = "mfa.db"
key_file = "seed.key"
[mfa]
reject_delay = "0s"
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
  RUST_LOG=warn ${TREE[$v]}/target/release/mfa-proxy serve --config "$work/$v/proxy.toml" 2>"$work/$v.log" & PID[$v]=$!; pids+=(${PID[$v]})
done
sleep 1
for i in 1 2 3 4; do
  # A fresh 30 s step: every user may log in again.
  sleep $(( 31 - $(date +%s) % 30 ))
  for v in new old; do
    out=$(MFA_USER_OFFSET=0 "${LG[$v]}" mfa "127.0.0.1:${PORT[$v]}" "$NAS_SECRET" window 128 2 100000 "${PID[$v]}")
    echo "$v run $i: $out"
  done
done
