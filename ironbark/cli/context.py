"""The state shared by every command: the global options and the API client.

The client is made on first use, not when the group starts, so that commands that
never talk to the API (``--help``, ``ironbark up``) work without credentials.
"""

from __future__ import annotations

from dataclasses import dataclass

import click

from ironbark.cli.client import ApiClient
from ironbark.cli.credentials import resolve


@dataclass
class CliState:
    """``--url``/``--token``/``--os-cloud`` as given, and the client built from them
    once needed."""

    url: str | None = None
    token: str | None = None
    cloud: str | None = None
    api: ApiClient | None = None

    def client(self) -> ApiClient:
        if self.api is None:
            creds = resolve(self.url, self.token, self.cloud)
            self.api = ApiClient(creds.url, creds.token)
        return self.api


def get_client() -> ApiClient:
    """The API client of the command being run."""
    ctx = click.get_current_context()
    return ctx.ensure_object(CliState).client()
