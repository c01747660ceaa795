"""Server groups (Nova's os-server-groups): a project's sets of servers that the
scheduler keeps together (affinity) or apart (anti-affinity), strictly or as a
preference (the soft variants).

The Cloud Manager records the group and its members; the policy itself is honoured
by the Group Manager, which gets the group with every build of a member. Since only
one scheduler can see all the members' claims, every member lives in one host group:
the first member pins it (``pin``, under the group's row lock).

A reference is an id or a name; names are project-local and need not be unique, so
a name several groups share is ambiguous (400: use the id).
"""

from __future__ import annotations

import uuid
from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cloud_manager.auth import Principal
from cloud_manager.db.models import Instance, ServerGroup
from cloud_manager.errors import BadInput, NotFound
from cloud_manager.services import quotas
from message_bus.messages import ServerGroupRef

FIELD = "server_group"


def create(session: Session, principal: Principal, *, name: str, policy: str) -> ServerGroup:
    quotas.check_one_more(session, principal.project_id, "server_groups")
    group = ServerGroup(id=str(uuid.uuid4()), project_id=principal.project_id, name=name,
                        policy=policy)
    session.add(group)
    session.flush()
    return group


def listing(session: Session, principal: Principal, *,
            all_projects: bool = False) -> list[ServerGroup]:
    query = sa.select(ServerGroup).order_by(ServerGroup.created_at, ServerGroup.id)
    if not (principal.is_admin and all_projects):
        query = query.where(ServerGroup.project_id == principal.project_id)
    return list(session.scalars(query))


def _find(session: Session, principal: Principal, ref: str, *, any_project: bool,
          for_update: bool = False) -> ServerGroup | None:
    """The group ``ref`` names; by id, any project's for the admin when ``any_project``;
    by name, only the caller's project's (names are project-local)."""
    query = sa.select(ServerGroup).where(ServerGroup.id == ref)
    if not (principal.is_admin and any_project):
        query = query.where(ServerGroup.project_id == principal.project_id)
    if for_update:
        # populate_existing: after waiting for the lock, read the row as committed now.
        query = query.with_for_update().execution_options(populate_existing=True)
    found = session.scalars(query).first()
    if found is not None:
        return found
    by_name = sa.select(ServerGroup).where(ServerGroup.name == ref,
                                           ServerGroup.project_id == principal.project_id)
    if for_update:
        by_name = by_name.with_for_update().execution_options(populate_existing=True)
    named = list(session.scalars(by_name.limit(2)))
    if len(named) > 1:
        raise BadInput(f"field '{FIELD}': several server groups are named '{ref}'; "
                       f"use the id", field=FIELD)
    return named[0] if named else None


def get(session: Session, principal: Principal, ref: str) -> ServerGroup:
    """A group of the caller's project (any project's, by id, for the admin); 404."""
    found = _find(session, principal, ref, any_project=True)
    if found is None:
        raise NotFound(f"server group '{ref}' not found")
    return found


def lock_for_member(session: Session, principal: Principal, ref: str) -> ServerGroup:
    """The caller's own group a new server joins, its row locked until the transaction
    ends (so concurrent first members pin the same host group). Unknown: 400."""
    found = _find(session, principal, ref, any_project=False, for_update=True)
    if found is None:
        raise BadInput(f"field '{FIELD}': no server group with id or name '{ref}' in this "
                       f"project", field=FIELD)
    return found


def delete(session: Session, principal: Principal, ref: str) -> None:
    """Delete a group; its members keep running and just leave it (as in Nova)."""
    group = get(session, principal, ref)
    session.execute(sa.update(Instance).where(Instance.server_group_id == group.id)
                    .values(server_group_id=None))
    session.delete(group)


def members(session: Session, group_ids: list[str]) -> dict[str, list[str]]:
    """The live servers of each group, oldest first."""
    if not group_ids:
        return {}
    rows = session.execute(
        sa.select(Instance.server_group_id, Instance.id)
        .where(Instance.server_group_id.in_(group_ids), Instance.deleted_at.is_(None))
        .order_by(Instance.created_at, Instance.id))
    found: dict[str, list[str]] = defaultdict(list)
    for group_id, instance_id in rows:
        found[group_id].append(instance_id)
    return found


def has_members(session: Session, group_id: str) -> bool:
    return session.scalars(
        sa.select(Instance.id).where(Instance.server_group_id == group_id,
                                     Instance.deleted_at.is_(None)).limit(1)).first() is not None


def pinned_group(session: Session, group: ServerGroup) -> str | None:
    """The host group the members live in; None while the group has no live member
    (the pin of members all deleted no longer binds anyone)."""
    if group.group_name is None or not has_members(session, group.id):
        return None
    return group.group_name


def check_requested(group: ServerGroup, pinned: str | None, requested: str | None) -> None:
    """A create naming a host group other than the members' is refused."""
    if pinned is not None and requested is not None and requested != pinned:
        raise BadInput(f"field 'group': the members of server group '{group.name}' live in "
                       f"group '{pinned}'; a new member cannot go to '{requested}'",
                       field="group")


def unpin_if_empty(session: Session, group_id: str, pinned: str) -> None:
    """Undo a pin whose members were never created (the bus refused the build)."""
    group = session.scalars(sa.select(ServerGroup).where(ServerGroup.id == group_id)
                            .with_for_update()).first()
    if group is not None and group.group_name == pinned and not has_members(session, group_id):
        group.group_name = None


def ref(group: ServerGroup) -> ServerGroupRef:
    """What a build carries for the Group Manager (policy checked against the Literal)."""
    return ServerGroupRef.model_validate({"id": group.id, "name": group.name,
                                          "policy": group.policy})
