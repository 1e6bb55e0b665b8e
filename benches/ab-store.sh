#!/usr/bin/env bash
# Complete TOTP logins per second on each store (issue 16), against the
# stand-in upstream and load generator of ab-login.sh:
#   floor      the machine's floor: `loadgen login-relay`, a proxy that does
#              nothing but relay the first round and answer the second (no
#              checks, no signing, no store), in the shape of a login
#   sqlite     one node on SQLite
#   pg-1node   one node on PostgreSQL
#   pg-2nodes  two nodes on the same PostgreSQL database, a load generator
#              per node running at the same time (users 0..U-1 at the
#              first, U..2U-1 at the second, by MFA_USER_OFFSET)
# Each load generator keeps WINDOW logins in flight for a 1 s warm-up and
# RUN_SECONDS measured. Each set-up has a database of its own holding the
# same 2×USERS users, so one 30 s TOTP step serves a round; every round
# starts at a fresh step newer than any code used before (a load generator
# that ran past its users used the next step's codes: then one step more),
# so that no user logs in twice in one, and runs the set-ups in a rotated
# order (sqlite pg-1node pg-2nodes, then pg-1node pg-2nodes sqlite, ...).
# The nodes run throughout (idle ones send a heartbeat every 10 s). The
# proxies and PostgreSQL share the machine's cores with the load
# generators, as in ab-login.sh. For each run it prints:
#   logins/s        complete logins per second (pg-2nodes: both nodes' sum)
#   proxy_us/login  CPU of the proxy (both, for pg-2nodes) per login, as the
#                   load generator measures it over the measured seconds
#   pg_us/login     CPU of PostgreSQL per login: utime+stime from /proc of
#                   the postmaster and all its children (backends, writers,
#                   checkpointer...), plus the postmaster's cutime+cstime
#                   (children that exited), before and after the load
#                   generators, over the logins they started (warm-up
#                   included, as that figure covers the whole run)
#   stmts/login     statements PostgreSQL ran in the set-up's database per
#                   login, from pg_stat_statements (BEGIN and COMMIT
#                   included): the database round trips, as the store sends
#                   one statement at a time and waits for its answer
#   xacts/login     COMMIT and ROLLBACK statements per login, same source
# and below it the load generators' own lines (latencies, failures); at the
# end, the median rate of each set-up and, for PostgreSQL, each statement's
# calls per login over all runs (what the round trips are).
#
# It starts a PostgreSQL of its own (the newest /usr/lib/postgresql/*/bin,
# or PGBIN=...): initdb in a temporary directory, listening on 127.0.0.1 at
# a free port only, with trust authentication (no password to leak; nothing
# but this machine reaches it); as root it runs as the postgres user. Its
# settings are PostgreSQL's defaults (fsync = on, synchronous_commit = on,
# full_page_writes = on, shared_buffers = 128MB, max_connections = 100),
# plus shared_preload_libraries = pg_stat_statements for the counts above.
# The users are populated into SQLite by the load generator and copied into
# PostgreSQL with `mfa-proxy migrate`; the two-node database is a copy of
# the one-node database (CREATE DATABASE ... TEMPLATE).
#
# Build first (CARGO_TARGET_DIR is honoured), then run:
#   cargo build --release && cargo bench --bench loadgen --no-run
#   bash benches/ab-store.sh
#   ROUNDS=3 RUN_SECONDS=5 USERS=150000 WINDOW=128 POOL=8 bash benches/ab-store.sh   # the defaults
#   SETUPS="pg-1node" POOL=2 bash benches/ab-store.sh                              # some set-ups only
# USERS must exceed what one node of pg-2nodes does in a run, and 2×USERS
# what the fastest set-up does, warm-up included (the load generator warns
# when it runs out of users).
set -euo pipefail
ROUNDS=${ROUNDS:-3}
RUN_SECONDS=${RUN_SECONDS:-5}
USERS=${USERS:-150000}
WINDOW=${WINDOW:-128}
# Connections per PostgreSQL node ([store] pool_size): one database thread
# each, so that many transactions run at once.
POOL=${POOL:-8}
read -ra setups <<<"${SETUPS:-floor sqlite pg-1node pg-2nodes}"
NAS_SECRET=bench-nas-secret-0123456789
UP_SECRET=bench-upstream-secret-0123456789
UP=127.0.0.1:25812
declare -A PORT=([sqlite]=25813 [pg1]=25814 [pg2a]=25815 [pg2b]=25816 [floor]=25817)
tree="$(cd "$(dirname "$0")/.." && pwd)"
target=${CARGO_TARGET_DIR:-$tree/target}
BIN=$target/release/mfa-proxy
LG=$(ls -t "$target"/release/deps/loadgen-* 2>/dev/null | grep -v '\.d$' | head -1 || true)
if [ ! -x "$BIN" ] || [ -z "$LG" ]; then
  echo "build first: cargo build --release && cargo bench --bench loadgen --no-run" >&2
  exit 1
fi
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$PGBIN/pg_ctl" ] || { echo "no PostgreSQL binaries (set PGBIN)" >&2; exit 1; }
for v in PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGSERVICE; do unset "$v"; done

work=$(mktemp -d); pgdir=$(mktemp -d); pids=()
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  as_pg "$PGBIN/pg_ctl" -D "$pgdir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$work" "$pgdir"
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] && chown postgres: "$pgdir"

# PostgreSQL on a free port.
free_port() {
  local p
  for p in $(seq 25900 25999); do
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  echo "no free port in 25900-25999" >&2; exit 1
}
PG_PORT=$(free_port)
as_pg "$PGBIN/initdb" -D "$pgdir/data" -U postgres --auth=trust --encoding=UTF8 \
  --locale=C.UTF-8 --no-sync >"$work/initdb.log" 2>&1 \
  || as_pg "$PGBIN/initdb" -D "$pgdir/data" -U postgres --auth=trust --encoding=UTF8 \
  --no-locale --no-sync >"$work/initdb.log" 2>&1 \
  || { cat "$work/initdb.log" >&2; exit 1; }
as_pg "$PGBIN/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w -o \
  "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $pgdir -c shared_preload_libraries=pg_stat_statements" \
  start >/dev/null || { cat "$pgdir/server.log" >&2; exit 1; }
PM=$(head -1 "$pgdir/data/postmaster.pid")
psql() { "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }
psql -d postgres -c "CREATE EXTENSION pg_stat_statements"
url() { echo "postgres://postgres@127.0.0.1:$PG_PORT/$1"; }

# CPU ticks of PostgreSQL: the postmaster's own and its exited children's,
# and its live children's.
pg_ticks() {
  local total=0 f line pid rest
  local -a s
  for f in /proc/[0-9]*/stat; do
    read -r line 2>/dev/null <"$f" || continue
    pid=${f#/proc/}; pid=${pid%/stat}
    rest=${line##*) }
    read -ra s <<<"$rest"
    # s[1] is the parent; s[11..14] utime, stime, cutime, cstime.
    if [ "$pid" = "$PM" ]; then
      total=$((total + s[11] + s[12] + s[13] + s[14]))
    elif [ "${s[1]}" = "$PM" ]; then
      total=$((total + s[11] + s[12]))
    fi
  done
  echo "$total"
}
# Statements and transactions run so far in database $1.
pg_counts() {
  psql -d postgres -F ' ' -c "SELECT coalesce(sum(calls), 0),
      coalesce(sum(calls) FILTER (WHERE query ~* '^\s*(commit|rollback)'), 0)
    FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '$1'"
}

config() { # DIR NAME PORT STORE-LINE
  mkdir -p "$1"
  cat > "$1/proxy.toml" <<TOML
[server]
name = "$2"
auth_listen = ["127.0.0.1:$3"]
[store]
$4
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
}

# The users: 2×USERS into SQLite, copied into PostgreSQL (one-node
# database), and that copied again (two-node database).
"$LG" populate "$work/sqlite" $((2 * USERS)) >/dev/null
config "$work/sqlite" sqlite "${PORT[sqlite]}" 'path = "mfa.db"'
psql -d postgres -c "CREATE DATABASE mfa_pg1"
MFA_BENCH_DB_URL=$(url mfa_pg1) "$BIN" migrate --to-env MFA_BENCH_DB_URL \
  --config "$work/sqlite/proxy.toml" >/dev/null
psql -d postgres -c "CREATE DATABASE mfa_pg2 TEMPLATE mfa_pg1"
# As a database in service would be: statistics gathered and the load's
# dead rows and WAL behind it, not autovacuum's work inside the first runs.
for db in mfa_pg1 mfa_pg2; do psql -d "$db" -qc "VACUUM ANALYZE"; done
psql -d postgres -qc "CHECKPOINT"
config "$work/pg1" pg1 "${PORT[pg1]}" "url = \"$(url mfa_pg1)\"
pool_size = $POOL"
config "$work/pg2a" pg2a "${PORT[pg2a]}" "url = \"$(url mfa_pg2)\"
pool_size = $POOL"
config "$work/pg2b" pg2b "${PORT[pg2b]}" "url = \"$(url mfa_pg2)\"
pool_size = $POOL"
for n in pg1 pg2a pg2b; do cp "$work/sqlite/seed.key" "$work/$n/"; done

declare -A PID
"$LG" upstream "$UP" "$UP_SECRET" & pids+=($!)
"$LG" login-relay "127.0.0.1:${PORT[floor]}" "$UP" & PID[floor]=$!; pids+=(${PID[floor]})
for n in sqlite pg1 pg2a pg2b; do
  RUST_LOG=warn "$BIN" serve --config "$work/$n/proxy.toml" 2>"$work/$n.log" & PID[$n]=$!; pids+=(${PID[$n]})
done
sleep 2
for n in sqlite pg1 pg2a pg2b; do
  kill -0 "${PID[$n]}" 2>/dev/null || { echo "node $n did not start:" >&2; cat "$work/$n.log" >&2; exit 1; }
done

field() { grep -o " $1=[0-9.]*" "$2" | head -1 | cut -d= -f2; }
# One load generator: node, users, offset, output file.
loadgen() {
  MFA_USER_OFFSET=$3 "$LG" mfa "127.0.0.1:${PORT[$1]}" "$NAS_SECRET" window "$WINDOW" \
    "$RUN_SECONDS" "$2" "${PID[$1]}" >"$4"
}
declare -A RATES STARTED
# The newest TOTP step a run may have claimed a code of: the next round
# waits for a newer one.
CLAIMED=0
run() { # SET-UP ROUND
  local setup=$1 round=$2 db= t0=0 t1=0 q0="0 0" q1="0 0" w0= wal=0 outs=() firsts=()
  case $setup in pg-1node) db=mfa_pg1 ;; pg-2nodes) db=mfa_pg2 ;; esac
  if [ -n "$db" ]; then t0=$(pg_ticks); q0=$(pg_counts "$db"); w0=$(psql -d postgres -c "SELECT pg_current_wal_lsn()"); fi
  # firsts: the logins of each load generator's first pass over its users
  # (the current step's codes); after it, each user's next step's code.
  case $setup in
    floor) loadgen floor $((2 * USERS)) 0 "$work/out.1"; outs=("$work/out.1"); firsts=($((2 * USERS))) ;;
    sqlite) loadgen sqlite $((2 * USERS)) 0 "$work/out.1"; outs=("$work/out.1"); firsts=($((2 * USERS))) ;;
    pg-1node) loadgen pg1 $((2 * USERS)) 0 "$work/out.1"; outs=("$work/out.1"); firsts=($((2 * USERS))) ;;
    pg-2nodes)
      loadgen pg2a "$USERS" 0 "$work/out.1" & local a=$!
      loadgen pg2b $((2 * USERS)) "$USERS" "$work/out.2" & local b=$!
      wait "$a" "$b"
      outs=("$work/out.1" "$work/out.2"); firsts=("$USERS" "$USERS") ;;
  esac
  if [ -n "$db" ]; then
    t1=$(pg_ticks); q1=$(pg_counts "$db")
    wal=$(psql -d postgres -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$w0')")
  fi
  local rate=0 cpu=0 logins=0 started=0 o k claimed=$(( $(date +%s) / 30 ))
  for k in "${!outs[@]}"; do
    o=${outs[$k]}
    rate=$(awk -v a="$rate" -v b="$(field rate "$o")" 'BEGIN { print a + b }')
    cpu=$(awk -v a="$cpu" -v b="$(field cpu "$o")" 'BEGIN { print a + b }')
    logins=$((logins + $(field logins "$o")))
    started=$((started + $(field started "$o")))
    if (( $(field started "$o") > firsts[k] )); then claimed=$(( $(date +%s) / 30 + 1 )); fi
  done
  (( claimed > CLAIMED )) && CLAIMED=$claimed
  RATES[$setup]+="$rate "
  STARTED[$setup]=$(( ${STARTED[$setup]:-0} + started ))
  awk -v setup="$setup" -v round="$round" -v rate="$rate" -v cpu="$cpu" -v logins="$logins" \
    -v started="$started" -v db="$db" -v ticks=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" \
    -v q0="$q0" -v q1="$q1" -v wal="$wal" 'BEGIN {
      split(q0, a, " "); split(q1, b, " ")
      n = started > 0 ? started : 1
      pg = db == "" ? "-" : sprintf("%.1f", ticks * 1e6 / hz / n)
      st = db == "" ? "-" : sprintf("%.2f", (b[1] - a[1]) / n)
      tx = db == "" ? "-" : sprintf("%.2f", (b[2] - a[2]) / n)
      proxy = logins > 0 ? sprintf("%.1f", cpu * 1e6 / logins) : "-"
      wb = db == "" ? "-" : sprintf("%.0f", wal / n)
      printf "round %d %-9s logins/s=%.0f proxy_us/login=%s pg_us/login=%s stmts/login=%s xacts/login=%s wal_bytes/login=%s\n",
        round, setup, rate, proxy, pg, st, tx, wb
    }'
  for o in "${outs[@]}"; do echo "    $(cat "$o")"; done
}

echo "ab-store: $ROUNDS rounds, $RUN_SECONDS s measured per run, $WINDOW logins in flight per load generator, $((2 * USERS)) users per database"
echo "PostgreSQL $(psql -d postgres -c "SHOW server_version"): $(psql -d postgres -F ' ' -c "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'wal_level', 'max_connections')")"
# Only the runs' statements from here on (not the migration's, nor the
# nodes' start).
psql -d postgres -c "SELECT pg_stat_statements_reset()" >/dev/null
for i in $(seq 1 "$ROUNDS"); do
  # A fresh 30 s step, newer than any code used: every user may log in again.
  sleep $(( 31 - $(date +%s) % 30 ))
  while (( $(date +%s) / 30 <= CLAIMED )); do sleep $(( 31 - $(date +%s) % 30 )); done
  for k in "${!setups[@]}"; do run "${setups[$(( (i - 1 + k) % ${#setups[@]} ))]}" "$i"; done
done
echo "median logins/s:"
for s in "${setups[@]}"; do
  echo "  $s $(tr ' ' '\n' <<<"${RATES[$s]:-}" | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')"
done
# What the round trips are: each statement's calls per login started, over
# all runs of the set-up (heartbeats included: a few per run).
for s in "${setups[@]}"; do
  case $s in sqlite | floor) continue ;; esac
  db=mfa_pg1; [ "$s" = pg-2nodes ] && db=mfa_pg2
  echo "statements per login, $s:"
  psql -d postgres -F ' ' -c "SELECT to_char(sum(calls)::numeric / greatest(${STARTED[$s]:-0}, 1), 'FM990.000'),
      left(regexp_replace(query, '\s+', ' ', 'g'), 110)
    FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '$db'
    GROUP BY 2 ORDER BY sum(calls) DESC LIMIT 12" | sed 's/^/  /'
done
# What the one-node database holds now (users, tokens, and the audit
# records and challenges of the runs): rows and bytes, indexes and TOAST
# included, for CAPACITY.md.
echo "tables of the one-node database after the runs (rows, bytes with indexes, bytes per row):"
psql -d mfa_pg1 -F ' ' -c "SELECT relname, n_live_tup, pg_total_relation_size(relid),
    CASE WHEN n_live_tup > 0 THEN pg_total_relation_size(relid) / n_live_tup END
  FROM pg_stat_user_tables WHERE n_live_tup > 0 ORDER BY 3 DESC" | sed 's/^/  /'
echo "  sealed challenge, bytes on average: $(psql -d mfa_pg1 -c "SELECT coalesce(round(avg(length(sealed)) FILTER (WHERE length(sealed) > 0)), 0) FROM challenges")"
