#!/usr/bin/env bash
# Complete TOTP logins per second alone (both rounds, upstream included), on
# a fresh store of 100,000 users. The full side-by-side run is compare.sh.
#   bash benches/mfa.sh [SECONDS]   (at most 200,000 logins: keep it under ~8 s)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-7}
NAS_SECRET=bench-nas-secret-0123456789
UP_SECRET=bench-upstream-secret-0123456789
UP=127.0.0.1:21812 MFA2=127.0.0.1:21815
cargo build --release --quiet
cargo build --release --quiet --bench loadgen
LOADGEN=$(ls -t target/release/deps/loadgen-* | grep -v '\.d$' | head -1)
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
"$LOADGEN" upstream "$UP" "$UP_SECRET" & pids+=($!)
mkdir -p "$work"; "$LOADGEN" populate "$work" 100000
cat > "$work/proxy.toml" <<TOML
[server]
auth_listen = ["$MFA2"]
[store]
path = "mfa.db"
key_file = "seed.key"
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
RUST_LOG=warn target/release/mfa-proxy serve --config "$work/proxy.toml" 2>"$work/mfa.log" & P=$!; pids+=($P)
sleep 1
echo "max logins:    $(MFA_USER_OFFSET=${OFF:-0} "$LOADGEN" mfa "$MFA2" "$NAS_SECRET" window 64 "$SECS" 100000 "$P")"
