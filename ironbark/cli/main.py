"""The ``ironbark`` command: global options and the command groups.

API, credential and wait failures are caught here, once, and printed as one
``Error ...`` line on stderr with exit code 1; usage errors keep click's exit code 2.
``up`` and ``down`` import the all-in-one code only when run, so every other command
starts fast and never loads server code.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from ironbark.cli.client import ApiError
from ironbark.cli.context import CliState
from ironbark.cli.credentials import CredentialsError
from ironbark.cli.flavors import flavor
from ironbark.cli.hosts import group, host
from ironbark.cli.images import image
from ironbark.cli.keypairs import keypair
from ironbark.cli.output import print_error
from ironbark.cli.servers import server
from ironbark.cli.wait import WaitError


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ironbark")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"ironbark {_version()}")
        ctx.exit()


class IronbarkGroup(click.Group):
    """A group that turns the client's expected failures into ``Error ...`` + exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ApiError, CredentialsError, WaitError) as exc:
            print_error(exc)
            ctx.exit(1)


@click.group(cls=IronbarkGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url", default=None, metavar="URL",
    help="Native API endpoint [env IRONBARK_URL; default: the catalog's 'cloud' service].",
)
@click.option(
    "--token", default=None, metavar="TOKEN",
    help="A token the identity service issued [env IRONBARK_TOKEN; default: sign in].",
)
@click.option(
    "--os-cloud", "os_cloud", default=None, metavar="NAME",
    help="clouds.yaml entry to sign in with [env OS_CLOUD; default: OS_AUTH_URL and "
         "friends, else 'ironbark', which `ironbark up` writes].",
)
@click.option(
    "--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
    help="Show the version and exit.",
)
@click.pass_context
def main(ctx: click.Context, url: str | None, token: str | None,
         os_cloud: str | None) -> None:
    """Ironbark: a private IaaS cloud. Start one with `ironbark up`."""
    # A client command's retries are its own business (ironbark.http_retry) and a final
    # failure is one "Error: ..." line: urllib3's per-retry warnings are noise there.
    # (`up` and `down` run the cloud, whose operators want them.)
    if ctx.invoked_subcommand not in ("up", "down"):
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    state = ctx.ensure_object(CliState)
    state.url = url
    state.token = token
    state.cloud = os_cloud


main.add_command(server)
main.add_command(flavor)
main.add_command(image)
main.add_command(host)
main.add_command(group)
main.add_command(keypair)


_DATA_DIR = click.Path(file_okay=False, path_type=Path)


def _host_mix(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Check the mix here so that a bad one is a usage error naming ``--host-mix``."""
    from ironbark.host_mix import parse_host_mix

    if value is not None:
        try:
            parse_host_mix(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


@main.command("up")
@click.option("--hosts", type=click.IntRange(1, 10000), default=None,
              help="Number of simulated hypervisor hosts [default: scale.hosts, 2].")
@click.option("--groups", type=click.IntRange(1, 64), default=None,
              help="Groups (availability zones az1..azN) to spread the hosts over "
                   "[default: scale.groups, 1: the [group] name].")
@click.option("--host-mix", default=None, metavar="MIX", callback=_host_mix,
              help="Host sizes as VCPUSxGIB[:WEIGHT],... e.g. 32x128:1,64x256:1 "
                   "[default: scale.host_mix, or the [host] simulated_* sizes].")
@click.option("--seed", type=int, default=None,
              help="Which host gets which size of the mix [default: scale.seed].")
@click.option("--port", type=click.IntRange(1, 65535), default=8774, show_default=True,
              help="Port of the API.")
@click.option("--data-dir", type=_DATA_DIR, default=None, help="Where the cloud keeps its state.")
@click.option("--config", "config_path", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Configuration file (TOML).")
@click.option("--hypervisor", type=click.Choice(["simulated", "qemu"]), default=None,
              help="qemu: the first host is this machine, running real QEMU guests "
                   "through libvirtd; the others stay simulated [default: host.hypervisor].")
@click.option("--multi-process", is_flag=True, default=False,
              help="Run every tier as its own process (one Group Manager and one "
                   "Instance Manager process per group) on a broker and a database.")
@click.option("--bus-url", default=None, metavar="URL",
              help="With --multi-process: the broker, amqp://... [default: bus.url].")
@click.option("--database-url", default=None, metavar="URL",
              help="With --multi-process: the Cloud Manager's database; with PostgreSQL "
                   "each group gets <database>_<group> [default: database.url].")
@click.pass_context
def up(
    ctx: click.Context, hosts: int | None, groups: int | None, host_mix: str | None,
    seed: int | None, port: int, data_dir: Path | None, config_path: Path | None,
    hypervisor: str | None, multi_process: bool, bus_url: str | None,
    database_url: str | None,
) -> None:
    """Run an all-in-one cloud here; writes the clouds.yaml entry the CLI uses."""
    if hosts is not None and groups is not None and hosts < groups:
        raise click.BadParameter(f"{hosts} hosts cannot fill {groups} groups (every group "
                                 f"needs a host)", param_hint="'--hosts'")
    if multi_process and hypervisor == "qemu":
        raise click.UsageError("--hypervisor qemu runs the all-in-one cloud (this machine "
                               "as one real host); it cannot be combined with --multi-process")
    if multi_process:
        from ironbark import lab

        ctx.exit(lab.run(hosts=hosts, groups=groups, host_mix=host_mix, seed=seed, port=port,
                         data_dir=data_dir, config_path=config_path, bus_url=bus_url,
                         database_url=database_url))
    for flag, value in (("--bus-url", bus_url), ("--database-url", database_url)):
        if value is not None:
            raise click.UsageError(f"{flag} needs --multi-process (the all-in-one cloud "
                                   f"uses memory:// and SQLite)")
    from ironbark import allinone

    scale = {k: v for k, v in (("groups", groups), ("host_mix", host_mix), ("seed", seed))
             if v is not None}
    ctx.exit(allinone.run(hosts=hosts, port=port, data_dir=data_dir, config_path=config_path,
                          hypervisor=hypervisor, **scale))


@main.command("down")
@click.option("--data-dir", type=_DATA_DIR, default=None, help="State directory of the cloud.")
@click.pass_context
def down(ctx: click.Context, data_dir: Path | None) -> None:
    """Stop the all-in-one cloud started by `ironbark up`."""
    from ironbark import allinone

    ctx.exit(allinone.stop_running(data_dir=data_dir))


if __name__ == "__main__":
    main(prog_name="ironbark")
