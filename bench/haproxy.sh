#!/usr/bin/env bash
# HAProxy server changes with the haproxy-runtime applier against reloads
# (Debian's haproxy 2.6, embedded etcd, the kvconf binary): for 50 server
# changes, the time from the put to traffic on the new server, and the
# most HAProxy processes and RSS seen while clients keep 2 s requests
# going. Usage: bench/haproxy.sh [changes]   (default 50)
set -euo pipefail
cd "$(dirname "$0")/../test"
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || { echo "bench/haproxy.sh: install haproxy (scripts/test-deps)" >&2; exit 1; }
go test -run '^$' -bench 'BenchmarkHAProxyServerChange' -benchtime "${1:-50}x" . | grep -E '^(Benchmark|ok|FAIL)'
