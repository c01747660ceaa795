"""Configuration: defaults, the TOML file, IRONBARK_* overrides, validation, secrets."""

from __future__ import annotations

import os
import stat
import threading
import tomllib
from pathlib import Path

import pytest

from ironbark.config import Config, ConfigError, ensure_secrets, load


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No IRONBARK_ variable of the caller's leaks in, and the default data_dir is ours."""
    for name in list(os.environ):
        if name.startswith("IRONBARK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _error(*args: object, **kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        load(*args, **kwargs)  # type: ignore[arg-type]
    return str(info.value)


# --- sources and precedence ------------------------------------------------------------


def test_defaults_need_no_file(tmp_path: Path) -> None:
    cfg = load()
    assert cfg.data_dir == tmp_path / "xdg" / "ironbark"
    assert cfg.bus.url == "memory://"
    assert cfg.bus.namespace == "ironbark"
    assert cfg.bus.rpc_timeout == 10.0
    assert (cfg.api.host, cfg.api.port, cfg.api.workers, cfg.api.threads) == (
        "127.0.0.1", 8774, 1, 16)
    assert cfg.identity.admin_password is None and cfg.identity.admin_user == "admin"
    assert cfg.identity.token_ttl == 3600.0 and cfg.identity.region == "RegionOne"
    assert cfg.group.name == "default"
    assert cfg.group.scheduler_policy == "spread"
    assert (cfg.group.cpu_allocation_ratio, cfg.group.ram_allocation_ratio,
            cfg.group.disk_allocation_ratio) == (16.0, 1.5, 1.0)
    assert cfg.host.name == os.uname().nodename
    assert cfg.host.hypervisor == "simulated"
    assert cfg.image_store.port == 9292 and cfg.image_store.token is None
    assert cfg.logging.level == "INFO" and cfg.logging.json_lines is False
    assert not cfg.data_dir.exists()  # loading writes nothing


def test_default_data_dir_without_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_DATA_HOME")
    assert load().data_dir == tmp_path / "home" / ".local" / "share" / "ironbark"


def test_file_values(tmp_path: Path) -> None:
    path = _write(tmp_path / "ironbark.toml", f"""
data_dir = "{tmp_path / 'data'}"

[bus]
url = "amqp://guest:guest@rabbit:5672//"
namespace = "prod"

[api]
port = 8000

[identity]
admin_user = "root"
region = "East"

[cloud]
task_deadlines = {{ spawning = 30.0 }}

[group]
name = "rack1"
scheduler_policy = "pack"
cpu_allocation_ratio = 8.0

[group.host_overrides.hv12]
ram_allocation_ratio = 1.0

[host]
name = "hv12"
reserved_memory_mb = 1024

[logging]
level = "DEBUG"
json = true
""")
    cfg = load(path)
    assert cfg.data_dir == tmp_path / "data"
    assert cfg.bus.url == "amqp://guest:guest@rabbit:5672//"
    assert cfg.bus.namespace == "prod"
    assert cfg.api.port == 8000
    assert (cfg.identity.admin_user, cfg.identity.region) == ("root", "East")
    assert cfg.task_deadline("spawning", 600.0) == 30.0
    assert cfg.task_deadline("pausing", 60.0) == 60.0
    assert cfg.group.name == "rack1"
    assert cfg.group.scheduler_policy == "pack"
    assert cfg.group.cpu_allocation_ratio == 8.0
    assert cfg.group.ram_allocation_ratio == 1.5  # untouched options keep their default
    assert cfg.group.host_overrides["hv12"].ram_allocation_ratio == 1.0
    assert cfg.group.host_overrides["hv12"].cpu_allocation_ratio is None
    assert cfg.host.name == "hv12" and cfg.host.reserved_memory_mb == 1024
    assert cfg.logging.level == "DEBUG" and cfg.logging.json_lines is True
    assert load(str(path)) == cfg


def test_the_file_can_be_named_by_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = _write(tmp_path / "c.toml", "[group]\nname = \"rack9\"\n")
    monkeypatch.setenv("IRONBARK_CONFIG", str(path))
    assert load().group.name == "rack9"
    other = _write(tmp_path / "d.toml", "[group]\nname = \"rack7\"\n")
    assert load(other).group.name == "rack7"  # an explicit path wins


def test_environment_sets_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "IRONBARK_DATA_DIR": str(tmp_path / "d"),
        "IRONBARK_BUS_URL": "amqp://rabbit//",
        "IRONBARK_BUS_RPC_TIMEOUT": "2.5",
        "IRONBARK_DATABASE_URL": "postgresql+psycopg://db/cloud",
        "IRONBARK_API_PORT": "8080",
        "IRONBARK_IDENTITY_TOKEN_TTL": "600",
        "IRONBARK_CLOUD_TASK_DEADLINES": '{"powering-off": 5}',
        "IRONBARK_GROUP_NAME": "rack2",
        "IRONBARK_GROUP_DATABASE_URL": "postgresql+psycopg://db/rack2",
        "IRONBARK_GROUP_CPU_ALLOCATION_RATIO": "4",
        "IRONBARK_GROUP_HOST_OVERRIDES": '{"hv1": {"disk_allocation_ratio": 2.0}}',
        "IRONBARK_GROUP_HOST_DOWN_AFTER": "7",
        "IRONBARK_HOST_NAME": "hv1",
        "IRONBARK_HOST_STATE_DIR": str(tmp_path / "state"),
        "IRONBARK_HOST_SIMULATED_VCPUS": "64",
        "IRONBARK_IMAGE_STORE_PORT": "9999",
        "IRONBARK_IMAGE_STORE_DATA_DIR": str(tmp_path / "images"),
        "IRONBARK_IMAGE_STORE_TOKEN": "image-store-token-0123",
        "IRONBARK_LOGGING_JSON": "true",
        "IRONBARK_LOGGING_LEVEL": "WARNING",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cfg = load()
    assert cfg.data_dir == tmp_path / "d"
    assert cfg.bus.url == "amqp://rabbit//" and cfg.bus.rpc_timeout == 2.5
    assert cfg.database.url == "postgresql+psycopg://db/cloud"
    assert cfg.api.port == 8080
    assert cfg.identity.token_ttl == 600.0
    assert cfg.cloud.task_deadlines == {"powering-off": 5.0}
    assert cfg.group.name == "rack2"
    assert cfg.group.database_url == "postgresql+psycopg://db/rack2"
    assert cfg.group.cpu_allocation_ratio == 4.0
    assert cfg.group.host_overrides["hv1"].disk_allocation_ratio == 2.0
    assert cfg.group.host_down_after == 7.0
    assert cfg.host.name == "hv1" and cfg.host.simulated_vcpus == 64
    assert cfg.host.state_dir == tmp_path / "state"
    assert cfg.image_store.port == 9999
    assert cfg.image_store.data_dir == tmp_path / "images"
    assert cfg.image_store.token == "image-store-token-0123"
    assert cfg.logging.json_lines is True and cfg.logging.level == "WARNING"


def test_environment_beats_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = _write(tmp_path / "c.toml", f"""
data_dir = "{tmp_path / 'from-file'}"
[api]
port = 1111
host = "0.0.0.0"
[group]
name = "filegroup"
""")
    monkeypatch.setenv("IRONBARK_API_PORT", "2222")
    monkeypatch.setenv("IRONBARK_DATA_DIR", str(tmp_path / "from-env"))
    cfg = load(path)
    assert cfg.api.port == 2222
    assert cfg.api.host == "0.0.0.0"  # the rest of the section still comes from the file
    assert cfg.data_dir == tmp_path / "from-env"
    assert cfg.group.name == "filegroup"


def test_explicit_overrides_beat_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = _write(tmp_path / "c.toml", "[api]\nport = 1111\nthreads = 4\n")
    monkeypatch.setenv("IRONBARK_API_PORT", "2222")
    monkeypatch.setenv("IRONBARK_API_HOST", "10.0.0.1")
    cfg = load(path, api={"port": 3333}, data_dir=tmp_path / "explicit")
    assert cfg.api.port == 3333
    assert cfg.api.host == "10.0.0.1"  # other options of the section keep their source
    assert cfg.api.threads == 4
    assert cfg.data_dir == tmp_path / "explicit"


def test_explicit_overrides_are_validated_too() -> None:
    message = _error(api={"port": 70000})
    assert "api.port" in message and "IRONBARK_API_PORT" in message


# --- derived paths ---------------------------------------------------------------------


def test_paths_derive_from_data_dir(tmp_path: Path) -> None:
    d = tmp_path / "data"
    cfg = load(data_dir=d, group={"name": "rack1"}, host={"name": "hv3"})
    assert cfg.database.url == f"sqlite:///{d}/cloud.db"
    assert cfg.group.database_url == f"sqlite:///{d}/group-rack1.db"
    assert cfg.host.state_dir == d / "hosts" / "hv3"
    assert cfg.host.hypervisor_uri == f"test://{d}/hosts/hv3/host.xml"
    assert cfg.image_store.data_dir == d / "images"
    assert cfg.image_store.url == "http://127.0.0.1:9292"


def test_derived_values_follow_what_they_derive_from(tmp_path: Path) -> None:
    cfg = load(data_dir=tmp_path, host={"state_dir": tmp_path / "elsewhere"},
               image_store={"host": "10.1.1.1", "port": 8080})
    assert cfg.host.hypervisor_uri == f"test://{tmp_path}/elsewhere/host.xml"
    assert cfg.image_store.url == "http://10.1.1.1:8080"


def test_explicit_paths_are_not_replaced(tmp_path: Path) -> None:
    cfg = load(
        data_dir=tmp_path,
        database={"url": "postgresql+psycopg://db/cloud"},
        group={"database_url": "postgresql+psycopg://db/g"},
        host={"hypervisor_uri": "test:///custom.xml", "state_dir": tmp_path / "s"},
        image_store={"url": "http://images:9292", "data_dir": tmp_path / "i"},
    )
    assert cfg.database.url == "postgresql+psycopg://db/cloud"
    assert cfg.group.database_url == "postgresql+psycopg://db/g"
    assert cfg.host.hypervisor_uri == "test:///custom.xml"
    assert cfg.host.state_dir == tmp_path / "s"
    assert cfg.image_store.url == "http://images:9292"
    assert cfg.image_store.data_dir == tmp_path / "i"


def test_two_loads_do_not_share_state(tmp_path: Path) -> None:
    first = load(data_dir=tmp_path / "a")
    second = load(data_dir=tmp_path / "b")
    assert first.database.url != second.database.url
    assert first.database is not second.database


# --- bad values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "value", "option"),
    [
        ("IRONBARK_GROUP_CPU_ALLOCATION_RATIO", "-1", "group.cpu_allocation_ratio"),
        ("IRONBARK_GROUP_RAM_ALLOCATION_RATIO", "0", "group.ram_allocation_ratio"),
        ("IRONBARK_GROUP_DISK_ALLOCATION_RATIO", "lots", "group.disk_allocation_ratio"),
        ("IRONBARK_GROUP_SCHEDULER_POLICY", "random", "group.scheduler_policy"),
        ("IRONBARK_GROUP_NAME", "rack 1", "group.name"),
        ("IRONBARK_API_PORT", "notaport", "api.port"),
        ("IRONBARK_API_PORT", "65536", "api.port"),
        ("IRONBARK_API_PORT", "-1", "api.port"),
        ("IRONBARK_API_WORKERS", "0", "api.workers"),
        ("IRONBARK_IDENTITY_ADMIN_PASSWORD", "short", "identity.admin_password"),
        ("IRONBARK_IDENTITY_TOKEN_TTL", "1", "identity.token_ttl"),
        ("IRONBARK_IMAGE_STORE_PORT", "99999", "image_store.port"),
        ("IRONBARK_BUS_RPC_TIMEOUT", "0", "bus.rpc_timeout"),
        ("IRONBARK_BUS_NAMESPACE", "has space", "bus.namespace"),
        ("IRONBARK_HOST_REPORT_INTERVAL", "soon", "host.report_interval"),
        ("IRONBARK_HOST_HYPERVISOR", "kvm", "host.hypervisor"),
        ("IRONBARK_HOST_RESERVED_VCPUS", "-2", "host.reserved_vcpus"),
        ("IRONBARK_CLOUD_RECONCILE_INTERVAL", "-5", "cloud.reconcile_interval"),
        ("IRONBARK_LOGGING_LEVEL", "LOUD", "logging.level"),
        ("IRONBARK_LOGGING_JSON", "maybe", "logging.json"),
    ],
)
def test_bad_environment_value_names_the_option_and_its_variable(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, option: str
) -> None:
    monkeypatch.setenv(env, value)
    message = _error()
    assert option in message
    assert env in message
    assert repr(value) in message  # and shows what it got


@pytest.mark.parametrize(
    ("env", "option"),
    [
        ("IRONBARK_GROUP_HOST_OVERRIDES", "group.host_overrides"),
        ("IRONBARK_CLOUD_TASK_DEADLINES", "cloud.task_deadlines"),
    ],
)
def test_environment_value_that_is_not_json_names_the_option(
    monkeypatch: pytest.MonkeyPatch, env: str, option: str
) -> None:
    """A dict option set from the environment must hold JSON; anything else must be a
    ConfigError naming it (so the tiers exit with status 2), not a crash."""
    monkeypatch.setenv(env, "hv1")
    message = _error()
    assert option in message
    assert env in message


def test_environment_value_of_the_wrong_json_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRONBARK_CLOUD_TASK_DEADLINES", '["alpha"]')
    message = _error()
    assert "cloud.task_deadlines" in message and "IRONBARK_CLOUD_TASK_DEADLINES" in message
    monkeypatch.setenv("IRONBARK_CLOUD_TASK_DEADLINES", "{}")
    monkeypatch.setenv("IRONBARK_GROUP_HOST_OVERRIDES", '{"hv1": {"cpu_allocation_ratio": 0}}')
    message = _error()
    assert "group.host_overrides.hv1.cpu_allocation_ratio" in message
    assert "IRONBARK_GROUP_HOST_OVERRIDES" in message


def test_bad_file_value_names_the_option_its_variable_and_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.toml", "[group]\ncpu_allocation_ratio = -1.0\n")
    message = _error(path)
    assert "group.cpu_allocation_ratio" in message
    assert "IRONBARK_GROUP_CPU_ALLOCATION_RATIO" in message
    assert str(path) in message
    assert "-1.0" in message


def test_bad_host_override_in_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.toml", "[group.host_overrides.hv12]\nram_allocation_ratio = 0\n")
    message = _error(path)
    assert "group.host_overrides.hv12.ram_allocation_ratio" in message
    assert str(path) in message


def test_every_bad_option_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = _write(tmp_path / "c.toml", "[host]\nworkers = 0\n")
    monkeypatch.setenv("IRONBARK_API_PORT", "notaport")
    monkeypatch.setenv("IRONBARK_GROUP_SCHEDULER_POLICY", "random")
    message = _error(path)
    for option in ("api.port", "group.scheduler_policy", "host.workers"):
        assert option in message, message


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[group]\nbogus = 1\n", "group.bogus"),
        ("bogus = 1\n", "bogus"),
        ("[nosuch]\na = 1\n", "nosuch"),
        ("[group.host_overrides.hv1]\ncpu_ratio = 2.0\n", "group.host_overrides.hv1.cpu_ratio"),
        ("[logging]\njsonlines = true\n", "logging.jsonlines"),
    ],
)
def test_unknown_key_in_the_file_is_an_error_naming_it(
    tmp_path: Path, text: str, named: str
) -> None:
    path = _write(tmp_path / "c.toml", text)
    message = _error(path)
    assert named in message
    assert str(path) in message


@pytest.mark.parametrize("name", ["IRONBARK_BOGUS", "IRONBARK_GROUP_CPU_RATIO",
                                  "IRONBARK_API_PORTS", "IRONBARK_DATADIR"])
def test_unknown_environment_variable_is_an_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "1")
    message = _error()
    assert name in message
    assert "unknown" in message


def test_client_variables_are_not_options(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IRONBARK_URL", "IRONBARK_TOKEN"):
        monkeypatch.setenv(name, "x")
    assert load().api.port == 8774


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "broken.toml", "[group\nname = 'x'\n")
    message = _error(path)
    assert str(path) in message
    assert "TOML" in message


def test_missing_file_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.toml"
    message = _error(missing)
    assert str(missing) in message and "does not exist" in message
    monkeypatch.setenv("IRONBARK_CONFIG", str(missing))
    assert str(missing) in _error()
    assert str(tmp_path) in _error(tmp_path)  # a directory is no file either


# --- secrets ---------------------------------------------------------------------------


def test_ensure_secrets_generates_tokens_once(tmp_path: Path) -> None:
    cfg = ensure_secrets(load(data_dir=tmp_path / "data"))
    admin, image = cfg.identity.admin_password, cfg.image_store.token
    assert admin is not None and len(admin) >= 16
    assert image is not None and len(image) >= 16
    assert admin != image
    path = tmp_path / "data" / "secrets.toml"
    assert tomllib.loads(path.read_text()) == {"admin_password": admin, "image_store_token": image}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    again = ensure_secrets(load(data_dir=tmp_path / "data"))
    assert (again.identity.admin_password, again.image_store.token) == (admin, image)
    assert ensure_secrets(again) is again

    # the tokens it generates validate as configured tokens would
    Config.model_validate(again.model_dump())

    other = ensure_secrets(load(data_dir=tmp_path / "other"))
    assert other.identity.admin_password != admin


def test_ensure_secrets_keeps_the_file_private(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        ensure_secrets(load(data_dir=tmp_path))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "secrets.toml").stat().st_mode) == 0o600


def test_configured_tokens_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generated = ensure_secrets(load(data_dir=tmp_path))
    monkeypatch.setenv("IRONBARK_IDENTITY_ADMIN_PASSWORD", "configured-admin-token")
    cfg = ensure_secrets(load(data_dir=tmp_path, image_store={"token": "configured-image-tok"}))
    assert cfg.identity.admin_password == "configured-admin-token"
    assert cfg.image_store.token == "configured-image-tok"
    stored = tomllib.loads((tmp_path / "secrets.toml").read_text())
    assert stored == {"admin_password": generated.identity.admin_password,
                      "image_store_token": generated.image_store.token}


def test_ensure_secrets_completes_a_partial_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "secrets.toml", 'admin_password = "kept-admin-token-0123"\n')
    cfg = ensure_secrets(load(data_dir=tmp_path))
    assert cfg.identity.admin_password == "kept-admin-token-0123"
    assert cfg.image_store.token
    stored = tomllib.loads(path.read_text())
    assert stored == {"admin_password": "kept-admin-token-0123",
                      "image_store_token": cfg.image_store.token}


def _first_start_together(data_dir: Path, tiers: int) -> list[Config]:
    """``tiers`` processes' worth of ensure_secrets on one fresh data_dir, all at once."""
    configs = [load(data_dir=data_dir) for _ in range(tiers)]
    barrier = threading.Barrier(tiers, timeout=10)
    errors: list[BaseException] = []

    def start(cfg: Config) -> None:
        try:
            barrier.wait()
            ensure_secrets(cfg)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(cfg,)) for cfg in configs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return configs


def test_ensure_secrets_agrees_across_concurrent_first_starts(tmp_path: Path) -> None:
    """The tiers of a fresh single-machine cloud start together and each calls
    ensure_secrets; they must all end up with the same tokens (or the Instance Manager's
    image-store token is not the one the image store checks)."""
    for trial in range(10):
        data_dir = tmp_path / f"trial{trial}"
        configs = _first_start_together(data_dir, tiers=8)
        final = ensure_secrets(load(data_dir=data_dir))
        seen = {(c.identity.admin_password, c.image_store.token) for c in configs}
        assert seen == {(final.identity.admin_password, final.image_store.token)}, (
            f"trial {trial}: {len(seen)} different token pairs from one data_dir")
