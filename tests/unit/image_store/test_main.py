"""``ironbark-image-store``: bad configurations, ``scrub`` exit codes, and ``serve`` under
gunicorn (the production server: uploads cut short and corrupt downloads must behave
there exactly as under werkzeug)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from image_store.client import CorruptImage, ImageStoreClient
from image_store.factory import open_store
from image_store.main import main
from image_store.store import SERVICE, ImageStore
from ironbark.config import load

from .http_util import MIB, TOKEN, chunk_file, data_entries, flip_byte, image_bytes, raw_http

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("IRONBARK_"):
            monkeypatch.delenv(name)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IRONBARK_")}
    env.update(extra)
    return env


def _command(*args: str, env: dict[str, str], timeout: float = 60
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "image_store.main", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_missing_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    for command in ("serve", "scrub"):
        with pytest.raises(SystemExit) as info:
            main([command, "--config", str(missing)])
        assert info.value.code == 2
        assert str(missing) in capsys.readouterr().err


@pytest.mark.parametrize("command", ["serve", "scrub"])
def test_invalid_option_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    config = tmp_path / "ironbark.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[image_store]\nport = 99999\n')
    with pytest.raises(SystemExit) as info:
        main([command, "--config", str(config)])
    assert info.value.code == 2
    assert "image_store.port" in capsys.readouterr().err
    assert not (tmp_path / "secrets.toml").exists()


@pytest.mark.parametrize("command", ["serve", "scrub"])
def test_store_the_factory_refuses_exits_2_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    config = tmp_path / "ironbark.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[image_store]\nchunk_avg_kib = 48\n')
    with pytest.raises(SystemExit) as info:
        main([command, "--config", str(config)])
    assert info.value.code == 2
    assert "image_store.chunk_avg_kib" in capsys.readouterr().err


def test_json_is_only_for_scrub(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--json"])
    assert info.value.code == 2
    assert "--json" in capsys.readouterr().err


# -- scrub ------------------------------------------------------------------------------


def _filled_store(data_dir: Path) -> tuple[ImageStore, str, list[list]]:
    """A store in ``data_dir`` (as the command will open it) holding one image."""
    store = open_store(load(None, data_dir=data_dir).image_store)
    record = store.create(SERVICE, name="scrubbed", disk_format="raw")
    store.upload(SERVICE, record.id, io.BytesIO(image_bytes(MIB, seed=21)))
    _, entries = store.manifest(SERVICE, record.id)
    return store, record.id, [[e.offset, e.length, e.address] for e in entries]


def test_scrub_exit_status_says_whether_the_store_is_damaged(tmp_path: Path) -> None:
    store, image_id, entries = _filled_store(tmp_path)
    env = _env(IRONBARK_DATA_DIR=str(tmp_path))

    clean = _command("scrub", env=env)
    assert clean.returncode == 0, clean.stderr
    assert "scrub: clean" in clean.stdout
    assert f"checked {len(data_entries({'chunks': entries}))} chunk" in clean.stdout

    bad = data_entries({"chunks": entries})[0][2]
    flip_byte(chunk_file(tmp_path, bad))
    damaged = _command("scrub", env=env)
    assert damaged.returncode == 1, damaged.stderr
    assert "DAMAGED: 1 corrupt" in damaged.stdout
    assert bad in damaged.stdout and image_id in damaged.stdout

    as_json = _command("scrub", "--json", env=env)
    assert as_json.returncode == 1
    result = json.loads(as_json.stdout)
    assert [c["address"] for c in result["corrupt"]] == [bad]
    assert result["corrupt"][0]["images"] == [image_id]
    store.delete(SERVICE, image_id)  # the in-process store still works on the same catalog


def test_scrub_reads_a_config_file(tmp_path: Path) -> None:
    _filled_store(tmp_path / "data")
    config = tmp_path / "ironbark.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    done = _command("scrub", "--config", str(config), env=_env())
    assert done.returncode == 0, done.stderr
    assert "clean" in done.stdout


# -- serve, under gunicorn --------------------------------------------------------------


def test_gunicorn_round_trip(gunicorn_store: tuple[ImageStoreClient, Path, int],
                             tmp_path: Path) -> None:
    client, _, _ = gunicorn_store
    data = image_bytes(3 * MIB, holes=[(MIB, MIB)], seed=22)
    image = client.create(name="g", disk_format="raw")
    record = client.upload(image["id"], io.BytesIO(data))
    client.download_to(image["id"], tmp_path / "out", record["sha256"])
    assert (tmp_path / "out").read_bytes() == data
    with client.open_stream(image["id"], "bytes=-10") as response:
        assert response.status_code == 206
        assert response.content == data[-10:]


def test_gunicorn_cuts_a_download_at_a_corrupt_chunk(
    gunicorn_store: tuple[ImageStoreClient, Path, int], tmp_path: Path
) -> None:
    client, root, _ = gunicorn_store
    data = image_bytes(2 * MIB, seed=23)
    image = client.create(name="g", disk_format="raw")
    client.upload(image["id"], io.BytesIO(data))
    bad = data_entries(client.chunks(image["id"]))[-1][2]
    flip_byte(chunk_file(root, bad))

    with client.open_stream(image["id"]) as response:
        assert response.headers["Content-Length"] == str(len(data))
        received = bytearray()
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            for piece in response.iter_content(65536):
                received += piece
    assert 0 < len(received) < len(data)
    with pytest.raises(CorruptImage, match=bad):
        client.download_to(image["id"], tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_gunicorn_upload_cut_short_kills_the_image(
    gunicorn_store: tuple[ImageStoreClient, Path, int], framing: str
) -> None:
    client, _, port = gunicorn_store
    image = client.create(name="g", disk_format="raw")
    half = image_bytes(MIB + 5, seed=24)
    if framing == "chunked":
        length_header, body = "Transfer-Encoding: chunked", f"{4 * MIB:x}\r\n".encode() + half
    else:
        length_header, body = f"Content-Length: {4 * MIB}", half
    head = (f"PUT /v1/images/{image['id']}/file HTTP/1.1\r\nHost: x\r\n"
            f"X-Service-Token: {TOKEN}\r\n{length_header}\r\n\r\n")
    with raw_http("127.0.0.1", port, head, body):
        pass

    deadline = time.monotonic() + 10
    while client.get(image["id"])["status"] != "killed":
        assert time.monotonic() < deadline, client.get(image["id"])
        time.sleep(0.02)
    again = client.create(name="g2", disk_format="raw")
    assert client.upload(again["id"], io.BytesIO(half))["size"] == len(half)
