#!/usr/bin/env bash
# Interleaved A/B of the 8 x DEPTH durable write rate, 0 subscribers (1000 users) vs 1000
# subscribers on one connection, for the binaries in /tmp/A and /tmp/B (agentstored and
# feed_bench of each build). ROUNDS rounds, SECS s per run; order alternates per round.
secs=${SECS:-6}; rounds=${ROUNDS:-3}
dir=$(mktemp -d /tmp/ab4.XXXXXX)
run() {  # $1 = A|B, $2 = subscribers
  rm -rf "$dir/server" "$dir/port"
  /tmp/$1/agentstored --data-dir "$dir/server" --port 0 --port-file "$dir/port" \
    --durability always --max-connections 4096 >"$dir/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
  port=$(cat "$dir/port"); key=$(awk '/^service/{print $2}' "$dir/server/initial-keys")
  /tmp/$1/feed_bench throughput --subscribers $2 --per-connection 1000 --users 1000 --writers 8 --depth ${DEPTH:-16} --seconds $secs --port $port --key $key 2>/dev/null | grep -o '[0-9]* durable' | cut -d' ' -f1
  kill $pid; wait $pid 2>/dev/null
}
trap 'rm -rf "$dir"' EXIT
for r in $(seq $rounds); do
  if [ $((r % 2)) = 1 ]; then order="A B"; else order="B A"; fi
  line="r$r"
  for b in $order; do z=$(run $b 0); s=$(run $b 1000); line="$line $b: $z/$s=$(echo "scale=3; $s/$z" | bc)"; done
  echo "$line ($(cut -d' ' -f1 /proc/loadavg))"
done
