"""The image commands' own logic: KEY=VALUE options, the sized upload body, the stats table.

(Talking to a cloud is tested end to end in tests/e2e/test_cli_images.py.)
"""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ironbark.cli.client import ApiError, _Upload
from ironbark.cli.images import parse_properties
from ironbark.cli.main import main


def test_properties_parse_and_bad_pairs_are_usage_errors() -> None:
    assert parse_properties(("os=linux", "empty=", "eq=a=b")) == {
        "os": "linux", "empty": "", "eq": "a=b"}
    for bad in ("novalue", "=v", " =v"):
        with pytest.raises(click.BadParameter, match="KEY=VALUE"):
            parse_properties((bad,))


def test_upload_body_has_the_file_length_and_reports_progress(tmp_path: Path) -> None:
    path = tmp_path / "disk"
    data = bytes(range(256)) * 10_000  # 2.56 MB: three 1 MiB reads
    path.write_bytes(data)
    seen: list[int] = []
    with path.open("rb") as f:
        body = _Upload(f, len(data), seen.append)
        assert len(body) == len(data)
        assert b"".join(body) == data
    assert sum(seen) == len(data) and len(seen) == 3


def test_upload_body_stops_when_the_file_shrinks(tmp_path: Path) -> None:
    path = tmp_path / "disk"
    path.write_bytes(b"x" * 1000)
    with path.open("rb") as f, pytest.raises(ApiError, match="shrank"):
        list(_Upload(f, 5000, None))


def test_bad_options_change_nothing_and_need_no_cloud(tmp_path: Path) -> None:
    """Usage errors are found before any request (the URL below answers nothing)."""
    runner = CliRunner()
    source = tmp_path / "disk"
    source.write_bytes(b"\0" * 512)
    base = ["--url", "http://127.0.0.1:9", "--token", "t", "image"]
    cases = [
        ["create", "--file", str(source), "--disk-format", "vhd", "x"],
        ["create", "--file", str(tmp_path / "missing"), "--disk-format", "raw", "x"],
        ["create", "--file", str(source), "--disk-format", "raw", "--property", "k", "x"],
        ["set", "x"],
        ["set", "--property", "a=1", "--unset-property", "a", "x"],
        ["create", "--file", str(source), "--disk-format", "raw", "--min-ram", "-1", "x"],
    ]
    for args in cases:
        result = runner.invoke(main, [*base, *args])
        assert result.exit_code == 2, (args, result.output)
        assert "cannot reach" not in result.output
