"""How results and errors are printed.

Tables are for people; ``--format json`` is for scripts and prints the API objects
themselves, untouched, with sorted keys so that output diffs cleanly between runs.
Errors always go to stderr as ``Error (HTTP 409): <the API's message>`` with exit
code 1, leaving exit code 2 to click's usage errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, TypeVar

import click
from tabulate import tabulate

from ironbark.cli.client import ApiError

FORMATS = ("table", "json")
NONE = "-"

F = TypeVar("F", bound=Callable[..., Any])


def format_option(func: F) -> F:
    """The ``-f/--format table|json`` option every listing and show command takes."""
    return click.option(
        "-f",
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="Output format: a table for people, or the API objects as JSON.",
    )(func)


class Column(NamedTuple):
    """One table column: its header and how to get its value out of an API object."""

    header: str
    get: Callable[[dict[str, Any]], Any]
    align: str = "left"


def field(*path: str) -> Callable[[dict[str, Any]], Any]:
    """A getter following keys into nested objects; None when any step is missing."""

    def get(obj: dict[str, Any]) -> Any:
        value: Any = obj
        for key in path:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value

    return get


def cell(value: Any) -> str:
    """One value as table text: ``-`` for null/empty, yes/no for booleans."""
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value) if value else NONE
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True) if value else NONE
    return str(value)


def render_json(data: Any) -> str:
    """Pretty JSON with a stable key order."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)


def render_table(objects: Iterable[dict[str, Any]], columns: Sequence[Column]) -> str:
    """A ``simple`` tabulate table, one row per object.

    Number parsing is off: ids such as ``1e3`` must print as given, not as 1000.
    """
    rows = [[cell(col.get(obj)) for col in columns] for obj in objects]
    return tabulate(
        rows,
        headers=[col.header for col in columns],
        tablefmt="simple",
        disable_numparse=True,
        colalign=[col.align for col in columns],
    )


def flatten(obj: dict[str, Any], order: Sequence[str] = ()) -> list[tuple[str, str]]:
    """Field/value rows of an object; nested objects become ``flavor.name`` rows.

    Keys named in ``order`` come first, in that order; any others (fields the API
    added later) follow sorted, so nothing the server says is hidden.
    """
    keys = [k for k in order if k in obj] + sorted(k for k in obj if k not in order)
    rows: list[tuple[str, str]] = []
    for key in keys:
        value = obj[key]
        if isinstance(value, dict) and value:
            # Inside a nested object the API's own key order reads best (total, used...).
            rows.extend((f"{key}.{sub}", text) for sub, text in flatten(value, tuple(value)))
        else:
            rows.append((key, cell(value)))
    return rows


def render_show(obj: dict[str, Any], order: Sequence[str] = ()) -> str:
    """A two-column Field/Value table of one object."""
    return tabulate(
        flatten(obj, order), headers=["Field", "Value"], tablefmt="simple", disable_numparse=True
    )


def print_list(objects: list[dict[str, Any]], columns: Sequence[Column], fmt: str) -> None:
    """Print a listing as a table, or as the JSON list of API objects."""
    click.echo(render_json(objects) if fmt == "json" else render_table(objects, columns))


def print_show(obj: dict[str, Any], fmt: str, order: Sequence[str] = ()) -> None:
    """Print one API object as a Field/Value table, or as JSON."""
    click.echo(render_json(obj) if fmt == "json" else render_show(obj, order))


def error_line(exc: Exception) -> str:
    """``Error (HTTP 409): <message>``, or ``Error: <message>`` with no HTTP status."""
    if isinstance(exc, ApiError) and exc.status > 0:
        return f"Error (HTTP {exc.status}): {exc.message}"
    return f"Error: {exc}"


def print_error(exc: Exception) -> None:
    click.echo(error_line(exc), err=True)


def for_each_ref(refs: Iterable[str], action: Callable[[str], object]) -> bool:
    """Run ``action`` on every ref even if some fail (each failure printed); True if
    all succeeded. Commands that take several refs exit 1 when this is False."""
    ok = True
    for ref in refs:
        try:
            action(ref)
        except ApiError as exc:
            print_error(exc)
            ok = False
    return ok


def warn(message: str) -> None:
    click.echo(f"Warning: {message}", err=True)
