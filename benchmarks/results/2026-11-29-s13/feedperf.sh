#!/usr/bin/env bash
# perf record (flat, 20 kHz) of the server and feed_bench for 3 s in the middle of one
# throughput run (SUBS subscribers on one connection, default 1000; 1000 users; 8 x 16),
# binaries from $BIN_DIR (default /tmp/$BIN, BIN default B), into $OUT/perf$BIN$SUBS.data (default /tmp).
# Compare a 0- and a 1000-subscriber profile with persym.py. PERF_OPTS / PERF_SECS replace
# the perf options and the 3 s (call graphs: see ../2026-11-29-s14/callers.py).
bindir=${BIN_DIR:-/tmp/${BIN:-B}}
bin=$bindir/feed_bench
dir=$(mktemp -d "${TMPDIR:-/tmp}/feedperf.XXXXXX")
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
$bindir/agentstored --data-dir "$dir/server" --port 0 --port-file "$dir/port" \
    --durability always --max-connections 4096 >"$dir/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
port=$(cat "$dir/port"); key=$(awk '/^service/{print $2}' "$dir/server/initial-keys")
$bin throughput --subscribers ${SUBS:-1000} --per-connection ${PER:-1000} --users 1000 --writers 8 --depth ${DEPTH:-16} --seconds 8 --port $port --key $key 2>$dir/bench.err &
bp=$!
until grep -q writing $dir/bench.err 2>/dev/null; do sleep 0.1; done; sleep 2
perf record ${PERF_OPTS:--F 20000} -p $pid,$bp -o ${OUT:-/tmp}/perf${BIN:-B}${SUBS:-1000}.data -- sleep ${PERF_SECS:-3} >/dev/null 2>&1
wait $bp
