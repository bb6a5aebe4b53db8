#!/usr/bin/env bash
# Instructions per request through each stack of a per-request bench (per scrub of a 1 MB
# corpus for `redact`), counted by valgrind's callgrind: deterministic for the same binary
# and inputs, whatever else the machine does (wall-time benches on a shared machine are not).
#
#   benches/instructions.sh request_id|stack|redact [case ...]
#
# Each case runs twice (N1 and N2 requests, `OBS_BENCH_COUNT=<case>:<n>` mode of the bench
# binary); (I(N2) - I(N1)) / (N2 - N1) removes startup and one-time costs (for `redact`: the
# corpus generation).
set -euo pipefail
cd "$(dirname "$0")/.."

bench=${1:?usage: benches/instructions.sh <bench> [case ...]}
shift
case "$bench" in
request_id)
    features=""
    default_cases=(bare tower-http/generated obs/generated tower-http/inbound obs/inbound obs/inbound-no-user-agent)
    ;;
stack)
    features="--features sentry"
    default_cases=(bare request_id request_id+identity request_id+access_log request_id+metrics request_id+ratelimit request_id+sentry "obs.layer()")
    ;;
redact)
    features=""
    default_cases=(clean_1mb/obs clean_1mb/naive_regex prose_1mb/obs prose_1mb/naive_regex mixed_1mb/obs mixed_1mb/naive_regex)
    # one scrub is ~1 MB of work: a few suffice, and no clock calibration to dilute
    N1=${N1:-1}
    N2=${N2:-3}
    # count only inside the scrub calls: the start-up (regex compilation, corpus generation)
    # varies by a few hundred thousand instructions from process to process (hash seeds)
    collect=(--toggle-collect='*Scrubber*scrub_str*' --toggle-collect='*Naive*scrub*')
    ;;
*)
    echo "no instruction-count cases for bench '$bench' (supported: request_id, stack, redact)" >&2
    exit 2
    ;;
esac
cases=("$@")
[ -n "${collect+x}" ] || collect=()
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

instructions() { # case n -> total instructions
    local out
    out=$(mktemp)
    OBS_BENCH_COUNT="$1:$2" valgrind --tool=callgrind "${collect[@]}" --callgrind-out-file="$out" "$bin" >/dev/null 2>&1
    awk '/^summary:/ {print $2}' "$out"
    rm -f "$out"
}

printf '| case | instructions / %s |\n|---|---:|\n' "$([ "$bench" = redact ] && echo scrub || echo request)"
for c in "${cases[@]}"; do
    a=$(instructions "$c" "$N1")
    b=$(instructions "$c" "$N2")
    printf '| `%s` | %d |\n' "$c" $(((b - a) / (N2 - N1)))
done
