#!/usr/bin/env bash
# Side-by-side PAP proxying benchmark: mfa-proxy vs FreeRADIUS 3.2 as a plain
# proxy, both in front of the same fast stand-in upstream, driven by the same
# load generator. Prints one table row per measurement; see BENCHMARKS.md.
#   bash benches/compare.sh [SECONDS] [SOAK_SECONDS]
#   ONLY=mfa bash benches/compare.sh      # just the TOTP login section
#   ONLY=pending bash benches/compare.sh  # just the 10,000 pending pushes
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
SOAK=${2:-60}
MFA_SECS=${MFA_SECS:-2}
NAS_SECRET=bench-nas-secret-0123456789
UP_SECRET=bench-upstream-secret-0123456789
UP=127.0.0.1:21812 MFA=127.0.0.1:21813 FR=127.0.0.1:21814 MFA2=127.0.0.1:21815
MFA3=127.0.0.1:21816 HTTP3=127.0.0.1:21880 SINK=127.0.0.1:21881
RELAY=127.0.0.1:21817 LOGIN_RELAY=127.0.0.1:21818 MEMORY=127.0.0.1:21819
DURABLE=127.0.0.1:21820
section() { [ -z "${ONLY:-}" ] || [ "$ONLY" = "$1" ]; }
# The NAS and the upstream, the same in every proxy configuration.
nas_and_upstream() {
  printf '[[client]]\nname = "bench"\naddress = "127.0.0.1"\nsecret = "%s"\n' "$NAS_SECRET"
  printf '[[upstream]]\nname = "standin"\naddress = "%s"\nsecret = "%s"\nhealth_check = "none"\n' "$UP" "$UP_SECRET"
}

cargo build --release --quiet
cargo build --release --quiet --bench loadgen
LOADGEN=$(ls -t target/release/deps/loadgen-* | grep -v '\.d$' | head -1)
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

"$LOADGEN" upstream "$UP" "$UP_SECRET" & pids+=($!)

if section plain; then
cat > "$work/proxy.toml" <<TOML
[server]
auth_listen = ["$MFA"]
[mfa]
enabled = false
$(nas_and_upstream)
TOML
RUST_LOG=warn target/release/mfa-proxy serve --config "$work/proxy.toml" 2>"$work/mfa.log" & MFA_PID=$!; pids+=($MFA_PID)

# FreeRADIUS as a plain proxy to the same upstream.
cp -rL /etc/freeradius/3.0 "$work/raddb"
sed -i -e '/^\s*user = /d' -e '/^\s*group = /d' \
  -e "s|^\s*raddbdir = .*|raddbdir = $work/raddb|" -e "s|^\s*logdir = .*|logdir = $work|" \
  -e "s|^\s*run_dir = .*|run_dir = $work|" "$work/raddb/radiusd.conf"
rm -f "$work/raddb/sites-enabled/"* "$work/raddb/mods-enabled/"*
cat > "$work/raddb/sites-enabled/bench" <<CONF
server default {
listen {
	type = auth
	ipaddr = ${FR%:*}
	port = ${FR#*:}
}
authorize {
	update control {
		&Proxy-To-Realm := "bench"
	}
}
authenticate {
}
}
CONF
cat > "$work/raddb/proxy.conf" <<CONF
proxy server {
	default_fallback = no
}
home_server standin {
	type = auth
	ipaddr = ${UP%:*}
	port = ${UP#*:}
	secret = $UP_SECRET
	response_window = 5
	status_check = none
}
home_server_pool standin_pool {
	type = fail-over
	home_server = standin
}
realm bench {
	auth_pool = standin_pool
	nostrip
}
CONF
printf 'client bench {\n\tipaddr = 127.0.0.1\n\tsecret = %s\n}\n' "$NAS_SECRET" > "$work/raddb/clients.conf"
freeradius -f -l "$work/fr.log" -d "$work/raddb" & FR_PID=$!; pids+=($FR_PID)
sleep 3
kill -0 "$FR_PID" || { cat "$work/fr.log"; exit 1; }
fi

run() { "$LOADGEN" load "$@"; }
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }

# The same proxy with the second factor on, in front of the same upstream,
# with 100,000 users enrolled.
if section mfa; then
mkdir -p "$work/mfa"
"$LOADGEN" populate "$work/mfa" 100000
# Untouched copies for the memory store with SQLite writes (below): no
# step of them is used yet.
for w in claim,audit claim audit none; do cp -r "$work/mfa" "$work/durable-$w"; done
cat > "$work/mfa/proxy.toml" <<TOML
[server]
auth_listen = ["$MFA2"]
[store]
path = "mfa.db"
key_file = "seed.key"
$(nas_and_upstream)
TOML
RUST_LOG=warn target/release/mfa-proxy serve --config "$work/mfa/proxy.toml" 2>"$work/mfa.log" & MFA2_PID=$!; pids+=($MFA2_PID)
sleep 1   # let it open the store and bind
fi

if section plain; then
echo "== direct to the stand-in upstream (baseline)"
run "$UP" "$UP_SECRET" window 64 "$SECS"
# The floor: a relay that forwards datagrams and does nothing else, on one
# tokio task like mfa-proxy's loop. What it spends per request is what the
# machine charges any proxy for the system calls and wake-ups alone.
"$LOADGEN" relay "$RELAY" "$UP" & RELAY_PID=$!; pids+=($RELAY_PID)
sleep 0.5
echo "== no-op relay (the floor)"
echo "max rate:      $(run "$RELAY" "$UP_SECRET" window 64 "$SECS" "$RELAY_PID")"
for r in 5000 10000 20000; do
  echo "cpu @${r}/s:  $(run "$RELAY" "$UP_SECRET" rate "$r" "$SECS" "$RELAY_PID")"
done
kill "$RELAY_PID"
for who in mfa-proxy freeradius; do
  if [ $who = mfa-proxy ]; then T=$MFA P=$MFA_PID; else T=$FR P=$FR_PID; fi
  echo "== $who"
  max=$(run "$T" "$NAS_SECRET" window 64 "$SECS" "$P"); echo "max rate:      $max"
  rate=$(echo "$max" | field rate); half=$(( ${rate%.*} / 2 ))
  for r in 5000 10000 20000; do
    echo "cpu @${r}/s:  $(run "$T" "$NAS_SECRET" rate "$r" "$SECS" "$P")"
  done
  # Latency is noisy on a shared 2-core machine: three runs, each printed;
  # BENCHMARKS.md reports the median p99.
  for i in 1 2 3; do
    echo "latency @half: $(run "$T" "$NAS_SECRET" rate "$half" "$SECS" "$P")"
    echo "direct @half:  $(run "$UP" "$UP_SECRET" rate "$half" "$SECS")"
  done
  echo "soak ${SOAK}s:      $(run "$T" "$NAS_SECRET" rate "$half" "$SOAK" "$P")"
done
fi

if section mfa; then
echo "== mfa-proxy with TOTP logins (100,000 users enrolled)"
echo "rss idle:      $(grep VmRSS /proc/$MFA2_PID/status)"
# A 30 s step gives each user two logins (at most 200,000): keep the maximum
# run short, and start the next run after the users it used.
# 128 in flight: a login waits for the store twice, so 64 leave the proxy
# idle part of the time (36.8k at 64 against 43.7k at 128 and 256 when
# measured; the plain proxy is fastest at 64).
max=$(MFA_USER_OFFSET=0 "$LOADGEN" mfa "$MFA2" "$NAS_SECRET" window 128 "$MFA_SECS" 100000 "$MFA2_PID")
echo "max logins:    $max"
used=$(echo "$max" | field started)
echo "1000 logins/s: $(MFA_USER_OFFSET=$used "$LOADGEN" mfa "$MFA2" "$NAS_SECRET" rate 1000 "$SECS" 100000 "$MFA2_PID")"
echo "rss after:     $(grep VmRSS /proc/$MFA2_PID/status)"
# The floor for logins: a relay that does nothing but a login's six
# datagrams (no checks, no signatures, no store), with as many users as it
# takes, since it checks no code.
"$LOADGEN" login-relay "$LOGIN_RELAY" "$UP" & LRELAY_PID=$!; pids+=($LRELAY_PID)
sleep 0.5
echo "login relay:   $("$LOADGEN" mfa "$LOGIN_RELAY" "$NAS_SECRET" window 128 "$MFA_SECS" 100000000 "$LRELAY_PID")"
kill "$LRELAY_PID"
# The ceiling any store leaves: mfa-proxy itself, with the store calls of a
# login answered from memory (codes still checked, replays still refused),
# for as many users as it takes, since the users are made up.
sed "s|$MFA2|$MEMORY|" "$work/mfa/proxy.toml" > "$work/memory.toml"
"$LOADGEN" memory-store "$work/memory.toml" >/dev/null & MEMORY_PID=$!; pids+=($MEMORY_PID)
sleep 0.5
echo "memory store:  $(MFA_USER_OFFSET=0 "$LOADGEN" mfa "$MEMORY" "$NAS_SECRET" window 128 "$MFA_SECS" 100000000 "$MEMORY_PID")"
kill "$MEMORY_PID"
# The same, but what a login must keep (the claimed step, the audit record)
# is written to SQLite, a transaction per batch as serve does: the ceiling
# of any store that serves a login's reads from memory. Then each write
# alone, and empty transactions. Each on its own untouched copy of the
# 100,000 users.
for w in claim,audit claim audit none; do
  sed "s|$MFA2|$DURABLE|" "$work/mfa/proxy.toml" > "$work/durable-$w/proxy.toml"
  "$LOADGEN" memory-store "$work/durable-$w/proxy.toml" "$w" >/dev/null & DURABLE_PID=$!; pids+=($DURABLE_PID)
  sleep 0.5
  echo "memory, writes $w: $(MFA_USER_OFFSET=0 "$LOADGEN" mfa "$DURABLE" "$NAS_SECRET" window 128 "$MFA_SECS" 100000 "$DURABLE_PID")"
  kill "$DURABLE_PID"; wait "$DURABLE_PID" 2>/dev/null || true
done
fi

if section pending; then
# 10,000 push verifications held at once (the provider never calls back),
# and PAP logins of other users through the same proxy meanwhile.
mkdir -p "$work/push"
"$LOADGEN" populate "$work/push" 10000 push
cat > "$work/push/proxy.toml" <<TOML
[server]
auth_listen = ["$MFA3"]
http_listen = "$HTTP3"
public_url = "http://$HTTP3"
[store]
path = "mfa.db"
key_file = "seed.key"
[mfa]
unenrolled = "accept"
push_timeout = "300s"
$(nas_and_upstream)
[[provider]]
name = "sink"
type = "webhook"
methods = ["push"]
url = "http://$SINK/verify"
key = "bench-provider-key-0123456789"
TOML
RUST_LOG=warn target/release/mfa-proxy serve --config "$work/push/proxy.toml" 2>"$work/push.log" & MFA3_PID=$!; pids+=($MFA3_PID)
sleep 1
echo "== mfa-proxy with 10,000 pending pushes"
echo "PAP, none pending:  $(run "$MFA3" "$NAS_SECRET" rate 1000 "$SECS" "$MFA3_PID")"
"$LOADGEN" pending "$MFA3" "$NAS_SECRET" "$SINK" 10000 2000 "$SECS" "$MFA3_PID"
fi
