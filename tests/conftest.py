"""Fixtures shared by every test: real brokers, real databases, real clouds.

Nothing here is a stand-in. ``rabbitmq_url`` and ``postgres_url`` point at the
servers ``scripts/test.sh`` installs and starts; when they are missing the tests
that need them fail (they never skip), with a message saying how to start them.
Every test gets its own bus namespace and its own database, so tests can run in
parallel (pytest -n) against one broker and one PostgreSQL server.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from kombu import Connection

from ironbark import config
from ironbark.allinone import AllInOne
from tests.helpers import Api
from tests.identity import member_token

# The tests' own virtual host, which scripts/test.sh empties before each run.
RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL",
                              "amqp://guest:guest@127.0.0.1:5672/ironbark-test")
POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://ironbark:ironbark@127.0.0.1:5432/postgres"
)



@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    try:
        with Connection(RABBITMQ_URL, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        pytest.fail(f"RabbitMQ is not reachable at {RABBITMQ_URL} ({exc}); "
                    f"scripts/test.sh installs and starts it and creates the virtual host")
    return RABBITMQ_URL


@pytest.fixture(scope="session")
def postgres_server() -> str:
    engine = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL} ({exc}); "
                    f"scripts/test.sh installs and starts it and creates the virtual host")
    finally:
        engine.dispose()
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test, dropped afterwards."""
    name = f"ironbark_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(postgres_server).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        drop_database(admin, name)
        admin.dispose()


def drop_database(admin: sa.Engine, name: str, attempts: int = 40) -> None:
    """DROP ... WITH (FORCE), retried: FORCE ends the tests' own connections, but not an
    autovacuum worker (a superuser's) that PostgreSQL may have started on the database;
    those finish within moments."""
    for attempt in range(attempts):
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except (sa.exc.ProgrammingError, sa.exc.OperationalError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.25)


@pytest.fixture
def namespace() -> str:
    """A bus namespace of this test's own (memory:// is one process-wide broker)."""
    return f"test-{uuid.uuid4().hex[:12]}"


def fast_config(data_dir: Path, namespace: str, **overrides: Any) -> config.Config:
    """A configuration for tests: short intervals, free ports."""
    base: dict[str, Any] = {
        "data_dir": data_dir,
        "bus": {"url": "memory://", "namespace": namespace, "polling_interval": 0.001},
        "api": {"port": 0},
        "image_store": {"port": 0},
        # Tests of placement make hundreds of servers: unlimited unless a test sets quotas.
        "cloud": {"reconcile_interval": 0.2, "group_stale_after": 30.0,
                  "quota_defaults": {"instances": -1, "cores": -1, "ram": -1}},
        "group": {"summary_interval": 0.2, "host_down_after": 3.0},
        "host": {"report_interval": 0.5},
    }
    for section, values in overrides.items():
        if isinstance(values, dict) and isinstance(base.get(section), dict):
            base[section] = {**base[section], **values}
        else:
            base[section] = values
    return config.ensure_secrets(config.load(**base))


CloudFactory = Callable[..., AllInOne]


@pytest.fixture
def make_cloud(tmp_path: Path, namespace: str) -> Iterator[CloudFactory]:
    """Start all-in-one clouds in this process: ``make_cloud(hosts=2, host={...})``."""
    started: list[AllInOne] = []

    def make(hosts: int = 2, data_dir: Path | None = None, **overrides: Any) -> AllInOne:
        cfg = fast_config(data_dir or tmp_path / f"cloud{len(started)}", namespace,
                          **overrides)
        cloud = AllInOne(cfg, hosts).start()
        started.append(cloud)
        return cloud

    yield make
    for cloud in started:
        if not getattr(cloud, "stopped", False):
            cloud.stop()


@pytest.fixture
def cloud(make_cloud: CloudFactory) -> AllInOne:
    """A running two-host all-in-one cloud."""
    return make_cloud()


@pytest.fixture
def admin(cloud: AllInOne) -> Api:
    return Api(cloud.api_url, cloud.admin_token)


@pytest.fixture
def alpha(cloud: AllInOne) -> Api:
    """A member of project ``alpha`` (made through the identity API)."""
    return Api(cloud.api_url, member_token(cloud, "alpha"))


@pytest.fixture
def beta(cloud: AllInOne) -> Api:
    return Api(cloud.api_url, member_token(cloud, "beta"))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of a real S3-API server (moto_server, a subprocess) for this session."""
    from tests.s3_server import S3Server, S3ServerError

    server = S3Server()
    try:
        server.start()
    except S3ServerError as exc:
        server.close()
        pytest.fail(str(exc))
    yield server.url
    server.close()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A bucket name no other test uses (the backend creates it)."""
    return f"ironbark-test-{uuid.uuid4().hex[:16]}"
