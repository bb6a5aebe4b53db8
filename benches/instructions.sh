#!/usr/bin/env bash
# Instructions per request through each stack of a per-request bench (per metric update for
# `metrics`, per scrub of a 1 MB corpus for `redact`), counted by valgrind's callgrind
# (`metrics` and `stack` also count lock-prefixed instructions, i.e. atomic RMWs):
# deterministic for the same binary and inputs, whatever else the machine does (wall-time
# benches on a shared machine are not).
#
#   benches/instructions.sh request_id|stack|metrics|redact [case ...]
#
# Each case runs twice (N1 and N2 requests/updates/scrubs, `OBS_BENCH_COUNT=<case>:<n>` mode of
# the bench binary); (I(N2) - I(N1)) / (N2 - N1) removes startup and one-time costs (for
# `redact`: the corpus generation).
set -euo pipefail
cd "$(dirname "$0")/.."

bench=${1:?usage: benches/instructions.sh <bench> [case ...]}
shift
unit=request
decimals=0
locked=0
collect=()
case "$bench" in
metrics)
    features="--features tower,metrics"
    unit=update
    # The single-thread loop is the bench's default (`sequence`); OBS_BENCH_METRICS_LOOP=rotate
    # counts the previous loop (see benches/metrics.rs). An update is a few dozen
    # instructions: more of them, and one decimal.
    N1=${N1:-1000000}
    N2=${N2:-2000000}
    decimals=1
    # Also count executed lock-prefixed instructions (atomic RMWs) per update: callgrind counts
    # a `lock xadd` as one instruction like a plain `add`, but it costs ~20 cycles here and
    # serializes writers on its cache line. benches/locked.py reads them off the profile.
    locked=1
    default_cases=(counter/raw counter/raw-cell counter/shared counter/local counter/prometheus-client counter/measured histogram/shared histogram/local histogram/prometheus-client histogram/measured)
    ;;
request_id)
    features=""
    default_cases=(bare tower-http/generated obs/generated tower-http/inbound obs/inbound obs/inbound-no-user-agent)
    ;;
stack)
    features="--features sentry"
    # atomic RMWs too: the span path and the per-request clones are mostly those
    locked=1
    default_cases=(bare request_id request_id+identity request_id+access_log request_id+metrics request_id+ratelimit request_id+sentry "obs.layer()")
    ;;
redact)
    features=""
    unit=scrub
    default_cases=(clean_1mb/obs clean_1mb/naive_regex prose_1mb/obs prose_1mb/naive_regex mixed_1mb/obs mixed_1mb/naive_regex)
    # one scrub is ~1 MB of work: a few suffice, and no clock calibration to dilute
    N1=${N1:-1}
    N2=${N2:-3}
    # count only inside the scrub calls: the start-up (regex compilation, corpus generation)
    # varies by a few hundred thousand instructions from process to process (hash seeds)
    collect=(--toggle-collect='*Scrubber*scrub_str*' --toggle-collect='*Naive*scrub*')
    ;;
*)
    echo "no instruction-count cases for bench '$bench' (supported: request_id, stack, metrics, redact)" >&2
    exit 2
    ;;
esac
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=("${default_cases[@]}")
command -v valgrind >/dev/null || { echo "valgrind is required (apt-get install -y valgrind)" >&2; exit 1; }

# One-time costs that vary between runs divide by N2 - N1: the rate limiter's clock (quanta)
# calibrates against the OS clock for a wall-time-bounded loop on first use, a few million
# instructions more or less per process under valgrind, so N2 - N1 = 100k keeps that under ~60
# instructions per request.
N1=${N1:-5000}
N2=${N2:-105000}
bin=$(cargo bench -p obs $features --bench "$bench" --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["name"]==sys.argv[1]: print(m["executable"])' "$bench" | tail -1)
[ -x "$bin" ] || { echo "could not build bench $bench" >&2; exit 1; }

instructions() { # case n -> total instructions [locked instructions]
    local out
    out=$(mktemp)
    if [ "$locked" = 1 ]; then
        OBS_BENCH_COUNT="$1:$2" valgrind --tool=callgrind "${collect[@]}" --dump-instr=yes --callgrind-out-file="$out" "$bin" >/dev/null 2>&1
        echo "$(awk '/^summary:/ {print $2}' "$out") $(python3 benches/locked.py "$out" "$bin")"
    else
        OBS_BENCH_COUNT="$1:$2" valgrind --tool=callgrind "${collect[@]}" --callgrind-out-file="$out" "$bin" >/dev/null 2>&1
        awk '/^summary:/ {print $2}' "$out"
    fi
    rm -f "$out"
}

per() { # total(N1) total(N2) -> per-iteration difference
    awk -v a="$1" -v b="$2" -v d=$((N2 - N1)) -v p="$decimals" 'BEGIN { printf "%.*f", p, (b - a) / d }'
}

if [ "$locked" = 1 ]; then
    printf '| case | instructions / %s | lock-prefixed (atomic RMW) / %s |\n|---|---:|---:|\n' "$unit" "$unit"
else
    printf '| case | instructions / %s |\n|---|---:|\n' "$unit"
fi
for c in "${cases[@]}"; do
    read -r a la <<<"$(instructions "$c" "$N1")"
    read -r b lb <<<"$(instructions "$c" "$N2")"
    if [ "$locked" = 1 ]; then
        printf '| `%s` | %s | %s |\n' "$c" "$(per "$a" "$b")" "$(per "$la" "$lb")"
    else
        printf '| `%s` | %s |\n' "$c" "$(per "$a" "$b")"
    fi
done
