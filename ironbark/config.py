"""Configuration: one TOML file plus ``IRONBARK_<SECTION>_<OPTION>`` environment overrides.

Every option has a default, so the all-in-one cloud runs with no file at all. Values
are validated at start-up; a bad one stops the process with an error naming the
option and the environment variable that sets it. Precedence, highest first:
explicit overrides (command-line flags), environment, file, defaults.

    [bus]
    url = "amqp://guest:guest@rabbit:5672//"

    [group]
    name = "rack1"
    cpu_allocation_ratio = 8.0
    [group.host_overrides.hv12]
    ram_allocation_ratio = 1.0

is the same as ``IRONBARK_BUS_URL=...`` and ``IRONBARK_GROUP_NAME=rack1``.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "IRONBARK_"
# Environment variables of the command-line client and of the loader itself.
_NOT_OPTIONS = {"IRONBARK_CONFIG", "IRONBARK_URL", "IRONBARK_TOKEN"}


class ConfigError(Exception):
    """The configuration is invalid; the message names every bad option."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BusOptions(_Section):
    url: str = Field("memory://", description="kombu URL: memory:// (one process) or amqp://")
    namespace: str = Field("ironbark", pattern=r"^[A-Za-z0-9_.-]+$",
                           description="prefix of every exchange and queue name")
    polling_interval: float = Field(0.002, gt=0, le=1.0,
                                    description="unused: memory:// no longer polls; still accepted")
    rpc_timeout: float = Field(10.0, gt=0, le=600, description="default timeout of a call")


class DatabaseOptions(_Section):
    url: str | None = Field(None, description="Cloud Manager database; default SQLite in data_dir")


class ApiOptions(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8774, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64, description="gunicorn worker processes")
    threads: int = Field(16, ge=1, le=256, description="threads per worker")


class IdentityOptions(_Section):
    """The Keystone-compatible identity service: the first admin, tokens, the catalog."""

    admin_user: str = Field("admin", min_length=1, max_length=255,
                            description="the first admin's user name (made at start)")
    admin_password: str | None = Field(None, min_length=8, description="the first admin's "
                                       "password; generated into secrets.toml if unset")
    admin_project: str = Field("admin", min_length=1, max_length=255,
                               description="the project the first admin has the admin role on")
    token_ttl: float = Field(3600.0, ge=10, le=7 * 86400,
                             description="seconds a token is valid for")
    region: str = Field("RegionOne", min_length=1, max_length=255,
                        description="region of every endpoint in the service catalog")
    public_url: str | None = Field(None, description="base URL of the API in the catalog "
                                   "(default: the URL the client reached it by)")


class CloudOptions(_Section):
    reconcile_interval: float = Field(5.0, gt=0, le=3600,
                                      description="seconds between deadline sweeps")
    task_deadlines: dict[str, float] = Field(
        default_factory=dict,
        description="task_state -> seconds, overriding the lifecycle table's defaults",
    )
    group_stale_after: float = Field(60.0, gt=0, description="seconds without a group summary "
                                     "after which the group is not chosen for new builds")
    quota_defaults: dict[str, int] = Field(
        default_factory=dict,
        description="resource -> default limit of every project (-1: unlimited), over "
                    "Nova's defaults (instances 10, cores 20, ram 51200...)",
    )


class HostOverride(_Section):
    cpu_allocation_ratio: float | None = Field(None, gt=0, le=1000)
    ram_allocation_ratio: float | None = Field(None, gt=0, le=1000)
    disk_allocation_ratio: float | None = Field(None, gt=0, le=1000)


class GroupOptions(_Section):
    name: str = Field("default", pattern=r"^[A-Za-z0-9_-]+$")
    database_url: str | None = Field(None, description="Group Manager database; default SQLite")
    scheduler_policy: Literal["spread", "pack", "round-robin", "power-save"] = Field(
        "spread", description="spread (least loaded), pack (most loaded that fits), "
        "round-robin (rotating start), power-save (busy hosts before empty ones)")
    scheduler_refresh_interval: float = Field(
        5.0, gt=0, le=3600, description="seconds the scheduler trusts its in-memory view of "
        "the hosts before re-reading them all (claims are always checked in the database)")
    cpu_allocation_ratio: float = Field(16.0, gt=0, le=1000)
    ram_allocation_ratio: float = Field(1.5, gt=0, le=1000)
    disk_allocation_ratio: float = Field(1.0, gt=0, le=1000)
    host_overrides: dict[str, HostOverride] = Field(default_factory=dict)
    host_down_after: float = Field(30.0, gt=0, description="seconds without a report -> down")
    summary_interval: float = Field(10.0, gt=0, description="seconds between group summaries")
    workers: int = Field(16, ge=1, le=256)


class HostOptions(_Section):
    name: str = Field(default_factory=lambda: os.uname().nodename, pattern=r"^[A-Za-z0-9_.-]+$")
    group: str = Field("default", pattern=r"^[A-Za-z0-9_-]+$")
    hypervisor: Literal["simulated", "qemu"] = Field(
        "simulated", description="simulated: libvirt's test driver, one XML file per host; "
        "qemu: real guests through libvirtd (qemu:///system)"
    )
    hypervisor_uri: str | None = Field(None, description="libvirt URI; derived when unset")
    virt_type: Literal["auto", "kvm", "qemu"] = Field(
        "auto", description="qemu hosts: kvm (hardware), qemu (TCG emulation), or auto: "
        "kvm when a probe boots a guest under it, else qemu"
    )
    state_dir: Path | None = Field(None, description="instances, image cache, host XML")
    report_interval: float = Field(10.0, gt=0, le=3600)
    reserved_vcpus: int = Field(0, ge=0)
    reserved_memory_mb: int = Field(512, ge=0)
    reserved_disk_gb: int = Field(0, ge=0)
    simulated_vcpus: int = Field(16, ge=1, le=4096)
    simulated_memory_mb: int = Field(65536, ge=128, le=64 * 1024 * 1024)
    simulated_disk_gb: int = Field(1000, ge=1, le=1024 * 1024)
    workers: int = Field(4, ge=1, le=64)
    image_cache_gb: float = Field(
        50.0, gt=0, description="size limit of the host's chunk and base-image cache")
    image_fetch_workers: int = Field(
        4, ge=1, le=64, description="chunks fetched in parallel when an image is missing")


class ImageStoreOptions(_Section):
    url: str | None = Field(None, description="where the tiers reach the image store")
    host: str = "127.0.0.1"
    port: int = Field(9292, ge=0, le=65535)
    data_dir: Path | None = None
    token: str | None = Field(None, min_length=16, description="service token; generated")
    database_url: str | None = Field(
        None, description="image catalog (records, manifests, chunk index); default SQLite")
    backend: Literal["local", "s3"] = Field(
        "local", description="where chunk bytes live: local (data_dir/chunks) or s3")
    s3_endpoint: str | None = Field(None, description="S3 API endpoint URL; None = AWS")
    s3_bucket: str = Field("ironbark-images", min_length=3, max_length=63)
    s3_prefix: str = Field("chunks/", description="key prefix of chunk objects")
    s3_region: str = "us-east-1"
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    chunking: Literal["cdc", "fixed"] = Field(
        "cdc", description="content-defined (FastCDC) or fixed-size chunks")
    chunk_avg_kib: int = Field(
        64, ge=4, le=4096, description="average (cdc) or exact (fixed) chunk size in KiB")
    compression_level: int = Field(1, ge=0, le=22, description="zstd level; 0 = store raw")


class LoggingOptions(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_lines: bool = Field(False, alias="json", description="one JSON object per line")
    file: Path | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ScaleOptions(_Section):
    """How many simulated hosts the all-in-one (``ironbark up``) and the multi-process
    lab run, in how many groups, and of which sizes (see ironbark/simulation.py)."""

    hosts: int = Field(2, ge=1, le=10000, description="simulated hosts in the whole cloud")
    groups: int = Field(1, ge=1, le=64, description="groups (availability zones) the hosts "
                        "are spread over: 1 is the [group] name, more are az1..azN")
    group_names: list[str] = Field(default_factory=list,
                                   description="names of the groups instead of az1..azN")
    host_mix: str = Field("", description="host sizes as VCPUSxGIB[:WEIGHT], comma-separated "
                          "(e.g. 32x128:1,64x256:1); empty: every host has the [host] "
                          "simulated_* sizes")
    seed: int = Field(1, description="which host gets which size of the mix (reproducible)")
    max_reports_per_second: float = Field(
        20.0, gt=0, le=100000, description="heartbeats the whole cloud may send per second: "
        "with many hosts the report interval (and host_down_after) grow to stay within it")
    group_database_url: str | None = Field(
        None, description="with several groups, each group's database with {group} in place "
        "of its name; default SQLite group-<name>.db in data_dir")

    @field_validator("host_mix")
    @classmethod
    def _check_mix(cls, value: str) -> str:
        from ironbark.host_mix import parse_host_mix

        parse_host_mix(value)  # raises HostMixError (a ValueError) naming the entry
        return value

    @field_validator("group_names")
    @classmethod
    def _check_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not (name.isascii() and name.replace("-", "").replace("_", "").isalnum()):
                raise ValueError(f"group name {name!r} may hold only letters, digits, _ and -")
        if len(set(value)) != len(value):
            raise ValueError(f"a group is named twice: {value}")
        return value

    @field_validator("group_database_url")
    @classmethod
    def _check_db_template(cls, value: str | None) -> str | None:
        if value is not None and "{group}" not in value:
            raise ValueError("must contain {group} (each group needs its own database)")
        return value

    @model_validator(mode="after")
    def _check_counts(self) -> ScaleOptions:
        if self.group_names and self.groups not in (1, len(self.group_names)):
            raise ValueError(f"scale.groups is {self.groups} but scale.group_names lists "
                             f"{len(self.group_names)} groups")
        return self


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ironbark"


_config_file: ContextVar[Path | None] = ContextVar("config_file", default=None)


class Config(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="_", env_nested_max_split=1,
        extra="forbid", validate_default=True,
    )

    data_dir: Path = Field(default_factory=_default_data_dir)
    bus: BusOptions = BusOptions()
    database: DatabaseOptions = DatabaseOptions()
    api: ApiOptions = ApiOptions()
    identity: IdentityOptions = IdentityOptions()
    cloud: CloudOptions = CloudOptions()
    group: GroupOptions = GroupOptions()
    host: HostOptions = HostOptions()
    image_store: ImageStoreOptions = ImageStoreOptions()
    logging: LoggingOptions = LoggingOptions()
    scale: ScaleOptions = ScaleOptions()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _config_file.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @model_validator(mode="after")
    def _derive_paths(self) -> Config:
        """Fill the defaults that live under data_dir."""
        d = self.data_dir
        if self.database.url is None:
            self.database.url = f"sqlite:///{d / 'cloud.db'}"
        if self.group.database_url is None:
            self.group.database_url = f"sqlite:///{d / f'group-{self.group.name}.db'}"
        if self.host.state_dir is None:
            self.host.state_dir = d / "hosts" / self.host.name
        if self.image_store.data_dir is None:
            self.image_store.data_dir = d / "images"
        if self.image_store.database_url is None:
            self.image_store.database_url = f"sqlite:///{self.image_store.data_dir / 'catalog.db'}"
        if self.image_store.url is None:
            self.image_store.url = f"http://{self.image_store.host}:{self.image_store.port}"
        if self.host.hypervisor_uri is None:
            self.host.hypervisor_uri = (
                "qemu:///system" if self.host.hypervisor == "qemu"
                else f"test://{self.host.state_dir / 'host.xml'}")
        return self

    def task_deadline(self, task_state: str, default: float) -> float:
        return self.cloud.task_deadlines.get(task_state, default)


def load(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Config:
    """Load and validate the configuration, or raise ConfigError naming what is wrong."""
    path = path or os.environ.get("IRONBARK_CONFIG")
    file_path = Path(path) if path else None
    if file_path is not None:
        if not file_path.is_file():
            raise ConfigError(f"configuration file {file_path} does not exist")
        try:
            tomllib.loads(file_path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {file_path} is not valid TOML: {exc}") from None
    _check_env_names()
    _check_env_json()
    token = _config_file.set(file_path)
    try:
        return Config(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, file_path)) from None
    finally:
        _config_file.reset(token)


def _check_env_names() -> None:
    """An IRONBARK_ variable that sets no option is a typo; say so instead of ignoring it."""
    known = {f"{ENV_PREFIX}DATA_DIR"}
    for section, field in Config.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for option, opt_field in annotation.model_fields.items():
                known.add(f"{ENV_PREFIX}{section}_{opt_field.alias or option}".upper())
                known.add(f"{ENV_PREFIX}{section}_{option}".upper())
    unknown = sorted(
        name for name in os.environ
        if name.startswith(ENV_PREFIX) and name not in known and name not in _NOT_OPTIONS
    )
    if unknown:
        raise ConfigError(f"unknown option in the environment: {', '.join(unknown)}")


def _check_env_json() -> None:
    """Options that take a table (project_tokens, host_overrides...) take JSON in the
    environment; say which one is not JSON rather than fail deep in the loader."""
    for section, field in Config.model_fields.items():
        annotation = field.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            continue
        for option, opt_field in annotation.model_fields.items():
            if getattr(opt_field.annotation, "__origin__", None) not in (dict, list):
                continue
            name = f"{ENV_PREFIX}{section}_{option}".upper()
            if name in os.environ:
                try:
                    json.loads(os.environ[name])
                except ValueError as exc:
                    raise ConfigError(f"invalid configuration:\n  option {section}.{option} "
                                      f"(env {name}): not valid JSON ({exc})") from None


def _describe(exc: ValidationError, file_path: Path | None) -> str:
    lines = ["invalid configuration:"]
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        option = ".".join(loc)
        env = f"{ENV_PREFIX}{'_'.join(loc[:2])}".upper()
        where = f"option {option} (env {env}" + (f", file {file_path}" if file_path else "") + ")"
        shown = err.get("input")
        got = "" if isinstance(shown, dict) or err["type"] == "missing" else f", got {shown!r}"
        lines.append(f"  {where}: {err['msg']}{got}")
    return "\n".join(lines)


def ensure_secrets(config: Config) -> Config:
    """Generate the first admin's password and the service token the first time, and keep
    them in data_dir.

    Values given in the configuration win; generated ones are stored (mode 0600) so
    that a restarted cloud, and the command-line client, keep working.
    """
    config.data_dir.mkdir(parents=True, exist_ok=True)
    path = config.data_dir / "secrets.toml"
    # Tiers starting at once on a fresh data directory must agree on the tokens:
    # read-or-generate under a lock, and replace the file atomically.
    with open(config.data_dir / ".secrets.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stored: dict[str, str] = {}
        if path.exists():
            stored = {k: str(v) for k, v in tomllib.loads(path.read_text()).items()}
        missing = [k for k in ("admin_password", "image_store_token") if k not in stored]
        if missing:
            stored.update({k: secrets.token_urlsafe(24) for k in missing})
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.writelines(f'{k} = "{v}"\n' for k, v in sorted(stored.items()))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
    if config.identity.admin_password is None:
        config.identity.admin_password = stored["admin_password"]
    if config.image_store.token is None:
        config.image_store.token = stored["image_store_token"]
    return config
