#!/usr/bin/env bash
# Three minilvb nodes on one machine, as one server: one MariaDB/MySQL database, one Redis.
#
#   DATABASE_URL=mysql://minilvb:PASS@127.0.0.1:3306/minilvb REDIS_URL=redis://127.0.0.1:6379 \
#     deploy/cluster.sh start          # nodes on 127.0.0.1:8081, :8082, :8083
#   deploy/cluster.sh status
#   deploy/cluster.sh stop             # graceful: every node writes its rooms and leaves
#
# Optional: NODE_BINARY (default: target/release/minilvb), PORTS ("8081 8082 8083"),
# CLUSTER_DIR (pid files, logs and the generated cluster secret; default .cluster),
# and any MINILVB_* variable, which every node inherits (live.bizid, live.push_key, ...).
# Put a load balancer in front of the ports: any node answers any request.
set -euo pipefail

dir=${CLUSTER_DIR:-.cluster}
bin=${NODE_BINARY:-target/release/minilvb}
ports=${PORTS:-8081 8082 8083}

start() {
    : "${DATABASE_URL:?set DATABASE_URL (mysql://...): the nodes share one database}"
    : "${REDIS_URL:?set REDIS_URL (redis://...): the nodes find each other through it}"
    [ -x "$bin" ] || { echo "no minilvb binary at $bin (cargo build --release, or set NODE_BINARY)" >&2; exit 1; }
    mkdir -p "$dir" && chmod 700 "$dir"
    # One secret for the whole cluster: peers sign their calls with it.
    if [ ! -s "$dir/secret" ]; then
        (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/secret")
    fi
    for port in $ports; do
        if [ -s "$dir/$port.pid" ] && kill -0 "$(cat "$dir/$port.pid")" 2>/dev/null; then
            echo "node on port $port already runs (pid $(cat "$dir/$port.pid"))"
            continue
        fi
        MINILVB_DATABASE__URL="$DATABASE_URL" \
        MINILVB_CLUSTER__REDIS_URL="$REDIS_URL" \
        MINILVB_CLUSTER__SECRET="$(cat "$dir/secret")" \
        MINILVB_CLUSTER__NODE_ID="node-$port" \
        MINILVB_BIND="127.0.0.1:$port" \
        MINILVB_LOG_FORMAT="${MINILVB_LOG_FORMAT:-json}" \
            nohup "$bin" serve >"$dir/$port.log" 2>&1 &
        echo $! > "$dir/$port.pid"
    done
    for port in $ports; do
        for _ in $(seq 1 100); do
            if bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then break; fi
            if ! kill -0 "$(cat "$dir/$port.pid")" 2>/dev/null; then
                echo "node on port $port exited; its log:" >&2; tail -20 "$dir/$port.log" >&2; exit 1
            fi
            sleep 0.1
        done
        echo "node-$port: http://127.0.0.1:$port (log $dir/$port.log)"
    done
}

stop() {
    for port in $ports; do
        [ -s "$dir/$port.pid" ] || continue
        pid=$(cat "$dir/$port.pid")
        if kill -TERM "$pid" 2>/dev/null; then
            # The node drains, writes every room, gives them up and exits.
            for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            echo "node-$port stopped"
        fi
        rm -f "$dir/$port.pid"
    done
}

status() {
    for port in $ports; do
        if [ -s "$dir/$port.pid" ] && kill -0 "$(cat "$dir/$port.pid")" 2>/dev/null; then
            echo "node-$port: running (pid $(cat "$dir/$port.pid"))"
        else
            echo "node-$port: stopped"
        fi
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
