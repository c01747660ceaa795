"""How server groups and the servers of a multi-create are printed."""

from __future__ import annotations

from ironbark.cli.output import render_show, render_table
from ironbark.cli.server_groups import SERVER_GROUP_ORDER, server_group_columns
from ironbark.cli.servers import SERVER_ORDER, batch_columns

from .samples import SERVER_GROUP, SERVER_ID, server


def lines(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def test_server_group_list_counts_members() -> None:
    empty = dict(SERVER_GROUP, id="g2", name="db", group=None, members=[])
    rows = lines(render_table([SERVER_GROUP, empty], server_group_columns(False)))
    assert rows[0] == ["ID", "Name", "Policy", "Group", "Members"]
    assert rows[2] == [SERVER_GROUP["id"], "web", "anti-affinity", "rack1", "1"]
    assert rows[3] == ["g2", "db", "anti-affinity", "-", "0"]


def test_server_group_list_of_every_project_names_the_project() -> None:
    headers = [c.header for c in server_group_columns(True)]
    assert headers == ["ID", "Name", "Project", "Policy", "Group", "Members"]


def test_server_group_show_lists_member_ids_in_order() -> None:
    rows = lines(render_show(SERVER_GROUP, SERVER_GROUP_ORDER))
    assert [r[0] for r in rows[2:]] == list(SERVER_GROUP_ORDER)
    assert dict((r[0], r[1]) for r in rows[2:])["members"] == SERVER_ID


def test_a_multi_create_prints_one_row_per_server_with_its_reservation() -> None:
    batch = [server(id=f"s{i}", name=f"web-{i}", reservation_id="r-0123abcd")
             for i in (1, 2)]
    rows = lines(render_table(batch, batch_columns(batch)))
    assert rows[0][-1] == "Reservation"
    assert [r[1] for r in rows[2:]] == ["web-1", "web-2"]
    assert {r[-1] for r in rows[2:]} == {"r-0123abcd"}


def test_server_show_places_server_group_and_reservation_after_group() -> None:
    shown = server(server_group="g1", reservation_id="r-0123abcd")
    fields = [r[0] for r in lines(render_show(shown, SERVER_ORDER))[2:]]
    at = fields.index("group")
    assert fields[at + 1:at + 3] == ["server_group", "reservation_id"]
