#!/usr/bin/env bash
# End-to-end benchmarks of kvconf against a real etcd server (Debian's
# etcd-server and etcd-client packages; installed when missing and root):
#   1. one-shot render of 1,000 / 10,000 / 100,000 keys: wall time and peak
#      RSS of the whole kvconf process, next to `etcdctl get --prefix` of the
#      same keys;
#   2. 200 resources over 10,000 keys rendered in one shot, all 200 files
#      written (and synced), and again when all are up to date;
#   3. put-to-file latency (median, p95, p99 over 200 puts) with 10,000 keys
#      under the watched prefix;
#   4. CPU used by kvconf -watch while idle for 60 s.
# Usage: bench/etcd.sh [runs]   (runs per one-shot measurement, default 5)
#   KEYS="1000 10000 100000" (the default) are the sizes of section 1;
#   KEYS="100000 1000000" is issue 19's scale case (1,000,000 keys: target
#   within 1.25x of etcdctl's wall time, and a peak RSS at most etcdctl's).
#   SECTIONS="1 2 3 4" (the default) picks the sections to run.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
root=$(pwd)
keys="${KEYS:-1000 10000 100000}"
sections=" ${SECTIONS:-1 2 3 4} "
want() { [[ $sections == *" $1 "* ]]; }
ctl() { ETCDCTL_API=3 etcdctl --command-timeout=600s --endpoints "$endpoint" "$@"; }

need() { command -v "$1" >/dev/null 2>&1; }
if ! need etcd || ! need etcdctl || ! [ -x /usr/bin/time ]; then
	[ "$(id -u)" -eq 0 ] || { echo "bench/etcd.sh: install etcd-server etcd-client time" >&2; exit 1; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client time >/dev/null
fi

work=$(mktemp -d)
cleanup() { [ -n "${etcd_pid:-}" ] && kill "$etcd_pid" 2>/dev/null; [ -n "${kv_pid:-}" ] && kill "$kv_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

go build -o "$work/kvconf" ./cmd/kvconf
go build -o "$work/loadetcd" ./bench/cmd/loadetcd
go build -o "$work/putlat" ./bench/cmd/putlat

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cport=$(free_port); pport=$(free_port)
endpoint="127.0.0.1:$cport"
etcd --name bench --data-dir "$work/etcd" --listen-client-urls "http://$endpoint" \
	--advertise-client-urls "http://$endpoint" --listen-peer-urls "http://127.0.0.1:$pport" \
	--initial-advertise-peer-urls "http://127.0.0.1:$pport" --initial-cluster "bench=http://127.0.0.1:$pport" \
	--log-level error >"$work/etcd.log" 2>&1 &
etcd_pid=$!
for _ in $(seq 100); do ETCDCTL_API=3 etcdctl --endpoints "$endpoint" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done

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
report() { # report <label> <key>: the medians of the runs kept under key; sets $wall and $rss_mib
	wall=$(printf '%s\n' ${walls[$2]} | median)
	rss_mib=$(printf '%s\n' ${rss[$2]} | median | awk '{printf "%.1f", $1/1024}')
	printf '%-34s wall %6ss   peak RSS %7.1f MiB\n' "$1" "$wall" "$rss_mib"
}

confdir() { # confdir <dir> <resources> <keys per resource>
	local dir=$1 n=$2 per=$3
	mkdir -p "$dir/conf.d" "$dir/templates" "$dir/out"
	printf '{{range gets "/k/*"}}server {{base .Key}} {{.Value}}\n{{end}}' >"$dir/templates/all.tmpl"
	if [ "$n" -eq 1 ]; then
		printf '[template]\nsrc = "all.tmpl"\ndest = "%s/out/all.conf"\nprefix = "/bench"\nkeys = ["/k"]\n' "$dir" >"$dir/conf.d/all.toml"
		return
	fi
	for i in $(seq 0 $((n - 1))); do
		# resource i reads the 100 keys /bench/k/<4 digits><2 digits> of block i mod 100
		printf '[template]\nsrc = "all.tmpl"\ndest = "%s/out/r%03d.conf"\nprefix = "/bench"\nkeys = ["/k/%04d"]\n' \
			"$dir" "$i" "$((i % 100))" >"$dir/conf.d/r$i.toml"
	done
}

if want 1; then
echo "== one-shot render (median of $runs runs, whole process; etcdctl and kvconf take turns)"
loaded=0
for n in $keys; do
	"$work/loadetcd" -endpoint "$endpoint" -prefix /bench -n "$n" # overwrites the first $loaded keys
	loaded=$n
	ctl compaction "$(ctl endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')" >/dev/null
	d="$work/one-$n"; confdir "$d" 1 "$n"
	for _ in $(seq "$runs"); do
		sample "etcdctl-$n" env ETCDCTL_API=3 etcdctl --command-timeout=600s --endpoints "$endpoint" get --prefix /bench/k/
		sample "kvconf-$n" "$work/kvconf" -onetime -config-file /dev/null -confdir "$d" -backend etcd -node "http://$endpoint" -log-level error
	done
	report "etcdctl get --prefix ($n keys)" "etcdctl-$n"
	ctl_wall=$wall ctl_rss=$rss_mib
	report "kvconf -onetime ($n keys)" "kvconf-$n"
	awk -v k="$wall" -v c="$ctl_wall" -v n="$n" -v kr="$rss_mib" -v cr="$ctl_rss" \
		'BEGIN {printf "ratio kvconf/etcdctl (%d keys): wall %.2fx%s, peak RSS %.2fx%s\n", n, k/c, (n >= 100000) ? " (target <= 1.25x)" : "", kr/cr, (n >= 1000000) ? " (target <= 1x)" : ""}'
	got=$(wc -l <"$d/out/all.conf"); [ "$got" -eq "$n" ] || { echo "rendered $got lines, want $n" >&2; exit 1; }
done
fi

if want 2; then
echo "== 200 resources over 10,000 keys, one shot"
ETCDCTL_API=3 etcdctl --endpoints "$endpoint" del --prefix /bench/ >/dev/null
"$work/loadetcd" -endpoint "$endpoint" -prefix /bench -n 10000
d="$work/many"; confdir "$d" 200 100
many=("$work/kvconf" -onetime -config-file /dev/null -confdir "$d" -backend etcd -node "http://$endpoint" -log-level error)
for _ in $(seq "$runs"); do
	rm -f "$d"/out/*.conf
	sample fresh "${many[@]}"     # writes all 200 files (each synced)
	sample unchanged "${many[@]}" # finds all 200 up to date
done
report "200 files written" fresh
report "200 files up to date" unchanged
fi

if want 3 || want 4; then
echo "== put-to-file latency, 10,000 keys under the watched prefix (200 puts)"
# a: the template reads the changed key only; b: it renders all 10,000 keys.
daemon() { # daemon <confdir> <dest>: start kvconf -watch and wait for its first render
	"$work/kvconf" -watch -config-file /dev/null -confdir "$1" -backend etcd -node "http://$endpoint" -log-level error &
	kv_pid=$!
	for _ in $(seq 100); do [ -s "$2" ] && break; sleep 0.1; done
}
d="$work/watch-one"; mkdir -p "$d/conf.d" "$d/templates"
printf 'value {{getv "/k/000042"}}\n' >"$d/templates/one.tmpl"
printf '[template]\nsrc = "one.tmpl"\ndest = "%s/out/one.conf"\nprefix = "/bench"\nkeys = ["/k"]\n' "$d" >"$d/conf.d/one.toml"
daemon "$d" "$d/out/one.conf"
printf 'a (one-key template):     '; "$work/putlat" -endpoint "$endpoint" -key /bench/k/000042 -file "$d/out/one.conf" -n 200
kill "$kv_pid"; wait "$kv_pid" 2>/dev/null || true
d="$work/watch-all"; confdir "$d" 1 10000
daemon "$d" "$d/out/all.conf"
printf 'b (10,000-line template): '; "$work/putlat" -endpoint "$endpoint" -key /bench/k/000042 -file "$d/out/all.conf" -n 200

echo "== idle CPU in watch mode, 60 s"
ticks() { awk '{print $14+$15}' "/proc/$kv_pid/stat"; }
before=$(ticks); sleep 60; after=$(ticks)
hz=$(getconf CLK_TCK)
awk -v t=$((after - before)) -v hz="$hz" 'BEGIN {printf "cpu %.3f s over 60 s (%.3f%%)\n", t/hz, 100*t/hz/60}'
fi
