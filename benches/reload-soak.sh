#!/usr/bin/env bash
# Ten SIGHUPs during a run of complete two-round TOTP logins driven by the
# load generator (64 in flight, 20 s, 100,000 users): each reload changes a
# policy, the fifth file is broken and must be refused. Prints the load
# generator's line (logins, failed, lost), the reloads applied and refused
# from the log, and the configuration generation from /metrics.
#   cargo build --release && cargo bench --bench loadgen --no-run
#   bash benches/reload-soak.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
NAS_SECRET=bench-nas-secret-0123456789
UP_SECRET=bench-upstream-secret-0123456789
UP=127.0.0.1:23812; PORT=23813; HTTP=127.0.0.1:23814
LG=$(ls -t "$root"/target/release/deps/loadgen-* | grep -v '\.d$' | head -1)
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
"$LG" upstream "$UP" "$UP_SECRET" & pids+=($!)
"$LG" populate "$work" 100000 >/dev/null
config() { # $1: the generation's policy name
  cat > "$work/proxy.toml.new" <<TOML
[server]
auth_listen = ["127.0.0.1:$PORT"]
http_listen = "$HTTP"
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
[[policy]]
name = "$1"
users = ["nobody-$1"]
mfa = "skip"
TOML
  mv "$work/proxy.toml.new" "$work/proxy.toml"
}
config gen-1
RUST_LOG=info "$root/target/release/mfa-proxy" serve --config "$work/proxy.toml" 2>"$work/serve.log" & PID=$!; pids+=($PID)
sleep 1
# A fresh 30 s step: every user may log in again.
sleep $(( 31 - $(date +%s) % 30 ))
MFA_USER_OFFSET=0 "$LG" mfa "127.0.0.1:$PORT" "$NAS_SECRET" window 64 20 100000 "$PID" > "$work/lg.out" &
LGPID=$!
for i in $(seq 1 10); do
  sleep 1.5
  if [ "$i" = 5 ]; then
    printf '[server\nbroken = \n' > "$work/proxy.toml"
  else
    config "gen-$((i + 1))"
  fi
  kill -HUP "$PID"
done
wait "$LGPID"
cat "$work/lg.out"
echo "reloads applied: $(grep -c 'configuration reloaded' "$work/serve.log"), refused: $(grep -ci 'refused\|not valid' "$work/serve.log")"
curl -s "http://$HTTP/metrics" | grep -E '^mfa_proxy_config_(generation|last_reload_success)'
