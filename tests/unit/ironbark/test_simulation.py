"""Scale mode's plan: host mixes, the size draw, groups, heartbeats, and bad input."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from instance_manager import main as instance_manager_main
from ironbark import config, lab, simulation
from ironbark.cli.main import main as cli_main
from ironbark.host_mix import (
    HostMixError,
    HostSize,
    draw,
    format_host_mix,
    parse_host_mix,
    shares,
)


def _config(tmp_path: Path, **scale: Any) -> config.Config:
    return config.load(data_dir=tmp_path, scale=scale)


# --- the mix --------------------------------------------------------------------------------


def test_a_mix_parses_sizes_and_weights() -> None:
    assert parse_host_mix("32x128:1, 64x256:3,8x32") == (
        HostSize(32, 128, 1.0), HostSize(64, 256, 3.0), HostSize(8, 32, 1.0))
    assert parse_host_mix("16x64:0.5")[0].weight == 0.5
    assert parse_host_mix("") == ()
    assert HostSize(64, 256).memory_mb == 262144


def test_a_mix_reads_back_what_it_formats() -> None:
    mix = parse_host_mix("32x128:1,64x256:2.5")
    assert parse_host_mix(format_host_mix(mix)) == mix


@pytest.mark.parametrize(("text", "says"), [
    ("32x", "entry '32x' is not VCPUSxGIB[:WEIGHT]"),
    ("32x128:1,,64x256", "entry '' is not"),
    ("32*128", "entry '32*128' is not"),
    ("32x128:-1", "entry '32x128:-1' is not"),
    ("32x128:0", "the weight must be above 0"),
    ("0x128", "vCPUs must be 1 to 4096, got 0"),
    ("5000x128", "vCPUs must be 1 to 4096, got 5000"),
    ("32x0", "memory must be 1 to 65536 GiB, got 0"),
    ("32x128,32x128:2", "size 32x128 is listed twice"),
])
def test_a_bad_mix_says_which_entry_and_why(text: str, says: str) -> None:
    with pytest.raises(HostMixError) as caught:
        parse_host_mix(text)
    assert says in str(caught.value)


def test_shares_are_exact_and_sum_to_the_count() -> None:
    mix = parse_host_mix("32x128:1,64x256:1")
    assert shares(mix, 1000) == [500, 500]
    assert shares(mix, 41) == [21, 20]  # the tie goes to the earlier size
    assert shares(parse_host_mix("1x1:1,2x2:1,3x3:1"), 40) == [14, 13, 13]
    assert shares(parse_host_mix("1x1:3,2x2:1"), 10) == [8, 2]  # 7.5 / 2.5: larger first
    with pytest.raises(HostMixError, match="no sizes"):
        shares((), 3)


def test_the_draw_is_reproducible_and_depends_on_the_seed() -> None:
    mix = parse_host_mix("32x128:1,64x256:1")
    first = draw(mix, 100, seed=7)
    assert first == draw(mix, 100, seed=7)
    assert first != draw(mix, 100, seed=8)
    assert Counter(s.label for s in first) == {"32x128": 50, "64x256": 50}


# --- the plan -------------------------------------------------------------------------------


def test_the_default_plan_is_todays_cloud(tmp_path: Path) -> None:
    cfg = config.load(data_dir=tmp_path)
    layout = simulation.plan(cfg)
    assert layout.groups == ("default",)
    assert [(h.name, h.group, h.vcpus, h.memory_mb) for h in layout.hosts] == [
        ("host1", "default", 16, 65536), ("host2", "default", 16, 65536)]
    assert (layout.report_interval, layout.host_down_after) == (10.0, 30.0)
    assert simulation.group_database_url(cfg, layout, "default") == cfg.group.database_url


def test_hosts_fill_groups_in_blocks_with_sizes_from_the_mix(tmp_path: Path) -> None:
    cfg = _config(tmp_path, hosts=40, groups=3, host_mix="32x128:1,64x256:1", seed=3)
    layout = simulation.plan(cfg)
    assert layout.groups == ("az1", "az2", "az3")
    assert layout.counts() == {"az1": 14, "az2": 13, "az3": 13}
    assert [h.name for h in layout.in_group("az2")] == [f"host{i}" for i in range(15, 28)]
    assert Counter((h.vcpus, h.memory_mb) for h in layout.hosts) == {
        (32, 131072): 20, (64, 262144): 20}
    assert layout == simulation.plan(cfg)  # every process computes the same plan
    other = simulation.plan(_config(tmp_path, hosts=40, groups=3,
                                    host_mix="32x128:1,64x256:1", seed=4))
    assert [h.vcpus for h in other.hosts] != [h.vcpus for h in layout.hosts]
    assert "40 simulated hosts in 3 group(s) (az1: 14, az2: 13, az3: 13)" in layout.describe()


def test_named_groups_and_their_databases(tmp_path: Path) -> None:
    cfg = _config(tmp_path, hosts=4, group_names=["east", "west"])
    layout = simulation.plan(cfg)
    assert layout.groups == ("east", "west")
    assert simulation.group_database_url(cfg, layout, "west") == \
        f"sqlite:///{tmp_path / 'group-west.db'}"
    options = simulation.group_options(cfg, layout, "east")
    assert (options.name, options.database_url) == (
        "east", f"sqlite:///{tmp_path / 'group-east.db'}")
    with pytest.raises(simulation.ScaleError, match="group 'north' is not in the plan"):
        simulation.group_options(cfg, layout, "north")
    templated = _config(tmp_path, hosts=4, groups=2,
                        group_database_url="postgresql://db/ironbark_{group}")
    assert simulation.group_database_url(templated, simulation.plan(templated), "az2") == \
        "postgresql://db/ironbark_az2"


def test_several_groups_cannot_share_one_group_database(tmp_path: Path) -> None:
    cfg = config.load(data_dir=tmp_path, scale={"hosts": 4, "groups": 2},
                      group={"database_url": "postgresql://db/groups"})
    with pytest.raises(simulation.ScaleError, match=r"scale\.group_database_url: several groups"):
        simulation.group_database_url(cfg, simulation.plan(cfg), "az1")


def test_heartbeats_stay_within_the_budget(tmp_path: Path) -> None:
    layout = simulation.plan(_config(tmp_path, hosts=1000, groups=4))
    assert (layout.report_interval, layout.host_down_after) == (50.0, 150.0)
    small = simulation.plan(config.load(data_dir=tmp_path, scale={"hosts": 40},
                                        host={"report_interval": 0.5},
                                        group={"host_down_after": 3.0}))
    assert (small.report_interval, small.host_down_after) == (2.0, 6.0)
    options = simulation.host_options(_config(tmp_path, hosts=1000), layout, layout.hosts[0])
    assert options.report_interval == 50.0 and options.state_dir == tmp_path / "hosts/host1"
    assert options.hypervisor_uri == f"test://{tmp_path / 'hosts/host1/host.xml'}"


def test_a_plan_refuses_more_groups_than_hosts(tmp_path: Path) -> None:
    cfg = _config(tmp_path, hosts=4, groups=4)
    with pytest.raises(simulation.ScaleError, match=r"scale\.hosts: 3 hosts cannot fill 4"):
        simulation.plan(cfg, hosts=3)
    with pytest.raises(simulation.ScaleError, match=r"scale\.hosts: must be a whole number"):
        simulation.plan(cfg, hosts=-1)
    assert simulation.plan(cfg, hosts=0).hosts == ()  # a cloud whose groups have no host


# --- bad input names the option or the flag -------------------------------------------------


@pytest.mark.parametrize(("scale", "says"), [
    ({"host_mix": "32x128:1,64"}, "option scale.host_mix (env IRONBARK_SCALE_HOST_MIX): "
                                  "Value error, entry '64' is not VCPUSxGIB"),
    ({"hosts": 0}, "option scale.hosts (env IRONBARK_SCALE_HOSTS)"),
    ({"groups": 65}, "option scale.groups (env IRONBARK_SCALE_GROUPS)"),
    ({"group_names": ["a b"]}, "group name 'a b' may hold only"),
    ({"group_names": ["a", "a"]}, "a group is named twice"),
    ({"groups": 3, "group_names": ["a", "b"]}, "scale.groups is 3 but scale.group_names"),
    ({"group_database_url": "sqlite:///x.db"}, "must contain {group}"),
    ({"max_reports_per_second": 0}, "option scale.max_reports_per_second"),
])
def test_bad_scale_options_name_the_option(tmp_path: Path, scale: dict[str, Any],
                                           says: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        _config(tmp_path, **scale)
    assert says in str(caught.value)


def test_scale_options_come_from_the_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "ironbark.toml"
    path.write_text('[scale]\nhosts = 12\ngroups = 2\nhost_mix = "32x128:1,64x256:3"\n')
    cfg = config.load(path, data_dir=tmp_path)
    assert (cfg.scale.hosts, cfg.scale.groups, cfg.scale.host_mix) == (12, 2, "32x128:1,64x256:3")
    assert Counter(h.vcpus for h in simulation.plan(cfg).hosts) == {32: 3, 64: 9}


@pytest.mark.parametrize(("args", "says"), [
    (["--host-mix", "32x"], "Invalid value for '--host-mix': entry '32x' is not"),
    (["--hosts", "0"], "Invalid value for '--hosts'"),
    (["--groups", "0"], "Invalid value for '--groups'"),
    (["--hosts", "2", "--groups", "3"], "Invalid value for '--hosts': 2 hosts cannot fill 3"),
    (["--bus-url", "amqp://x"], "--bus-url needs --multi-process"),
])
def test_ironbark_up_names_the_bad_flag(tmp_path: Path, args: list[str], says: str) -> None:
    result = CliRunner().invoke(cli_main, ["up", "--data-dir", str(tmp_path), *args])
    assert result.exit_code == 2
    assert says in result.output
    assert not (tmp_path / "ironbark.lock").exists()  # nothing was started


@pytest.mark.parametrize(("args", "says"), [
    (["--simulate", "--host-mix", "8x"], "--host-mix: entry '8x' is not"),
    (["--simulate", "--hosts", "0"], "--hosts: must be 1 to 10000, got 0"),
    (["--simulate", "--groups", "99"], "--groups: must be 1 to 64, got 99"),
    (["--hosts", "4"], "need --simulate"),
    (["--simulate", "--hosts", "4", "--groups", "2", "--only-group", "az3"],
     "--only-group: 'az3' is not a group of the plan (az1, az2)"),
])
def test_the_instance_manager_names_the_bad_flag(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        args: list[str], says: str) -> None:
    monkeypatch.setenv("IRONBARK_DATA_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as exited:
        instance_manager_main.main(args)
    assert exited.value.code == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "hosts").exists()  # no host was built


def test_the_lab_refuses_memory_and_bad_flags(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(lab.LabError, match=r"bus\.url: the multi-process lab needs a broker"):
        lab.Lab(config.ensure_secrets(config.load(data_dir=tmp_path)))
    with pytest.raises(SystemExit) as exited:
        lab.main(["--hosts", "3", "--groups", "4", "--data-dir", str(tmp_path)])
    assert exited.value.code == 2
    assert "--hosts: 3 hosts cannot fill 4 groups" in capsys.readouterr().err


def test_the_lab_gives_each_group_a_postgresql_database(tmp_path: Path) -> None:
    cfg = config.load(data_dir=tmp_path, scale={"hosts": 4, "groups": 2},
                      database={"url": "postgresql://u:p@db:5432/ironbark"})
    urls = lab.group_database_urls(cfg, simulation.plan(cfg))
    assert urls == {"az1": "postgresql+psycopg://u:p@db:5432/ironbark_az1",
                    "az2": "postgresql+psycopg://u:p@db:5432/ironbark_az2"}
    sqlite = config.load(data_dir=tmp_path, scale={"hosts": 4, "groups": 2})
    assert lab.group_database_urls(sqlite, simulation.plan(sqlite))["az2"] == \
        f"sqlite:///{tmp_path / 'group-az2.db'}"
