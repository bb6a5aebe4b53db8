#!/usr/bin/env bash
# Redis-backed rate limiter throughput, all measured against the same Redis in one run:
#   - redis-benchmark running obs's exact-mode Lua script (EVALSHA): the physical limit,
#     unpipelined (-c N) and pipelined (-c N -P 16);
#   - obs-ratelimit, exact and approximate mode, at concurrency 1, 16, 64 (benches/ratelimit.rs,
#     load mode);
#   - Python `limits` (moving window) and Node `rate-limiter-flexible` (RateLimiterRedis).
# Every decision is an admission on a random key among 1M (limit 1000/min), for all of them.
#
# Usage: benches/peers/run.sh   (env: REDIS_URL, CONCURRENCY="1 16 64", RL_SECONDS=5, ROUNDS=1,
#                                OBS_BENCH=<built benches/ratelimit.rs binary>)
# The peers are installed on first use under target/ratelimit-peers/ (a venv and node_modules).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PEERS="$ROOT/target/ratelimit-peers"
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
CONCURRENCY=${CONCURRENCY:-"1 16 64"}
SECONDS_EACH=${RL_SECONDS:-5}
HOSTPORT=${REDIS_URL#redis://}
HOSTPORT=${HOSTPORT%%/*}
HOST=${HOSTPORT%%:*}
PORT=${HOSTPORT##*:}
[ "$PORT" = "$HOST" ] && PORT=6379

mkdir -p "$PEERS"
if [ ! -x "$PEERS/venv/bin/python" ] || ! "$PEERS/venv/bin/python" -c 'import limits' 2>/dev/null; then
  python3 -m venv "$PEERS/venv"
  "$PEERS/venv/bin/pip" install -q "limits[async-redis]" redis
fi
if [ ! -d "$PEERS/node/node_modules/rate-limiter-flexible" ]; then
  mkdir -p "$PEERS/node"
  (cd "$PEERS/node" && npm install --silent --no-audit --no-fund rate-limiter-flexible ioredis)
fi
export NODE_PATH="$PEERS/node/node_modules"

echo "# machine: $(nproc) cores, shared with other builds; Redis $(redis-cli -h "$HOST" -p "$PORT" INFO server | grep redis_version | tr -d '\r')"
echo "# $(date -u +%FT%TZ), ${SECONDS_EACH}s per point"

SHA=$(redis-cli -h "$HOST" -p "$PORT" SCRIPT LOAD "$(cat "$ROOT/obs-ratelimit/src/lua/exact.lua")")
# Build once, then run the obs load mode per point without cargo's own overhead.
# (OBS_BENCH=path runs a given build of it instead, e.g. to compare two builds.)
OBS_BENCH=${OBS_BENCH:-$(cd "$ROOT" && cargo bench -q -p obs --features ratelimit --bench ratelimit --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*ratelimit-[^"]*"' | tail -1 | cut -d'"' -f4 || true)}
if [ -z "$OBS_BENCH" ]; then
  echo "building benches/ratelimit.rs failed; see: cargo bench -p obs --features ratelimit --bench ratelimit --no-run" >&2
  exit 1
fi
# CPU per decision, less sensitive to the machine's load than decisions/s: Redis's CPU (user+sys
# from INFO; run alone on this Redis) and the client process's (user+sys, start-up included),
# each divided by the point's decisions (rate x duration).
redis_cpu() { redis-cli -h "$HOST" -p "$PORT" INFO cpu | tr -d '\r' | awk -F: '/^used_cpu_(user|sys):/{s+=$2} END{printf "%.6f", s}'; }
point() { # point SECONDS CMD...: runs one load point, prints its line plus CPU per decision
  local secs=$1 r0 r1 out line cpu
  shift
  r0=$(redis_cpu)
  if [ -x /usr/bin/time ]; then
    out=$(/usr/bin/time -f "client_cpu %U %S" "$@" 2>&1)
  else
    out=$("$@"; echo "client_cpu 0 0")
  fi
  r1=$(redis_cpu)
  line=$(echo "$out" | grep decisions_per_sec | tail -1)
  cpu=$(echo "$out" | grep '^client_cpu' | tail -1)
  awk -v line="$line" -v cpu="$cpu" -v r0="$r0" -v r1="$r1" -v secs="$secs" 'BEGIN {
    match(line, /decisions_per_sec=[0-9.]+/); n = substr(line, RSTART + 18, RLENGTH - 18) * secs
    split(cpu, c, " ")
    if (n > 0) printf "%s redis_cpu_us_per_decision=%.2f client_cpu_us_per_decision=%.2f\n", line, (r1 - r0) * 1e6 / n, (c[2] + c[3]) * 1e6 / n
    else print line }'
}
# The points of one concurrency run back to back (machine load drifts; compare within a block).
for round in $(seq 1 "${ROUNDS:-1}"); do
  for c in $CONCURRENCY; do
    echo "## round $round, concurrency $c"
    for p in 1 16; do
      n=$(( c * p * 2000 )); [ $n -lt 50000 ] && n=50000; [ $n -gt 500000 ] && n=500000
      r0=$(redis_cpu)
      rate=$(redis-benchmark -h "$HOST" -p "$PORT" -n $n -c "$c" -P $p -r 1000000 --csv \
        EVALSHA "$SHA" 1 "{rb:__rand_int__}" 1000 60000000 1 "n__rand_int__" \
        | tail -1 | cut -d, -f2 | tr -d '"')
      r1=$(redis_cpu)
      echo "redis-benchmark c=$c P=$p decisions_per_sec=${rate%.*} redis_cpu_us_per_decision=$(awk -v a="$r0" -v b="$r1" -v n=$n 'BEGIN{printf "%.2f", (b - a) * 1e6 / n}')"
    done
    export OBS_RL_REDIS_LOAD="$c" OBS_RL_SECONDS="$SECONDS_EACH" REDIS_URL
    point "$SECONDS_EACH" "$OBS_BENCH" --bench
    OBS_RL_MODE=approx point "$SECONDS_EACH" "$OBS_BENCH" --bench
    point "$SECONDS_EACH" "$PEERS/venv/bin/python" "$ROOT/benches/peers/limits_peer.py" "$REDIS_URL" "$c" "$SECONDS_EACH"
    point "$SECONDS_EACH" node "$ROOT/benches/peers/rlflex_peer.js" "$REDIS_URL" "$c" "$SECONDS_EACH"
  done
done

# The runs above leave keys with TTLs (60 s); nothing else to clean.
