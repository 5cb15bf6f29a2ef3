#!/usr/bin/env bash
# Herald next to nginx + Nchan under a steady series of broadcasts (docs/benchmarks.md, issue 13).
#
#   scripts/bench-steady.sh <herald|nchan> <streams> <pinned: 0|1> [broadcasts] [extra bench args...]
#
# Starts a fresh server (Herald on a new SQLite file, or nginx with the Nchan module: apt-get
# install nginx-light libnginx-mod-nchan), opens <streams> streams of new users, publishes
# <broadcasts> (default 20) ALL broadcasts 200 ms apart and prints the bench's JSON report. With
# pinned = 1 the server runs on core 0 (taskset -c 0) and the load generator on core 1.
# HERALD (default target/release/herald) is the server; LOADGEN (default: the same binary) runs
# `herald bench`, so that two server builds can be compared with one load generator.
# ROUNDS=2 runs the bench twice on the same server with the same users (streams of known users in
# the second round; for Nchan, subscribers to a channel that holds messages, which it replays to
# each of them by default), one report each; a round starts once the server has closed every
# stream of the round before.
set -eu
what=$1 streams=$2 pinned=$3 broadcasts=${4:-20}
shift $(( $# < 4 ? $# : 4 ))
herald=${HERALD:-target/release/herald}
loadgen=${LOADGEN:-$herald}
ulimit -n 20000
dir=$(mktemp -d)
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
# A new port every run (below the ephemeral range, which starts at 32768), so that no connection
# of an earlier run, lingering in TIME_WAIT, shares an address pair with this one.
port=$(( 20000 + RANDOM % 12000 ))
on_server=() on_client=()
if [ "$pinned" = 1 ]; then on_server=(taskset -c 0) on_client=(taskset -c 1); fi
if [ "$what" = herald ]; then
  "${on_server[@]}" "$herald" serve --database-url "sqlite://$dir/h.db" --listen 127.0.0.1:$port \
    --max-connections 20000 --max-connections-per-ip 20000 \
    --connects-per-ip-per-minute 10000000 --broadcasts-per-admin-per-minute 10000000 >"$dir/server.log" 2>&1 &
  server=$! url=http://127.0.0.1:$port mode=herald
  for _ in $(seq 200); do curl -sf "$url/health/ready" >/dev/null && break; sleep 0.05; done
  pid=$server
else
  cat >"$dir/nginx.conf" <<NGINX
load_module /usr/lib/nginx/modules/ngx_nchan_module.so;
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 19000; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$port backlog=4096;
    location = /sub/bench { nchan_subscriber eventsource; nchan_channel_id bench; }
    location = /pub/bench { nchan_publisher; nchan_channel_id bench; nchan_message_buffer_length 1000; }
  }
}
NGINX
  "${on_server[@]}" nginx -c "$dir/nginx.conf" -p "$dir" >"$dir/server.log" 2>&1 &
  server=$! url=http://127.0.0.1:$port mode=nchan
  for _ in $(seq 200); do curl -s -o /dev/null "$url/sub/none" && break; sleep 0.05; done
  pid=$(pgrep -P "$server" | head -1)   # the worker process
fi
for round in $(seq "${ROUNDS:-1}"); do
  if [ "$round" -gt 1 ]; then
    # The last round's clients are gone: wait (at most 30 s) until the server has closed them all,
    # and 2 s more, so that none of its work for them counts in this round's CPU figures.
    for _ in $(seq 300); do
      [ "$(ss -Htn state established state close-wait state last-ack "( sport = :$port )" | wc -l)" = 0 ] && break
      sleep 0.1
    done
    sleep 2
  fi
  "${on_client[@]}" "$loadgen" bench --mode "$mode" --url "$url" --pid "$pid" --streams "$streams" \
    --broadcasts "$broadcasts" --rate 5 --concurrency 512 --source-ips 1 --wait 60s \
    "$@" 2>"$dir/bench.err" | tail -1
done
