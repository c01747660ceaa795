"""``ironbark keypair ...``: the project's SSH key pairs, by name.

``create`` without ``--public-key`` has the cloud generate the pair: the private key
comes back once (the cloud keeps no copy) and is written to ``--private-key FILE``
(mode 0600, never over an existing file) or printed.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import click

from ironbark.cli.client import ApiClient, ApiError, JsonObject
from ironbark.cli.context import get_client
from ironbark.cli.output import Column, field, for_each_ref, format_option, print_list, print_show

KEYPAIR_ORDER = ("name", "type", "fingerprint", "public_key", "created_at")


def _path(name: str) -> str:
    return f"/keypairs/{quote(name, safe='')}"


def _keypair(body: object, what: str) -> JsonObject:
    if not isinstance(body, dict) or not isinstance(body.get("keypair"), dict):
        raise ApiError(0, f"unexpected answer to {what}: no 'keypair' in it")
    return body["keypair"]


def create_keypair(client: ApiClient, name: str, public_key: str | None = None) -> JsonObject:
    body: JsonObject = {"name": name}
    if public_key is not None:
        body["public_key"] = public_key
    return _keypair(client.request("POST", "/keypairs", json=body), "POST /v1/keypairs")


@click.group("keypair")
def keypair() -> None:
    """Manage SSH key pairs (the guest finds the public key on its config drive)."""


@keypair.command("create")
@click.option("--private-key", "private_key_file", type=click.Path(dir_okay=False,
              path_type=Path), default=None, metavar="FILE",
              help="Write the generated private key here (mode 0600) instead of printing it.")
@format_option
@click.argument("name")
def create(name: str, private_key_file: Path | None, fmt: str) -> None:
    """Generate a key pair called NAME."""
    if private_key_file is not None and private_key_file.exists():
        raise click.UsageError(f"{private_key_file} exists; not overwriting a key file",
                               ctx=click.get_current_context())
    made = create_keypair(get_client(), name)
    private = made.pop("private_key", None)
    if private_key_file is None:
        print_show(made, fmt, KEYPAIR_ORDER)
        if private is not None:
            click.echo(private, nl=False)
        return
    fd = os.open(private_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(private or "")
    print_show(made, fmt, KEYPAIR_ORDER)


@keypair.command("import")
@click.option("--public-key", "public_key_file", type=click.File("r"), required=True,
              metavar="FILE", help="OpenSSH public key file (e.g. ~/.ssh/id_ed25519.pub).")
@format_option
@click.argument("name")
def import_(name: str, public_key_file: click.utils.LazyFile, fmt: str) -> None:
    """Import an existing public key as key pair NAME."""
    print_show(create_keypair(get_client(), name, public_key_file.read()), fmt, KEYPAIR_ORDER)


@keypair.command("list")
@format_option
def list_(fmt: str) -> None:
    """List the project's key pairs."""
    body = get_client().request("GET", "/keypairs")
    if not isinstance(body, dict) or not isinstance(body.get("keypairs"), list):
        raise ApiError(0, "unexpected answer to GET /v1/keypairs: no 'keypairs' in it")
    print_list(body["keypairs"], [Column("Name", field("name")), Column("Type", field("type")),
                                  Column("Fingerprint", field("fingerprint"))], fmt)


@keypair.command("show")
@format_option
@click.argument("name")
def show(name: str, fmt: str) -> None:
    """Show one key pair."""
    print_show(_keypair(get_client().request("GET", _path(name)), "GET /v1/keypairs"), fmt,
               KEYPAIR_ORDER)


@keypair.command("delete")
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@click.pass_context
def delete(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Delete key pairs; servers made with them keep their keys."""
    client = get_client()
    if not for_each_ref(names, lambda name: client.request("DELETE", _path(name))):
        ctx.exit(1)
