#!/usr/bin/env bash
# Runs every scenario on SQLite and on PostgreSQL with the sizes used for bench/README.md,
# each scenario on both backends in turn, so both see similar machine noise.
#
#   bench/run-all.sh                      # builds and runs with cargo
#   BENCH_BIN=path/to/casebridge-bench bench/run-all.sh   # an already built binary
#
# Extra arguments are passed to every run (e.g. --repeat 1).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${BENCH_BIN:-}" ]]; then
    cargo build --release -p casebridge-bench
    BENCH_BIN=target/release/casebridge-bench
fi
run() {
    for backend in sqlite postgres; do
        echo "=== $* --backend $backend" >&2
        "$BENCH_BIN" "$@" --backend "$backend" "${EXTRA[@]}"
    done
}
EXTRA=("$@")
run throughput --endpoints 1 --events 2000
run throughput --endpoints 100 --events 50
run latency --events 1000 --rate 50
run isolation --burst 200 --rate 20 --duration-s 20
run backlog --pending 100000 --duration-s 45
run claim --sizes 1000,100000,1000000 --claims 50
run lawruler-ingest --webhooks 5000 --concurrency 8
run lawruler-ingest --webhooks 5000 --concurrency 8 --updates 20
run lawruler-ingest --webhooks 5000 --concurrency 16   # issue 11: 16 senders
run lawruler-ingest --webhooks 5000 --rate 2000        # issue 11: p99 at 2,000/s offered
run e2e --events 5000                                  # issue 11: end to end, 16 senders
run e2e --events 300 --rate 20                         # issue 11: latency at 20/s offered
run e2e --events 3000 --rate 500                       # issue 11: latency at 500/s offered
run throughput --endpoints 1 --events 50000            # issue 11: drain of 50,000
run throughput --endpoints 100 --events 100            # issue 11: 100 endpoints x 100 events
run backlog --pending 10000 --duration-s 20            # issue 11: RSS at 10k pending ...
run backlog --pending 1000000 --duration-s 20          # ... and at 1M
run lawruler-outbound --ops 10000 --leads 50           # issue 11: 10,000 queued operations
run lawruler-outbound --ops 2000 --leads 50
run smartadvocate-outbound --ops 2000 --cases 50
run export --rows 1000000
run files --mib 200
