from __future__ import annotations

import json

from ironbark.cli.client import ApiError
from ironbark.cli.flavors import FLAVOR_COLUMNS, FLAVOR_ORDER
from ironbark.cli.hosts import GROUP_COLUMNS, HOST_COLUMNS, unreachable_warnings
from ironbark.cli.images import IMAGE_COLUMNS, human_size
from ironbark.cli.output import cell, error_line, flatten, render_json, render_show, render_table
from ironbark.cli.servers import SERVER_ORDER, server_columns

from .samples import FLAVOR, GROUP, HOST, IMAGE, SERVER, SERVER_ID, server


def lines(text: str) -> list[list[str]]:
    """Table text as rows of whitespace-separated words."""
    return [line.split() for line in text.splitlines()]


def test_cell_rendering() -> None:
    assert cell(None) == "-"
    assert cell(True) == "yes" and cell(False) == "no"
    assert cell(4.0) == "4" and cell(1.5) == "1.5"
    assert cell([]) == "-" and cell(["a", "b"]) == "a, b"
    assert cell(0) == "0"


def test_server_list_table() -> None:
    text = render_table([SERVER], server_columns([SERVER]))
    header, rule, row = lines(text)
    assert header == ["ID", "Name", "Status", "Task", "Power", "Flavor", "Image", "Group"]
    assert set(rule[0]) == {"-"}
    assert row == [SERVER_ID, "web1", "ACTIVE", "-", "running", "m1.small", "demo", "rack1"]


def test_server_list_has_host_column_only_when_some_host_is_known() -> None:
    assert "Host" not in [c.header for c in server_columns([SERVER])]
    rows = [SERVER, server(id="x", name="web2", host="hv1")]
    columns = server_columns(rows)
    assert columns[-1].header == "Host"
    text = lines(render_table(rows, columns))
    assert text[2][-1] == "-" and text[3][-1] == "hv1"


def test_empty_list_prints_headers_only() -> None:
    assert lines(render_table([], server_columns([])))[0][0] == "ID"


def test_ids_are_printed_verbatim() -> None:
    flavor = dict(FLAVOR, id="1e3")
    assert lines(render_table([flavor], FLAVOR_COLUMNS))[2][0] == "1e3"


def test_server_show_is_field_value_in_order() -> None:
    text = render_show(SERVER, SERVER_ORDER)
    rows = lines(text)
    assert rows[0] == ["Field", "Value"]
    fields = [r[0] for r in rows[2:]]
    assert fields[:7] == [
        "id", "name", "project_id", "status", "vm_state", "task_state", "power_state",
    ]
    assert "flavor.name" in fields and "image.id" in fields
    assert dict((r[0], " ".join(r[1:])) for r in rows[2:])["fault"] == "-"


def test_show_flattens_fault_and_keeps_unknown_fields() -> None:
    broken = server(
        status="ERROR", fault={"message": "no valid host", "at": "2026-11-22T10:00:01Z"},
        new_field="x",
    )
    values = dict(flatten(broken, SERVER_ORDER))
    assert values["fault.message"] == "no valid host"
    assert values["new_field"] == "x"
    assert list(values)[-1] == "new_field"


def test_json_is_the_api_objects_with_sorted_keys() -> None:
    text = render_json([SERVER])
    assert json.loads(text) == [SERVER]
    keys = [line.strip().split(":")[0] for line in text.splitlines()
            if line.startswith('    "')]
    assert keys == sorted(keys)
    assert render_json(SERVER) == render_json(dict(reversed(list(SERVER.items()))))


def test_flavor_show_and_list() -> None:
    rows = lines(render_table([FLAVOR], FLAVOR_COLUMNS))
    assert rows[0] == ["ID", "Name", "vCPUs", "RAM", "MiB", "Disk", "GB", "Public"]
    assert rows[2] == ["f1", "m1.small", "1", "512", "1", "yes"]
    assert [r[0] for r in lines(render_show(FLAVOR, FLAVOR_ORDER))[2:]] == list(FLAVOR_ORDER)


def test_image_list() -> None:
    rows = lines(render_table([IMAGE], IMAGE_COLUMNS))
    assert rows[2] == [IMAGE["id"], "demo", "active", "qcow2", "12.5", "MiB", "public"]
    assert human_size(512) == "512 B" and human_size(None) is None


def test_host_list() -> None:
    text = render_table([HOST, dict(HOST, name="hv2", state="down", enabled=False)], HOST_COLUMNS)
    header = text.splitlines()[0]
    for title in ("vCPU used/capacity (ratio)", "RAM MiB used/capacity (ratio)",
                  "Disk GB used/capacity (ratio)", "Last seen", "Hypervisor", "Instances"):
        assert title in header
    rows = lines(text)
    assert rows[2] == [
        "hv1", "rack1", "up", "fake", "3", "3/32", "(x4)", "1536/23808", "(x1.5)",
        "3/100", "(x1)", "2026-11-22T10:00:00Z",
    ]
    assert rows[3][2:4] == ["down", "(disabled)"]


def test_unreachable_group_warning_names_the_group() -> None:
    assert unreachable_warnings([]) == []
    (line,) = unreachable_warnings(["rack2"])
    assert "'rack2'" in line


def test_group_list() -> None:
    rows = lines(render_table([GROUP], GROUP_COLUMNS))
    assert rows[2] == [
        "rack1", "up", "spread", "2", "0", "1", "3/64", "1536/47616", "3/200",
        "32", "vCPU,", "23808", "MiB,", "100", "GB", "2026-11-22T10:00:00Z",
    ]


def test_error_lines() -> None:
    assert error_line(ApiError(409, "server is PAUSED")) == "Error (HTTP 409): server is PAUSED"
    assert error_line(ApiError(0, "cannot reach")) == "Error: cannot reach"
    assert error_line(ValueError("x")) == "Error: x"
