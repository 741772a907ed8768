#!/usr/bin/env bash
# Issue 17's Node.js benchmark: starts agentstored and PostgreSQL 15 (temp dirs, free
# loopback ports, both durable: --durability always / synchronous_commit on), loads the
# same small dataset into each from Node, and runs get_user and the chat turn through the
# TypeScript client and through node-postgres (bench.mjs). With --overhead it also runs
# get_user at one connection, one call in flight, from Node and from the C++ client
# (load_bench), for the client's per-call overhead.
#
# --relaxed: neither waits for fsync (agentstore --durability batch, PostgreSQL
# synchronous_commit off; both may lose the last few ms of writes on power loss).
#
#   benchmarks/node/run.sh [--connections 8] [--workers 8] [--seconds 10] [--users 1000]
#                          [--overhead] [--relaxed] [--pipeline N]
# --pipeline N: the TS Pool's `pipeline` option (default 16: calls made in the same tick
# share a connection; 1: each call takes its own connection, as node-postgres's pool does).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
connections=8 workers="" seconds=10 users=1000 overhead="" relaxed="" pipeline=""
while (($#)); do
  case $1 in
    --connections) connections=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --overhead) overhead=1; shift ;;
    --pipeline) pipeline=$2; shift 2 ;;
    --relaxed) relaxed=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
workers=${workers:-$connections}
pg_sync=on as_durability=always
[ -n "$relaxed" ] && pg_sync=off as_durability=batch
echo "durability: agentstore $as_durability, PostgreSQL synchronous_commit=$pg_sync"
agentstored=$root/build/net/agentstored
[ -x "$agentstored" ] && [ -f clients/typescript/dist/index.js ] || {
  echo "build first: scripts/build.sh && (cd clients/typescript && npm run build)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/agentstore-node-bench.XXXXXX)
chmod 755 "$tmp"
pids=()
source "$root/benchmarks/peers.sh"
trap peers_cleanup EXIT
start_postgres "$pg_sync"
start_agentstored "$agentstored" "$as_durability"
as_pid=${pids[-1]}
pg_pid=$(head -1 "$tmp/pg/postmaster.pid")
echo "load: $(uptime | sed 's/.*load average: //')"
common=(--connections "$connections" --workers "$workers" --seconds "$seconds" --users "$users")
node benchmarks/node/bench.mjs --system agentstore --port "$as_port" --key "$key" --server-pid "$as_pid" \
  "${common[@]}" ${pipeline:+--pipeline "$pipeline"}
node benchmarks/node/bench.mjs --system postgres --port "$pg_port" --server-pid "$pg_pid" "${common[@]}"
if [ -n "$overhead" ]; then
  node benchmarks/node/bench.mjs --system agentstore --port "$as_port" --key "$key" --connections 1 \
    --workers 1 --seconds "$seconds" --users "$users" --workloads get_user
  # The same workload from the C++ client (load_bench over the users loaded above).
  lb=$root/build/benchmarks/load_bench
  if [ -x "$lb" ]; then
    "$lb" --addr "127.0.0.1:$as_port" --key "$key" --workload get_user --connections 1 --pipeline 1 \
      --seconds "$seconds" --warmup 2 --existing
    "$lb" --addr "127.0.0.1:$as_port" --key "$key" --workload get_user --connections "$connections" \
      --pipeline 1 --seconds "$seconds" --warmup 2 --existing
  else
    echo "no $lb: build it for the C++ side of the overhead comparison" >&2
  fi
fi
echo "load: $(uptime | sed 's/.*load average: //')"
