"""One request id, minted at the API, in every tier's log lines about that request."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ironbark import logs
from ironbark.allinone import AllInOne
from message_bus import context
from tests.helpers import Api


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.addFilter(logs.ContextFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[_Records]:
    handler = _Records()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def test_the_request_id_follows_a_boot_through_every_tier(cloud: AllInOne,
                                                          records: _Records) -> None:
    request_id = "req-0badc0de-1234-4321-abcd-0123456789ab"
    r = requests.post(cloud.api_url + "/v1/servers", timeout=10,
                      json={"name": "traced", "flavor": "m1.tiny", "image": "demo"},
                      headers={"Authorization": f"Bearer {cloud.admin_token}",
                               "X-Openstack-Request-Id": request_id})
    assert r.status_code == 202
    Api(cloud.api_url, cloud.admin_token).wait(r.json()["server"]["id"])
    mine = [rec for rec in records.records if rec.request_id == request_id]
    tiers = {rec.name.split(".")[0] for rec in mine}
    assert {"cloud_manager", "group_manager", "instance_manager"} <= tiers, tiers
    services = {rec.service for rec in mine}
    assert "cloud" in services and "group.default" in services
    assert any(s.startswith("host.host") for s in services), services
    # ...and every one of those lines names the instance.
    bus_lines = [rec for rec in mine if rec.service != "-"]
    assert bus_lines and all(rec.instance_id == r.json()["server"]["id"] for rec in bus_lines)


def test_json_log_lines_carry_the_context(tmp_path: Path) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.setup("INFO", json_lines=True, file=tmp_path / "log.jsonl")
        with context.bound(request_id="req-x", instance_id="i-1", service="group.g"):
            logging.getLogger("group_manager.test").info("placed %s", "it")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("cloud_manager.test").exception("failed")
        for handler in root.handlers:
            handler.flush()
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    first, second = (json.loads(line) for line in (tmp_path / "log.jsonl").read_text()
                     .splitlines())
    assert first["message"] == "placed it" and first["request_id"] == "req-x"
    assert first["instance_id"] == "i-1" and first["service"] == "group.g"
    assert first["logger"] == "group_manager.test" and first["level"] == "INFO"
    assert second["request_id"] == "-" and "ValueError: boom" in second["exception"]
