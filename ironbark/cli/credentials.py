"""Where the CLI finds the API endpoint and its token.

Each of ``url`` and ``token`` is taken from the first place that has it:

1. the ``--url`` / ``--token`` options,
2. the ``IRONBARK_URL`` / ``IRONBARK_TOKEN`` environment variables,
3. the credentials file that ``ironbark up`` writes: ``$IRONBARK_CREDENTIALS``, else
   ``$XDG_CONFIG_HOME/ironbark/credentials.json`` (``~/.config`` when unset), holding
   ``{"url": ..., "token": ..., "project": ...}``.

The file's token is only ever sent to the file's own URL: pointing the CLI at another
endpoint with ``--url`` or ``IRONBARK_URL`` must not leak the local cloud's admin
token to it, so that case needs its own token.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

CREDENTIALS_ENV = "IRONBARK_CREDENTIALS"
URL_ENV = "IRONBARK_URL"
TOKEN_ENV = "IRONBARK_TOKEN"

_HINT = f"run `ironbark up` to start a local cloud, or set {URL_ENV} and {TOKEN_ENV}"


class CredentialsError(Exception):
    """No usable endpoint/token was found; the message says what to do about it."""


@dataclass(frozen=True)
class Credentials:
    """An endpoint and the bearer token to use there.

    ``project`` is only known when the credentials file supplied the token.
    """

    url: str
    token: str
    project: str | None = None

    def __repr__(self) -> str:
        # Never print a token by accident (tracebacks, debug logs).
        return f"Credentials(url={self.url!r}, token='***', project={self.project!r})"


def credentials_path() -> Path:
    """The credentials file path, honouring ``IRONBARK_CREDENTIALS`` and XDG."""
    explicit = os.environ.get(CREDENTIALS_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"
    return base / "ironbark" / "credentials.json"


def write_credentials(url: str, token: str, project: str, path: Path | None = None) -> Path:
    """Store credentials for later CLI calls; returns the file written.

    The file holds a bearer token, so it is created with mode 0600 from the start
    (never world-readable, not even briefly) and replaced atomically, so a
    concurrent reader sees either the old file or the new one, never half of one.
    """
    target = Path(path) if path is not None else credentials_path()
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    body = json.dumps({"url": url, "token": token, "project": project}, indent=2) + "\n"
    # mkstemp creates the file with mode 0600 in the target's directory, so the
    # final rename stays on one file system and is atomic.
    fd, tmp_name = tempfile.mkstemp(prefix=".credentials-", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o600)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    return target


def read_credentials(path: Path | None = None) -> Credentials | None:
    """The credentials file's content, or None when there is no file.

    A file that exists but cannot be used is an error naming the file, not a silent
    fall-through: the user would otherwise get a confusing 401 or "no credentials".
    """
    target = path if path is not None else credentials_path()
    try:
        raw = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CredentialsError(f"cannot read credentials file {target}: {exc.strerror}") from exc
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise CredentialsError(
            f"credentials file {target} is not valid JSON ({exc}); {_HINT}"
        ) from exc
    if not isinstance(data, dict):
        raise CredentialsError(f"credentials file {target} must hold a JSON object; {_HINT}")
    url, token, project = data.get("url"), data.get("token"), data.get("project")
    if not isinstance(url, str) or not url or not isinstance(token, str) or not token:
        raise CredentialsError(
            f"credentials file {target} lacks a \"url\" or \"token\" string; {_HINT}"
        )
    return Credentials(url=url, token=token, project=project if isinstance(project, str) else None)


def _same_endpoint(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def resolve(url_opt: str | None, token_opt: str | None) -> Credentials:
    """The endpoint and token to use, from options, then environment, then the file."""
    url = url_opt or os.environ.get(URL_ENV) or None
    token = token_opt or os.environ.get(TOKEN_ENV) or None
    if url and token:
        return Credentials(url=url, token=token)

    path = credentials_path()
    stored = read_credentials(path)
    if stored is None:
        missing = "an API token" if url else "an API endpoint"
        raise CredentialsError(f"no Ironbark credentials: {missing} is needed; {_HINT}")

    if token and not url:
        return Credentials(url=stored.url, token=token)
    if url and not token:
        if _same_endpoint(url, stored.url):
            return Credentials(url=url, token=stored.token, project=stored.project)
        raise CredentialsError(
            f"no token for {url}: the credentials file {path} is for {stored.url}; "
            f"give --token or set {TOKEN_ENV}"
        )
    return stored
