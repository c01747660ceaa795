#!/usr/bin/env bash
# Command 1: install Ironbark and start the all-in-one cloud on its embedded defaults
# (memory bus, SQLite, libvirt's simulated hypervisor with 2 hosts, a local image
# store), then show it working: boot a server from the demo image and list it.
# Idempotent: run it again and it reuses the running cloud and boots its demo server
# anew (one at a time, so repeated runs stay within the project's quota).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
install_base
install_venv

IRONBARK="$VENV/bin/ironbark"
ln -sf "$IRONBARK" /usr/local/bin/ironbark   # so the README's `ironbark ...` works
DATA="${IRONBARK_DATA_DIR:-$HOME/.local/share/ironbark}"
mkdir -p "$DATA"

if [ -f "$DATA/ironbark.pid" ] && kill -0 "$(cat "$DATA/ironbark.pid")" 2>/dev/null; then
    log "the all-in-one cloud is already running (pid $(cat "$DATA/ironbark.pid"))"
else
    log "starting the all-in-one cloud (log: $DATA/ironbark-up.log)"
    nohup "$IRONBARK" up --data-dir "$DATA" > "$DATA/ironbark-up.log" 2>&1 &
    for _ in $(seq 1 120); do
        grep -q "Press Ctrl-C to stop" "$DATA/ironbark-up.log" 2>/dev/null && break
        if ! kill -0 $! 2>/dev/null; then cat "$DATA/ironbark-up.log"; exit 1; fi
        sleep 0.5
    done
    sed -n '1,/Press Ctrl-C/p' "$DATA/ironbark-up.log"
fi

NAME="demo-vm"
if "$IRONBARK" server show "$NAME" >/dev/null 2>&1; then
    log "deleting the demo server of the previous run"
    "$IRONBARK" server delete --wait "$NAME"
fi
log "booting $NAME from the demo image"
"$IRONBARK" server create --flavor m1.small --image demo --wait "$NAME"
log "servers"
"$IRONBARK" server list
log "hosts"
"$IRONBARK" host list
echo
echo "The cloud keeps running in the background. Try: ironbark --help"
echo "Stop it with: ironbark down"
