#!/usr/bin/env bash
# Two `lcnet serve` replicas behind nginx on loopback, under wrk's load:
#   1. one replica alone, then both behind nginx: requests/s, p50, p99;
#   2. both behind nginx again, and replica 1 killed (SIGKILL) mid-run: every
#      request must still succeed (nginx retries it on replica 2).
# Run by hand (not in CI), from the repository root, after `cargo build --release`:
#
#   apt-get install nginx wrk
#   bash tools/serve-replicas.sh [seconds per run, default 10] [concurrency, default 8]
#
# The nginx configuration it writes is the one to copy: an upstream of
# replicas, `proxy_next_upstream` retrying a failed or refused request
# (POSTs included: classification has no side effects) on the next replica,
# and a body limit as large as the servers'. Everything stays on 127.0.0.1;
# the servers and nginx are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-10}
concurrency=${2:-8}
lcnet=target/release/lcnet
ports=(18611 18612)
front=18610
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [[ -f $work/nginx.pid ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for tool in nginx wrk python3; do
    command -v "$tool" >/dev/null || { echo "serve-replicas.sh: needs $tool (apt-get install nginx wrk)" >&2; exit 1; }
done
[[ -x $lcnet ]] || { echo "serve-replicas.sh: build first: cargo build --release" >&2; exit 1; }

# Request bodies: the four example pages, base64 in PaddleX's JSON.
for angle in 0 90 180 270; do
    printf '{"image": "%s"}' "$(base64 -w0 "examples/pages/page_$angle.png")" >"$work/body_$angle.json"
done

cat >"$work/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/body;
    proxy_temp_path $work/proxy;
    upstream lcnet {
        server 127.0.0.1:${ports[0]} max_fails=1 fail_timeout=5s;
        server 127.0.0.1:${ports[1]} max_fails=1 fail_timeout=5s;
        keepalive 32;
    }
    server {
        listen 127.0.0.1:$front;
        client_max_body_size 20m;
        client_body_buffer_size 20m;
        location / {
            proxy_pass http://lcnet;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # A replica that refuses, resets or answers 502/503 (queue full): try the next.
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_next_upstream_tries 2;
            proxy_connect_timeout 1s;
        }
    }
}
EOF

start_replica() {
    "$lcnet" serve --port "$1" 2>"$work/replica-$1.log" &
    pids+=($!)
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$1/health" >/dev/null && return
        sleep 0.1
    done
    echo "replica on port $1 did not start" >&2
    exit 1
}

load() { # URL -> prints "req/s p50 p99 errors"
    wrk -t2 -c"$concurrency" -d"${seconds}s" --latency --timeout 30s -s bench/wrk_post.lua "$1" -- "$work"/body_*.json |
        python3 -c '
import re, sys
out = sys.stdin.read()
rps = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
total = re.search(r"(\d+) requests in", out).group(1)
print(f"{rps} req/s, p50 {lat['"'"'50'"'"']}, p99 {lat['"'"'99'"'"']}, {total} requests, {errors} failed")
'
}

start_replica "${ports[0]}"
start_replica "${ports[1]}"
nginx -c "$work/nginx.conf" -p "$work" -e "$work/error.log"

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores; concurrency $concurrency, ${seconds} s per run"
echo "one replica, direct:        $(load "http://127.0.0.1:${ports[0]}")"
echo "two replicas behind nginx:  $(load "http://127.0.0.1:$front")"

(sleep "$((seconds / 2))" && kill -9 "${pids[0]}" && echo "  (replica on ${ports[0]} killed at ${seconds}/2 s)") &
killer=$!
echo "replica 1 killed mid-run:   $(load "http://127.0.0.1:$front")"
wait "$killer"
