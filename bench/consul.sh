#!/usr/bin/env bash
# End-to-end benchmarks of kvconf against a real Consul dev agent (the
# project's build of Consul v1.19.2, from scripts/consul-bin), started on
# loopback ports of its own in a temporary directory:
#   1. one-shot render of 1,000 / 10,000 / 100,000 keys: wall time, CPU
#      time and peak RSS of the whole kvconf process, next to a curl of the
#      same recursive KV listing (the ratio kvconf/curl at 100,000 keys has
#      a target of 1.25x);
#   2. put-to-file latency (median, p95, p99 over 200 puts) with 10,000
#      keys under the watched prefix, with puts back to back and with puts
#      spaced apart (kvconf's Consul watch paces its blocking queries on a
#      prefix at least 100 ms apart, so a put right after the previous
#      update waits for that pacing);
#   3. CPU used by kvconf -watch while idle for 60 s;
#   4. scale (issue 19): 200 resources, each on a prefix of its own
#      (/bench/s/p000 … p199, 50 keys each, 10,000 keys), kvconf -watch at
#      the agent's default limits; put-to-file latency of 100 puts spread
#      over 20 of the prefixes (each to another resource), 250 ms apart
#      (targets: median <= 10 ms, p95 <= 50 ms), and the most connections
#      from kvconf the agent held meanwhile (ss; target <= 16).
# Usage: bench/consul.sh [runs [idle_seconds]]
#   runs: runs per one-shot measurement (default 5); idle_seconds: length
#   of the idle CPU measurement (default 60). SECTIONS="1 2 3 4" (the
#   default) picks the sections to run.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
idle="${2:-60}"
gap=250ms # between spaced puts: above the watch's pacing of 100-125 ms
sections=" ${SECTIONS:-1 2 3 4} "
want() { [[ $sections == *" $1 "* ]]; }

need() { command -v "$1" >/dev/null 2>&1; }
if ! need curl || ! need python3 || ! [ -x /usr/bin/time ]; then
	[ "$(id -u)" -eq 0 ] || { echo "bench/consul.sh: install curl python3 time" >&2; exit 1; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl python3 time >/dev/null
fi
consul=$(./scripts/consul-bin)

work=$(mktemp -d)
stop() { # stop <pid>: TERM, then KILL after 10 s
	kill "$1" 2>/dev/null || return 0
	for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}
cleanup() {
	[ -n "${kv_pid:-}" ] && stop "$kv_pid"
	[ -n "${consul_pid:-}" ] && stop "$consul_pid"
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

go build -o "$work/kvconf" ./cmd/kvconf
go build -o "$work/loadconsul" ./bench/cmd/loadconsul
go build -o "$work/putlat" ./bench/cmd/putlat

# three distinct free ports, held open together so none is handed out twice
read -r hport lport sport < <(python3 -c 'import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))')
addr="127.0.0.1:$hport"
cat >"$work/agent.hcl" <<EOF
ports {
  http = $hport
  https = -1
  dns = -1
  grpc = -1
  grpc_tls = -1
  serf_lan = $lport
  serf_wan = -1
  server = $sport
}
EOF
"$consul" agent -dev -bind 127.0.0.1 -client 127.0.0.1 -config-file "$work/agent.hcl" \
	-log-level warn >"$work/consul.log" 2>&1 &
consul_pid=$!
ready=
for _ in $(seq 600); do
	if curl -sf -X PUT -d 1 "http://$addr/v1/kv/kvconf-ready" >/dev/null 2>&1; then ready=1; break; fi
	kill -0 "$consul_pid" 2>/dev/null || break
	sleep 0.1
done
[ -n "$ready" ] || { echo "consul agent not ready:" >&2; cat "$work/consul.log" >&2; exit 1; }
curl -sf -X DELETE "http://$addr/v1/kv/kvconf-ready" >/dev/null
echo "consul $("$consul" version | head -1 | cut -d' ' -f2) dev agent at $addr; kvconf $(go version | cut -d' ' -f3)"

median() { sort -n | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }
declare -A walls cpus rss
sample() { # sample <key> <cmd...>: one timed run of cmd, its wall s, CPU s and peak RSS kept under key
	local key=$1; shift
	local t0 t1 u s k
	t0=$EPOCHREALTIME
	/usr/bin/time -f "%U %S %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; return 1; }
	t1=$EPOCHREALTIME
	read -r u s k <"$work/time"
	walls[$key]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b-a}') "
	cpus[$key]+="$(awk -v u="$u" -v s="$s" 'BEGIN {printf "%.2f", u+s}') "
	rss[$key]+="$k "
}
report() { # report <label> <key>: the medians of the runs kept under key; sets $wall
	wall=$(printf '%s\n' ${walls[$2]} | median)
	printf '%-34s wall %7ss   cpu %6ss   peak RSS %7.1f MiB\n' "$1" "$wall" \
		"$(printf '%s\n' ${cpus[$2]} | median)" "$(printf '%s\n' ${rss[$2]} | median | awk '{print $1/1024}')"
}

confdir() { # confdir <dir>: one resource rendering every key under /bench/k
	mkdir -p "$1/conf.d" "$1/templates" "$1/out"
	printf '{{range gets "/k/*"}}server {{base .Key}} {{.Value}}\n{{end}}' >"$1/templates/all.tmpl"
	printf '[template]\nsrc = "all.tmpl"\ndest = "%s/out/all.conf"\nprefix = "/bench"\nkeys = ["/k"]\n' "$1" >"$1/conf.d/all.toml"
}
load() { # load <n>: keys /bench/k/000000 … of the template, bench/k/… in Consul
	local t0=$EPOCHREALTIME
	"$work/loadconsul" -endpoint "$addr" -prefix /bench -n "$1"
	awk -v a="$t0" -v b="$EPOCHREALTIME" -v n="$1" 'BEGIN {printf "(loaded %d keys in %.1f s)\n", n, b-a}'
}

if want 1; then
echo "== one-shot render (median of $runs runs, whole process; curl and kvconf take turns)"
for n in 1000 10000 100000; do
	load "$n" # overwrites the keys of the previous size
	d="$work/one-$n"; confdir "$d"
	for _ in $(seq "$runs"); do
		sample "curl-$n" curl -sf "http://$addr/v1/kv/bench/k?recurse"
		sample "kvconf-$n" "$work/kvconf" -onetime -config-file /dev/null -confdir "$d" \
			-backend consul -node "$addr" -log-level error
	done
	report "curl ?recurse ($n keys)" "curl-$n"
	curl_wall=$wall
	report "kvconf -onetime ($n keys)" "kvconf-$n"
	got=$(wc -l <"$d/out/all.conf"); [ "$got" -eq "$n" ] || { echo "rendered $got lines, want $n" >&2; exit 1; }
	awk -v k="$wall" -v c="$curl_wall" -v n="$n" \
		'BEGIN {printf "ratio kvconf/curl wall (%d keys): %.2fx%s\n", n, k/c, n == 100000 ? " (target <= 1.25x)" : ""}'
done
fi

daemon() { # daemon <confdir> <dest>: start kvconf -watch and wait for its first render
	"$work/kvconf" -watch -config-file /dev/null -confdir "$1" -backend consul -node "$addr" -log-level error &
	kv_pid=$!
	for _ in $(seq 600); do [ -s "$2" ] && break; sleep 0.1; done
	[ -s "$2" ] || { echo "kvconf -watch rendered nothing into $2" >&2; exit 1; }
}
if want 2 || want 3; then
echo "== put-to-file latency, 10,000 keys under the watched prefix (200 puts)"
# a: the template reads the changed key only; b: it renders all 10,000 keys.
curl -sf -X DELETE "http://$addr/v1/kv/bench/?recurse" >/dev/null
load 10000
putlat() { # putlat <label> <dest> [putlat flags]
	local label=$1 dest=$2; shift 2
	printf '%-40s' "$label"
	"$work/putlat" -backend consul -endpoint "$addr" -key /bench/k/000042 -file "$dest" -n 200 "$@"
}
d="$work/watch-one"; mkdir -p "$d/conf.d" "$d/templates"
printf 'value {{getv "/k/000042"}}\n' >"$d/templates/one.tmpl"
printf '[template]\nsrc = "one.tmpl"\ndest = "%s/out/one.conf"\nprefix = "/bench"\nkeys = ["/k"]\n' "$d" >"$d/conf.d/one.toml"
daemon "$d" "$d/out/one.conf"
putlat "a (one-key template), back to back:" "$d/out/one.conf"
putlat "a (one-key template), $gap apart:" "$d/out/one.conf" -gap "$gap"
stop "$kv_pid"; kv_pid=
d="$work/watch-all"; confdir "$d"
daemon "$d" "$d/out/all.conf"
putlat "b (10,000-line template), back to back:" "$d/out/all.conf"
putlat "b (10,000-line template), $gap apart:" "$d/out/all.conf" -gap "$gap"

echo "== idle CPU in watch mode (10,000-line template), $idle s"
ticks() { awk '{print $14+$15}' "/proc/$kv_pid/stat"; }
sleep 1 # let the last render settle
before=$(ticks); sleep "$idle" & wait $!; after=$(ticks)
hz=$(getconf CLK_TCK)
awk -v t=$((after - before)) -v hz="$hz" -v d="$idle" 'BEGIN {printf "cpu %.3f s over %d s (%.3f%%)\n", t/hz, d, 100*t/hz/d}'
stop "$kv_pid"; kv_pid=
fi

if want 4; then
echo "== scale: 200 resources on 200 prefixes over 10,000 keys, 100 puts over 20 of them, $gap apart"
curl -sf -X DELETE "http://$addr/v1/kv/bench/?recurse" >/dev/null
python3 - "$addr" <<'PY'
import json, sys, urllib.request, base64
addr = sys.argv[1]
ops = [{"KV": {"Verb": "set", "Key": "bench/s/p%03d/k%05d" % (k % 200, k),
               "Value": base64.b64encode(b"value %05d" % k).decode()}} for k in range(10000)]
for i in range(0, len(ops), 64):
    req = urllib.request.Request("http://%s/v1/txn" % addr, data=json.dumps(ops[i:i+64]).encode(), method="PUT")
    urllib.request.urlopen(req).read()
PY
d="$work/scale"; mkdir -p "$d/conf.d" "$d/templates" "$d/out"
printf '{{range gets "/*"}}{{.Key}}={{.Value}}\n{{end}}' >"$d/templates/r.tmpl"
for i in $(seq 0 199); do
	printf '[template]\nsrc = "r.tmpl"\ndest = "%s/out/r%03d.conf"\nprefix = "/bench/s/p%03d"\nkeys = ["/"]\n' "$d" "$i" "$i" >"$d/conf.d/r$i.toml"
done
daemon "$d" "$d/out/r199.conf"
for _ in $(seq 600); do [ "$(ls "$d/out" | wc -l)" -ge 200 ] && break; sleep 0.1; done
sleep 2 # let every group's query block
keys=; files=
for j in $(seq 0 19); do
	i=$((j * 10 + j % 10)) # 20 prefixes spread over the 200
	keys+="/bench/s/p$(printf %03d "$i")/k$(printf %05d "$i"),"
	files+="$d/out/r$(printf %03d "$i").conf,"
done
conns() { ss -Htan | awk -v a="$addr" '($1 == "ESTAB" || $1 == "CLOSE-WAIT") && $4 == a {n++} END {print n+0}'; }
( peak=0; while kill -0 "$kv_pid" 2>/dev/null; do c=$(conns); [ "$c" -gt "$peak" ] && { peak=$c; echo "$peak" >"$work/peak"; }; sleep 0.05; done ) &
sampler=$!
printf '%-40s' "c (200 resources, 20 prefixes):"
"$work/putlat" -backend consul -endpoint "$addr" -key "${keys%,}" -file "${files%,}" -n 100 -gap "$gap" -by-key
stop "$kv_pid"; kv_pid=
wait "$sampler" 2>/dev/null || true
echo "most connections the agent held with kvconf and putlat: $(cat "$work/peak" 2>/dev/null || echo 0) (target <= 16, putlat's one included)"
fi
