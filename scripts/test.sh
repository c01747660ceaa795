#!/usr/bin/env bash
# Command 2: install everything the tests need (Debian packages included), start the
# services they use (RabbitMQ, PostgreSQL), then run ruff and the whole test suite.
# Idempotent; extra arguments go to pytest (e.g. scripts/test.sh tests/unit -x).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
install_base
install_venv test
start_rabbitmq
fresh_rabbitmq_vhost ironbark-test   # tests/conftest.py's TEST_RABBITMQ_URL
start_postgresql
start_libvirtd                       # real QEMU guests (tests/integration/test_qemu_*.py)
log "the test guest"
"$REPO/scripts/test-guest.sh" >/dev/null   # built once, cached (tests/guest.py)

cd "$REPO"
log "ruff"
"$VENV/bin/ruff" check .
log "pytest"
# Tests wait on I/O (bus hops, subprocesses) more than they compute: 3 workers keep
# both cores busy.
exec "$VENV/bin/pytest" -n 3 --durations=15 -p no:cacheprovider "$@"
