#!/bin/sh
# Runs kvconf's Go benchmarks (store look-ups, template rendering, the
# resource pipeline) and prints them in benchstat's input format.
#   bench/go-bench.sh [count]     default count 5
set -eu
cd "$(dirname "$0")/.."
count="${1:-5}"
go test -run '^$' -bench . -benchmem -count "$count" ./funcs/ ./template/ ./resource/
