# Shared by scripts/up.sh and scripts/test.sh: idempotent installation steps.
# Works on a fresh Debian 12 as root, with or without systemd (containers have none).

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "run this as root (it installs Debian packages)" >&2
        exit 1
    fi
}

# Install the Debian packages given that are not installed yet.
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" \
            || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        # Package scripts must not start services (there may be no init system):
        # the functions below start what is needed. Keep a policy-rc.d already there.
        local own_policy=""
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
            chmod +x /usr/sbin/policy-rc.d
            own_policy=1
        fi
        apt-get install -y -q --no-install-recommends "${missing[@]}"
        if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
    fi
}

# What Ironbark itself needs: Python, and libvirt's headers to build libvirt-python.
install_base() {
    apt_install python3 python3-venv python3-dev gcc pkg-config libvirt-dev qemu-utils \
        ca-certificates
}

# The virtualenv in .venv, with Ironbark installed (editable) and the given extras.
install_venv() {
    local extras="${1:-}"
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating the virtualenv in $VENV"
        python3 -m venv "$VENV"
    fi
    log "installing Ironbark${extras:+ [$extras]} into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e "$REPO${extras:+[$extras]}"
}

has_systemd() { [ -d /run/systemd/system ]; }

# RabbitMQ answers `ping` as soon as its Erlang node is up, which is before it has
# recovered its queues and opened the AMQP port (minutes with thousands of durable
# queues): wait for the port itself.
rabbitmq_ready() { timeout 30 rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1; }

start_rabbitmq() {
    apt_install rabbitmq-server
    if rabbitmq_ready; then return; fi
    if ! timeout 30 rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
        log "starting RabbitMQ"
        if has_systemd; then
            systemctl start rabbitmq-server
        else
            rabbitmq-server -detached
        fi
    fi
    for _ in $(seq 1 300); do
        rabbitmq_ready && return
        sleep 1
    done
    echo "RabbitMQ did not open its AMQP port; see /var/log/rabbitmq/" >&2
    exit 1
}

# A virtual host of its own, emptied: what one run left there (each test's durable
# queues and exchanges) never piles up for the next to recover or wade through.
fresh_rabbitmq_vhost() {
    local vhost="$1"
    rabbitmqctl -q delete_vhost "$vhost" >/dev/null 2>&1 || true
    rabbitmqctl -q add_vhost "$vhost" >/dev/null
    rabbitmqctl -q set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null
}

# libvirtd and virtlogd for real QEMU guests (qemu:///system). Without systemd they are
# started as daemons; libvirtd restarts nothing it did not define, so this is idempotent.
start_libvirtd() {
    apt_install libvirt-daemon-system qemu-system-x86 qemu-utils
    # What Debian's udev rule does where there is no udev: /dev/kvm for the kvm group
    # (libvirt-qemu is in it). Left root-only, libvirtd finds KVM usable when it probes
    # QEMU (as root) but not for the user QEMU runs as, throws its capabilities cache
    # away and re-probes on every domain definition: 30-50 s each.
    if [ -e /dev/kvm ] && getent group kvm >/dev/null; then
        chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
    fi
    if ! pgrep -x virtlogd >/dev/null; then
        log "starting virtlogd"
        if has_systemd; then systemctl start virtlogd; else virtlogd -d; fi
    fi
    if ! pgrep -x libvirtd >/dev/null; then
        log "starting libvirtd"
        if has_systemd; then systemctl start libvirtd; else libvirtd -d; fi
    fi
    for _ in $(seq 1 60); do
        virsh -q -c qemu:///system version >/dev/null 2>&1 && return
        sleep 1
    done
    echo "libvirtd did not answer on qemu:///system; see /var/log/libvirt/" >&2
    exit 1
}

start_postgresql() {
    apt_install postgresql
    local version cluster
    read -r version cluster < <(pg_lsclusters -h | awk 'NR==1 {print $1, $2}')
    if ! pg_lsclusters -h | awk 'NR==1 {print $4}' | grep -q online; then
        log "starting PostgreSQL $version/$cluster"
        if has_systemd; then
            systemctl start "postgresql@$version-$cluster"
        else
            pg_ctlcluster "$version" "$cluster" start
        fi
    fi
    for _ in $(seq 1 60); do
        runuser -u postgres -- psql -qtAc "SELECT 1" >/dev/null 2>&1 && break
        sleep 1
    done
    # The tests' role: may create (and drop) one database per test.
    runuser -u postgres -- psql -qtAc "
        DO \$\$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ironbark') THEN
            CREATE ROLE ironbark LOGIN PASSWORD 'ironbark' CREATEDB;
          END IF;
        END \$\$;" >/dev/null
}
