#!/usr/bin/env bash
# End-to-end benchmarks of kvconf against a real ZooKeeper (Debian's
# zookeeper package, run standalone from its jar with java on a free port;
# installed when missing and root):
#   1. one-shot render of 1,000 / 10,000 / 100,000 znodes: wall time and
#      peak RSS of the whole kvconf process, next to the raw Go client's
#      read of the same znodes (bench/cmd/loadzk -read: children, then every
#      child's data, 64 requests in flight);
#   2. put-to-file latency (median, p95, p99 over 200 sets) with 10,000
#      znodes under the watched prefix, and the number of watches the
#      server holds for kvconf meanwhile (its "wchs" command);
#   3. CPU used by kvconf -watch while idle for 60 s (10,000 znodes
#      watched).
# The server syncs its log to disk as in production, so the latency counts
# ZooKeeper's fsync of each set.
# Usage: bench/zookeeper.sh [runs]   (runs per one-shot measurement, default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
jar=/usr/share/java/zookeeper.jar

if ! [ -f "$jar" ] || ! command -v java >/dev/null 2>&1 || ! [ -x /usr/bin/time ]; then
	[ "$(id -u)" -eq 0 ] || { echo "bench/zookeeper.sh: install zookeeper time" >&2; exit 1; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends zookeeper time >/dev/null
	service zookeeper stop >/dev/null 2>&1 || true
fi

work=$(mktemp -d)
cleanup() { [ -n "${zk_pid:-}" ] && kill "$zk_pid" 2>/dev/null; [ -n "${kv_pid:-}" ] && kill "$kv_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

go build -o "$work/kvconf" ./cmd/kvconf
go build -o "$work/loadzk" ./bench/cmd/loadzk
go build -o "$work/putlat" ./bench/cmd/putlat

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
endpoint="127.0.0.1:$port"
mkdir -p "$work/zk"
printf 'tickTime=2000\ndataDir=%s\nclientPort=%s\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=srvr,wchs\nmaxClientCnxns=0\n' \
	"$work/zk" "$port" >"$work/zoo.cfg"
java -Xmx1g -cp "$jar" org.apache.zookeeper.server.ZooKeeperServerMain "$work/zoo.cfg" >"$work/zk.log" 2>&1 &
zk_pid=$!
srvr() { exec 3<>"/dev/tcp/127.0.0.1/$port" && printf srvr >&3 && cat <&3; } 2>/dev/null
wchs() { exec 3<>"/dev/tcp/127.0.0.1/$port" && printf wchs >&3 && cat <&3; } 2>/dev/null
up=""
for _ in $(seq 300); do # serving once it reports its mode
	if srvr | grep -q '^Mode: standalone'; then up=1; break; fi
	sleep 0.2
done
[ -n "$up" ] || { cat "$work/zk.log" >&2; echo "ZooKeeper did not start" >&2; exit 1; }

median() { sort -n | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }
declare -A walls rss
sample() { # sample <key> <cmd...>: one timed run of cmd, its wall s and peak RSS kept under key
	local key=$1; shift
	local sec kib
	/usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; return 1; }
	read -r sec kib <"$work/time"
	walls[$key]+="$sec "
	rss[$key]+="$kib "
}
report() { # report <label> <key>: the medians of the runs kept under key; sets $wall
	wall=$(printf '%s\n' ${walls[$2]} | median)
	printf '%-34s wall %6ss   peak RSS %7.1f MiB\n' "$1" "$wall" \
		"$(printf '%s\n' ${rss[$2]} | median | awk '{print $1/1024}')"
}

confdir() { # confdir <dir>: one resource rendering every key under /bench/k
	mkdir -p "$1/conf.d" "$1/templates" "$1/out"
	printf '{{range gets "/k/*"}}server {{base .Key}} {{.Value}}\n{{end}}' >"$1/templates/all.tmpl"
	printf '[template]\nsrc = "all.tmpl"\ndest = "%s/out/all.conf"\nprefix = "/bench"\nkeys = ["/k"]\n' "$1" >"$1/conf.d/all.toml"
}

echo "== one-shot render (median of $runs runs, whole process; the raw read and kvconf take turns)"
for n in 1000 10000 100000; do
	"$work/loadzk" -endpoint "$endpoint" -prefix /bench -n "$n" # sets the first keys again
	d="$work/one-$n"; confdir "$d"
	for _ in $(seq "$runs"); do
		sample "raw-$n" "$work/loadzk" -endpoint "$endpoint" -prefix /bench -read
		sample "kvconf-$n" "$work/kvconf" -onetime -config-file /dev/null -confdir "$d" -backend zookeeper -node "$endpoint" -log-level error
	done
	report "raw client read ($n znodes)" "raw-$n"
	raw_wall=$wall
	report "kvconf -onetime ($n znodes)" "kvconf-$n"
	awk -v k="$wall" -v c="$raw_wall" -v n="$n" 'BEGIN {printf "ratio kvconf/raw wall (%d znodes): %.2fx\n", n, k/c}'
	got=$(wc -l <"$d/out/all.conf"); [ "$got" -eq "$n" ] || { echo "rendered $got lines, want $n" >&2; exit 1; }
done

echo "== put-to-file latency, 10,000 znodes under the watched prefix (200 sets)"
# The watched prefix holds the first 10,000 keys only.
"$work/loadzk" -endpoint "$endpoint" -prefix /lat -n 10000
d="$work/watch-one"; mkdir -p "$d/conf.d" "$d/templates" "$d/out"
printf 'value {{getv "/k/000042"}}\n' >"$d/templates/one.tmpl"
printf '[template]\nsrc = "one.tmpl"\ndest = "%s/out/one.conf"\nprefix = "/lat"\nkeys = ["/k"]\n' "$d" >"$d/conf.d/one.toml"
"$work/kvconf" -watch -config-file /dev/null -confdir "$d" -backend zookeeper -node "$endpoint" -log-level error &
kv_pid=$!
for _ in $(seq 300); do [ -s "$d/out/one.conf" ] && break; sleep 0.1; done
# The first change is rendered once the watch has set its watch.
"$work/putlat" -backend zookeeper -endpoint "$endpoint" -key /lat/k/000042 -file "$d/out/one.conf" -n 1 -timeout 60s >/dev/null
printf 'one-key template: '; "$work/putlat" -backend zookeeper -endpoint "$endpoint" -key /lat/k/000042 -file "$d/out/one.conf" -n 200
printf 'watches held by the server for 10,000 watched znodes: %s\n' "$(wchs | sed -n 's/^Total watches://p')"

echo "== idle CPU in watch mode, 60 s (10,000 znodes watched)"
ticks() { awk '{print $14+$15}' "/proc/$kv_pid/stat"; }
before=$(ticks); sleep 60; after=$(ticks)
hz=$(getconf CLK_TCK)
awk -v t=$((after - before)) -v hz="$hz" 'BEGIN {printf "cpu %.3f s over 60 s (%.3f%%)\n", t/hz, 100*t/hz/60}'
