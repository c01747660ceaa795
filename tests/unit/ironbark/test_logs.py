"""The log handler follows sys.stderr as it is now, not as it was at set-up."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from ironbark import logs


@pytest.fixture
def root_handlers() -> Iterator[None]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved:
        root.addHandler(handler)
    root.setLevel(level)


def test_a_closed_stderr_of_the_past_breaks_no_later_log_line(
        root_handlers: None, monkeypatch: pytest.MonkeyPatch) -> None:
    first = io.StringIO()
    monkeypatch.setattr("sys.stderr", first)  # as a CLI test runner's capture
    logs.setup("INFO")
    first.close()
    now = io.StringIO()
    monkeypatch.setattr("sys.stderr", now)
    logging.getLogger("ironbark.test").warning("still heard")
    assert now.getvalue().rstrip().endswith("still heard")
    assert "Logging error" not in now.getvalue()
