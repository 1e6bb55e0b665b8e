#!/usr/bin/env bash
# Side-by-side PAP proxying benchmark: mfa-proxy vs FreeRADIUS 3.2 as a plain
# proxy, both in front of the same fast stand-in upstream, driven by the same
# load generator. Prints one table row per measurement; see BENCHMARKS.md.
#   bash benches/compare.sh [SECONDS] [SOAK_SECONDS]
#   ONLY=mfa bash benches/compare.sh      # just the second-factor section
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
SOAK=${2:-60}
MFA_SECS=${MFA_SECS:-7}
NAS_SECRET=bench-nas-secret-0123456789
UP_SECRET=bench-upstream-secret-0123456789
UP=127.0.0.1:21812 MFA=127.0.0.1:21813 FR=127.0.0.1:21814 MFA2=127.0.0.1:21815

cargo build --release --quiet
cargo build --release --quiet --bench loadgen
LOADGEN=$(ls -t target/release/deps/loadgen-* | grep -v '\.d$' | head -1)
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

"$LOADGEN" upstream "$UP" "$UP_SECRET" & pids+=($!)

if [ "${ONLY:-}" != mfa ]; then
cat > "$work/proxy.toml" <<TOML
[server]
auth_listen = ["$MFA"]
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
mkdir -p "$work/mfa"
"$LOADGEN" populate "$work/mfa" 100000
cat > "$work/mfa/proxy.toml" <<TOML
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
RUST_LOG=warn target/release/mfa-proxy serve --config "$work/mfa/proxy.toml" 2>"$work/mfa.log" & MFA2_PID=$!; pids+=($MFA2_PID)
sleep 1   # let it open the store and bind

if [ "${ONLY:-}" != mfa ]; then
echo "== direct to the stand-in upstream (baseline)"
run "$UP" "$UP_SECRET" window 64 "$SECS"
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

echo "== mfa-proxy with TOTP logins (100,000 users enrolled)"
echo "rss idle:      $(grep VmRSS /proc/$MFA2_PID/status)"
# A 30 s step gives each user two logins (at most 200,000): keep the maximum
# run short, and start the next run after the users it used.
max=$(MFA_USER_OFFSET=0 "$LOADGEN" mfa "$MFA2" "$NAS_SECRET" window 64 "$MFA_SECS" 100000 "$MFA2_PID")
echo "max logins:    $max"
used=$(echo "$max" | field started)
echo "1000 logins/s: $(MFA_USER_OFFSET=$used "$LOADGEN" mfa "$MFA2" "$NAS_SECRET" rate 1000 "$SECS" 100000 "$MFA2_PID")"
echo "rss after:     $(grep VmRSS /proc/$MFA2_PID/status)"
