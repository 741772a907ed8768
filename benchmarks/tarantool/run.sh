#!/usr/bin/env bash
# Tarantool 2.6 (Debian's `tarantool`) in the shapes the targets name: select by primary
# key and replace of a 15-field tuple, 64 requests in flight over 4 connections and 16 on 1,
# driven by Tarantool's own net.box client. Loopback only, a private port, a temp dir.
# Prints one JSON line per shape (system, op, connections, in_flight, ops_per_sec, p50_ms,
# p99_ms) to stdout, so compare.sh or a person can put them beside agentstore's rows.
#
#   benchmarks/tarantool/run.sh [--seconds N] [--rows N] [--ops "select replace"]
#                               [--shapes "4x16 1x16"] [--wal fsync|write|none]
# select runs against a server with the same wal mode as replace (reads never touch the WAL).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seconds=5 rows=10000 ops="select replace" shapes="4x16 1x16" wal=fsync
while (($#)); do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --ops) ops=$2; shift 2 ;;
    --shapes) shapes=$2; shift 2 ;;
    --wal) wal=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
if ! command -v tarantool >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q tarantool
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tmp=$(mktemp -d)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
(cd "$tmp" && exec tarantool "$here/server.lua" "$port" "$tmp" "$wal" "$rows") >"$tmp/server.out" 2>&1 &
server_pid=$!
for _ in $(seq 600); do [ -e "$tmp/ready" ] && break; sleep 0.05; done
[ -e "$tmp/ready" ] || { echo "tarantool did not start:" >&2; cat "$tmp/server.out" "$tmp/tarantool.log" >&2; exit 1; }
for op in $ops; do
  for shape in $shapes; do
    conns=${shape%x*} fibers=${shape#*x}
    tarantool "$here/bench.lua" "$port" "$op" "$conns" "$fibers" "$seconds" "$rows" |
      sed "s/}\$/,\"wal_mode\":\"$wal\"}/"
  done
done
