#!/usr/bin/env bash
# Ceremonies/s through the fleet's router, and the latency it adds: the relay's load generator
# against Debian's nginx running deploy/kubernetes/router.conf (rendered for 1 and for 3 pods,
# TLS lines removed, the per-pod Services replaced by loopback ports) in front of release
# relays started as the fleet test starts them (the shipped relay.toml, routing IDs from
# their host names in UTS namespaces of their own), with relay-0 measured directly as the
# baseline in the same run (alternating rounds). Prints the machine's load at start and end.
#
#   bash scripts/bench-fleet.sh                    after: cargo build --release --workspace --bins
#   LOADGEN_ARGS="--seconds 6" bash scripts/bench-fleet.sh
#
# BIN: the folder with tunnel-server and loadgen (default: $CARGO_TARGET_DIR/release or
# target/release). Needs nginx and unshare; sends traffic to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release}
LOADGEN=${LOADGEN:-$BIN/loadgen}
DEPLOY=tunnel-server/deploy/kubernetes
for f in "$BIN/tunnel-server" "$LOADGEN"; do
    [ -x "$f" ] || { echo "bench-fleet: $f is not built: cargo build --release --workspace --bins" >&2; exit 1; }
done
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "bench-fleet: needs nginx (apt-get install nginx-light)" >&2; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
uts=(unshare --uts)
[ "$(id -u)" = 0 ] || uts=(unshare --user --map-root-user --uts)

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "bench-fleet: nothing listens on $1" >&2
    exit 1
}

ports=()
for n in 0 1 2; do
    port=$(free_port)
    ports+=("$port")
    mkdir -p "$work/relay-$n"
    # --messages-per-side: the load generator's ping-pong relays thousands of messages a tunnel.
    # shellcheck disable=SC2016 # $0 and $@ are the inner shell's: the hostname, then the relay.
    "${uts[@]}" sh -c 'hostname "$0" && shift && exec "$@"' "relay-$n" -- \
        "$BIN/tunnel-server" --config "$DEPLOY/relay.toml" \
        --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$(free_port)" \
        --contact-store "$work/relay-$n/contacts" --messages-per-side 4000000000 \
        >"$work/relay-$n/log" 2>&1 &
    pids+=($!)
done
for p in "${ports[@]}"; do wait_port "$p"; done

# nginx with router.conf rendered for $1 pods, on a port of its own (in router_port).
router() {
    local replicas=$1 port dir
    port=$(free_port)
    dir="$work/router-$replicas"
    mkdir -p "$dir"
    "$BIN/tunnel-server" fleet router --replicas "$replicas" --config "$DEPLOY/relay.toml" \
        | grep -v '# tls$' \
        | sed -e "s/^server {\$/server {\n    listen 127.0.0.1:$port;/" \
              -e "s/relay-0:8443/127.0.0.1:${ports[0]}/g" \
              -e "s/relay-1:8443/127.0.0.1:${ports[1]}/g" \
              -e "s/relay-2:8443/127.0.0.1:${ports[2]}/g" >"$dir/router.conf"
    cat >"$dir/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    include $dir/router.conf;
}
EOF
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" >/dev/null 2>>"$dir/error.log" &
    pids+=($!)
    wait_port "$port"
    router_port=$port
}

router 1
r1=$router_port
router 3
r3=$router_port
echo "bench-fleet: relays on ${ports[*]}; router for 1 pod on $r1, for 3 pods on $r3"
echo "bench-fleet: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
ulimit -n 20000 2>/dev/null || true
# No RSS phase (--idle 0 --paired 0): nginx is not the relay, and the relays' memory is
# measured in BENCHMARKS.md already.
for r in "$r1" "$r3"; do
    echo
    echo "### router for $([ "$r" = "$r1" ] && echo 1 pod || echo 3 pods) (ws://127.0.0.1:$r) against relay-0 directly (ws://127.0.0.1:${ports[0]})"
    # shellcheck disable=SC2086 # LOADGEN_ARGS holds extra flags
    "$LOADGEN" --url "ws://127.0.0.1:$r" --baseline-url "ws://127.0.0.1:${ports[0]}" \
        --idle 0 --paired 0 --settle 0 ${LOADGEN_ARGS:-}
done
echo
echo "bench-fleet: load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
