#!/usr/bin/env bash
# A/B of the plain proxy ([mfa] enabled = false), 64 requests in flight,
# 5 s a run: the tree here (new) against another checkout built in release
# (old, OLD=path), runs alternating, seven each, beside a relay that does
# nothing (the floor). Prints the load generator's line for each run.
#   OLD=/path/to/other/checkout bash benches/ab-proxy.sh
set -euo pipefail
NAS_SECRET=bench-nas-secret-0123456789
UP_SECRET=bench-upstream-secret-0123456789
UP=127.0.0.1:24812
declare -A PORT=([new]=24813 [old]=24814 [floor]=24815)
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
  cat > "$work/$v/proxy.toml" <<TOML
[server]
auth_listen = ["127.0.0.1:${PORT[$v]}"]
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
  (cd "$work/$v" && RUST_LOG=warn exec ${TREE[$v]}/target/release/mfa-proxy serve --config proxy.toml 2>"$work/$v.log" >/dev/null) & PID[$v]=$!; pids+=(${PID[$v]})
done
"${LG[new]}" relay "127.0.0.1:${PORT[floor]}" "$UP" & PID[floor]=$!; pids+=(${PID[floor]})
sleep 1
for i in 1 2 3 4 5 6 7; do
  for v in new old floor; do
    # The relay signs nothing: its answers carry the upstream's secret.
    secret=$NAS_SECRET; [ "$v" = floor ] && secret=$UP_SECRET
    out=$("${LG[new]}" load "127.0.0.1:${PORT[$v]}" "$secret" window 64 5 "${PID[$v]}")
    echo "$v run $i: $out"
  done
done
