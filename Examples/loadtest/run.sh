#!/usr/bin/env bash
# Drives the orders service past saturation, with and without load shedding, and writes docs/load-test.md and the
# docs/load-test-*.svg plots.
#
#   bash Examples/loadtest/run.sh            # about 7 minutes after the release build
#
# Steps: build orders-service in release; for each mode start it (each on its own throwaway PostgreSQL, loopback
# only); find saturation closed-loop with wrk; drive it open-loop at fixed rates from a quarter of saturation to three
# times it (loadgen.py); run a spike (half load, 3x saturation for 10 s, half load); write the report.
# Everything it starts is stopped by PID when it ends, also on error or Ctrl-C. Settings (environment):
#   POOL_SIZE (4), SIMULATED_QUERY_MS (20), STEP_SECONDS (8), LIMIT (pool size), QUEUE (pool size),
#   QUEUE_TIMEOUT_MS (500), RESULTS (a new folder under /tmp), DOCS (docs/ of the repository),
#   MODES ("unbounded shedding"; also "adaptive" and "self-sizing", about 2.5 minutes each).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
examples="$(dirname "$here")"
root="$(dirname "$examples")"
pool_size="${POOL_SIZE:-4}"
simulated_ms="${SIMULATED_QUERY_MS:-20}"
step_seconds="${STEP_SECONDS:-8}"
limit="${LIMIT:-$pool_size}"
queue="${QUEUE:-$pool_size}"
queue_timeout_ms="${QUEUE_TIMEOUT_MS:-500}"
acquire_timeout_s=30
scrape_seconds=0.25
results="${RESULTS:-$(mktemp -d /tmp/orders-loadtest.XXXXXX)}"
docs="${DOCS:-$root/docs}"
fractions=(0.25 0.5 0.75 1 1.25 1.5 2 2.5 3)
read -r -a modes <<<"${MODES:-unbounded shedding}"
started_at=$(date +%s)
load_at_start="$(cut -d' ' -f1-3 /proc/loadavg)"

mkdir -p "$results"
service_pid=""

log() { printf '[%4ds] %s\n' "$(( $(date +%s) - started_at ))" "$*" >&2; }

stop_service() {
    if [[ -n "$service_pid" ]] && kill -0 "$service_pid" 2>/dev/null; then
        kill -TERM "$service_pid" 2>/dev/null || true
        # Graceful: HTTP drains, the job queue is written, the pool closes, the throwaway server is deleted.
        for _ in $(seq 1 150); do
            kill -0 "$service_pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$service_pid" 2>/dev/null; then
            log "service $service_pid did not stop in 30 s; killing it"
            kill -KILL "$service_pid" 2>/dev/null || true
        fi
        wait "$service_pid" 2>/dev/null || true
    fi
    service_pid=""
}
trap stop_service EXIT
trap 'stop_service; exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

if ! command -v wrk >/dev/null; then
    log "installing wrk"
    if [[ $(id -u) -eq 0 ]]; then apt-get install -y wrk >/dev/null; else sudo apt-get install -y wrk >/dev/null; fi
fi
command -v python3 >/dev/null || { echo "run.sh: python3 is required" >&2; exit 1; }
command -v curl >/dev/null || { echo "run.sh: curl is required" >&2; exit 1; }

log "building orders-service in release"
timeout 1800 swift build --package-path "$examples" -c release --product orders-service >"$results/build.log" 2>&1 \
    || { tail -30 "$results/build.log" >&2; exit 1; }
binary="$(swift build --package-path "$examples" -c release --show-bin-path)/orders-service"

# start_service MODE: starts the service in that admission mode on a free port; sets service_pid and port.
start_service() {
    local admission="$1"
    port=$(free_port)
    ORDERS_HOST=127.0.0.1 ORDERS_PORT="$port" ORDERS_POOL_SIZE="$pool_size" ORDERS_ADMISSION="$admission" \
        ORDERS_CONCURRENCY_LIMIT="$limit" ORDERS_QUEUE_LENGTH="$queue" ORDERS_QUEUE_TIMEOUT_MS="$queue_timeout_ms" \
        ORDERS_ACQUIRE_TIMEOUT_MS=$(( acquire_timeout_s * 1000 )) ORDERS_SIMULATED_QUERY_MS="$simulated_ms" \
        ORDERS_JOB_QUEUE=65536 LOG_LEVEL=warning RESERVOIR_DATABASE_URL= DATABASE_URL= \
        "$binary" >"$results/service-$admission.log" 2>&1 &
    service_pid=$!
    for _ in $(seq 1 300); do
        if curl -sf -o /dev/null "http://127.0.0.1:$port/health"; then
            log "service ($admission) pid $service_pid on port $port"
            return 0
        fi
        kill -0 "$service_pid" 2>/dev/null || break
        sleep 0.2
    done
    echo "run.sh: the service did not start; its log:" >&2
    cat "$results/service-$admission.log" >&2
    exit 1
}

# sweep MODE: one open-loop step per offered load.
sweep() {
    local mode="$1" rates=""
    for fraction in "${fractions[@]}"; do
        rates+="$(python3 -c "print(round($fraction * $saturation, 1))"),"
    done
    # A fresh service: warm it up (connections opened, statements prepared) at half load, unrecorded.
    timeout 60 python3 "$here/loadgen.py" sweep --port "$port" --rates "$(python3 -c "print($saturation / 2)")" \
        --duration 4 >/dev/null
    log "sweep ($mode): ${rates%,} req/s, $step_seconds s each"
    timeout 600 python3 "$here/loadgen.py" sweep --port "$port" --rates "${rates%,}" --duration "$step_seconds" \
        --scrape-interval "$scrape_seconds" --raw "$results/requests-$mode.csv" | tee "$results/sweep-$mode.jsonl" >&2
}

# spike MODE: half load 10 s, 3x saturation 10 s, half load 20 s.
spike() {
    local mode="$1"
    log "spike ($mode): $(python3 -c "print(round($saturation / 2))") → $(python3 -c "print(round($saturation * 3))") req/s"
    timeout 300 python3 "$here/loadgen.py" spike --port "$port" --base "$(python3 -c "print($saturation / 2)")" \
        --peak "$(python3 -c "print($saturation * 3)")" --before 10 --during 10 --after 20 \
        --scrape-interval "$scrape_seconds" --raw "$results/requests-$mode.csv" >"$results/spike-$mode.json"
    python3 -c "import json; d = json.load(open('$results/spike-$mode.json')); print('  p99 recovery:', d['p99_recovery_s'], 's; waiters recovery:', d['waiters_recovery_s'], 's')" >&2
}

# Saturation: closed loop, enough connections to keep every pooled connection busy, against the unbounded service
# (nothing is shed, so every answer is real work).
start_service unbounded
timeout 60 wrk -t2 -c16 -d3s -s "$here/post-order.lua" "http://127.0.0.1:$port" >/dev/null  # warm-up
wrk_arguments="-t2 -c$(( pool_size * 4 )) -d10s"
timeout 60 wrk $wrk_arguments -s "$here/post-order.lua" "http://127.0.0.1:$port" | tee "$results/wrk.txt" >&2
saturation=$(awk '/^Requests\/sec/ { print $2 }' "$results/wrk.txt")
if grep -q "Non-2xx" "$results/wrk.txt"; then
    log "warning: wrk saw non-2xx answers at saturation"
fi
log "saturation: $saturation req/s"

stop_service

# The service's ORDERS_ADMISSION for each mode the report names.
admission_of() {
    case "$1" in
        shedding) echo fixed ;;
        unbounded | adaptive | self-sizing) echo "$1" ;;
        *) echo "run.sh: unknown mode $1 (shedding, unbounded, adaptive, self-sizing)" >&2; exit 2 ;;
    esac
}
for mode in "${modes[@]}"; do
    start_service "$(admission_of "$mode")"
    sweep "$mode"
    spike "$mode"
    stop_service
done

cpu="$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
cat >"$results/meta.json" <<EOF
{
  "when": "$(date -u '+%Y-%m-%d %H:%M UTC')",
  "machine": "$(nproc) cores ($cpu), Linux $(uname -r)",
  "load": "$load_at_start",
  "modes": [$(printf '"%s",' "${modes[@]}" | sed 's/,$//')],
  "saturation_rps": $saturation,
  "pool_size": $pool_size,
  "simulated_query_ms": $simulated_ms,
  "limit": $limit,
  "queue": $queue,
  "queue_timeout_ms": $queue_timeout_ms,
  "acquire_timeout_s": $acquire_timeout_s,
  "step_s": $step_seconds,
  "scrape_s": $scrape_seconds,
  "wrk": "wrk $wrk_arguments, POST /orders",
  "command": "${MODES:+MODES='$MODES' }bash Examples/loadtest/run.sh",
  "duration_s": $(( $(date +%s) - started_at ))
}
EOF
python3 "$here/report.py" "$results" "$docs"
log "done: $docs/load-test.md (raw results in $results)"
