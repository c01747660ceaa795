"""The ``ironbark-image-store`` entry point's handling of a bad configuration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from image_store.main import main


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("IRONBARK_"):
            monkeypatch.delenv(name)


def test_missing_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(SystemExit) as info:
        main(["--config", str(missing)])
    assert info.value.code == 2
    assert str(missing) in capsys.readouterr().err


def test_invalid_option_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "ironbark.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[image_store]\nport = 99999\n')
    with pytest.raises(SystemExit) as info:
        main(["--config", str(config)])
    assert info.value.code == 2
    assert "image_store.port" in capsys.readouterr().err
    assert not (tmp_path / "secrets.toml").exists()
