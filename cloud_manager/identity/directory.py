"""Domains, projects, users, roles and role assignments: the identity service's records.

Callers are the admin routes (the API checks the admin role first) and the
bootstrap. Rules follow Keystone's: names unique (projects cloud-wide, users per
domain), a domain or project must be disabled before it is deleted, and deleting a
user, project or role drops its assignments (and a user's tokens). Beyond Keystone,
a project that still owns live servers cannot be deleted (409): its servers would
be left without an owner anyone can reach.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cloud_manager.db.models import (
    Domain,
    Instance,
    KeyPair,
    Network,
    Port,
    Project,
    Quota,
    Role,
    RoleAssignment,
    SecurityGroup,
    SecurityGroupRule,
    ServerGroup,
    Subnet,
    Token,
    User,
)
from cloud_manager.errors import BadInput, Conflict, NotFound
from cloud_manager.identity import passwords, tokens
from ironbark.db import utcnow

DEFAULT_DOMAIN = "default"
# What a project owns, in the order it can be deleted (children first).
PROJECT_OWNED: list[Any] = [Instance, ServerGroup, KeyPair, Quota, Port, Subnet, Network,
                            SecurityGroupRule, SecurityGroup]


def new_id() -> str:
    return uuid.uuid4().hex


def _get(session: Session, model: type, kind: str, ident: str) -> Any:
    row = session.get(model, ident)
    if row is None:
        raise NotFound(f"Could not find {kind}: {ident}.")
    return row


def _unique(session: Session, column: Any, value: str, kind: str, field: str,
            *where: Any, exclude: str | None = None) -> None:
    query = sa.select(column.class_).where(column == value, *where)
    found = session.scalars(query).first()
    if found is not None and found.id != exclude:
        raise Conflict(f"Conflict occurred attempting to store {kind} - Duplicate entry "
                       f"'{value}'.", field=field)


# --- domains ------------------------------------------------------------------------------


def domain(session: Session, domain_id: str) -> Domain:
    return _get(session, Domain, "domain", domain_id)


def create_domain(session: Session, name: str, description: str, enabled: bool) -> Domain:
    _unique(session, Domain.name, name, "domain", "name")
    row = Domain(id=new_id(), name=name, description=description, enabled=enabled)
    session.add(row)
    session.flush()
    return row


def update_domain(session: Session, row: Domain, changes: dict[str, Any]) -> Domain:
    if "name" in changes:
        _unique(session, Domain.name, changes["name"], "domain", "name", exclude=row.id)
    for key, value in changes.items():
        setattr(row, key, value)
    return row


def delete_domain(session: Session, row: Domain) -> None:
    if row.id == DEFAULT_DOMAIN:
        raise Conflict("the default domain cannot be deleted")
    if row.enabled:
        raise Conflict("Cannot delete a domain that is enabled, please disable it first.")
    for project in session.scalars(sa.select(Project).where(Project.domain_id == row.id)):
        delete_project(session, project)
    for user in session.scalars(sa.select(User).where(User.domain_id == row.id)):
        delete_user(session, user)
    session.delete(row)


# --- projects -----------------------------------------------------------------------------


def project(session: Session, project_id: str) -> Project:
    return _get(session, Project, "project", project_id)


def project_by_ref(session: Session, ref: dict[str, Any]) -> Project | None:
    """``{"id"}`` or ``{"name", "domain": {"id" | "name"}}``, as auth scopes name one."""
    if isinstance(ref.get("id"), str):
        return session.get(Project, ref["id"])
    name, domain_ref = ref.get("name"), ref.get("domain") or {}
    if not isinstance(name, str) or not isinstance(domain_ref, dict):
        return None
    domain_id = domain_ref.get("id")
    if domain_id is None and isinstance(domain_ref.get("name"), str):
        found = session.scalars(sa.select(Domain).where(Domain.name == domain_ref["name"])).first()
        domain_id = found.id if found else None
    return session.scalars(sa.select(Project).where(Project.name == name,
                                                    Project.domain_id == domain_id)).first()


def create_project(session: Session, name: str, domain_id: str, description: str,
                   enabled: bool, project_id: str | None = None) -> Project:
    if session.get(Domain, domain_id) is None:
        raise BadInput(f"field 'domain_id': no domain '{domain_id}'", field="domain_id")
    _unique(session, Project.name, name, "project", "name")
    row = Project(id=project_id or new_id(), name=name, domain_id=domain_id,
                  description=description, enabled=enabled)
    session.add(row)
    session.flush()
    return row


def update_project(session: Session, row: Project, changes: dict[str, Any]) -> Project:
    if "name" in changes:
        _unique(session, Project.name, changes["name"], "project", "name", exclude=row.id)
    for key, value in changes.items():
        setattr(row, key, value)
    return row


def delete_project(session: Session, row: Project) -> None:
    """Refused while the project has live servers; its key pairs, server groups and
    deleted servers' history go with it."""
    live = session.scalar(sa.select(sa.func.count()).select_from(Instance).where(
        Instance.project_id == row.id, Instance.deleted_at.is_(None)))
    if live:
        raise Conflict(f"project {row.id} still has {live} server(s); delete them first")
    for model in PROJECT_OWNED:
        session.execute(sa.delete(model).where(model.project_id == row.id))
    session.execute(sa.delete(RoleAssignment).where(RoleAssignment.project_id == row.id))
    session.execute(sa.delete(Token).where(Token.project_id == row.id))
    session.delete(row)


# --- users --------------------------------------------------------------------------------


def user(session: Session, user_id: str) -> User:
    return _get(session, User, "user", user_id)


def create_user(session: Session, name: str, domain_id: str, password: str | None,
                enabled: bool = True, default_project_id: str | None = None,
                description: str = "", email: str | None = None) -> User:
    if session.get(Domain, domain_id) is None:
        raise BadInput(f"field 'domain_id': no domain '{domain_id}'", field="domain_id")
    if default_project_id is not None and session.get(Project, default_project_id) is None:
        raise BadInput(f"field 'default_project_id': no project '{default_project_id}'",
                       field="default_project_id")
    _unique(session, User.name, name, "user", "name", User.domain_id == domain_id)
    row = User(id=new_id(), name=name, domain_id=domain_id, enabled=enabled,
               default_project_id=default_project_id, description=description, email=email,
               password_hash=passwords.hash_password(password) if password else None,
               password_changed_at=utcnow() if password else None)
    session.add(row)
    session.flush()
    return row


def update_user(session: Session, row: User, changes: dict[str, Any]) -> User:
    changes = dict(changes)
    if "name" in changes:
        _unique(session, User.name, changes["name"], "user", "name",
                User.domain_id == row.domain_id, exclude=row.id)
    if changes.get("default_project_id") is not None and \
            session.get(Project, changes["default_project_id"]) is None:
        raise BadInput(f"field 'default_project_id': no project "
                       f"'{changes['default_project_id']}'", field="default_project_id")
    if "password" in changes:
        set_password(session, row, changes.pop("password"))
    for key, value in changes.items():
        setattr(row, key, value)
    if changes.get("enabled") is False:
        tokens.revoke_user(session, row.id)
    return row


def set_password(session: Session, row: User, password: str | None) -> None:
    row.password_hash = passwords.hash_password(password) if password else None
    row.password_changed_at = utcnow()
    tokens.revoke_user(session, row.id)


def delete_user(session: Session, row: User) -> None:
    session.execute(sa.delete(Token).where(Token.user_id == row.id))
    session.execute(sa.delete(RoleAssignment).where(RoleAssignment.user_id == row.id))
    session.delete(row)


def user_projects(session: Session, user_id: str) -> list[Project]:
    """The projects the user has any role on, as ``GET /v3/auth/projects`` lists them."""
    return list(session.scalars(
        sa.select(Project).join(RoleAssignment, RoleAssignment.project_id == Project.id)
        .where(RoleAssignment.user_id == user_id).distinct().order_by(Project.name)))


# --- roles and assignments ----------------------------------------------------------------


def role(session: Session, role_id: str) -> Role:
    return _get(session, Role, "role", role_id)


def role_named(session: Session, name: str) -> Role | None:
    return session.scalars(sa.select(Role).where(Role.name == name)).first()


def create_role(session: Session, name: str, description: str = "",
                role_id: str | None = None) -> Role:
    _unique(session, Role.name, name, "role", "name")
    row = Role(id=role_id or new_id(), name=name, description=description)
    session.add(row)
    session.flush()
    return row


def delete_role(session: Session, row: Role) -> None:
    session.execute(sa.delete(RoleAssignment).where(RoleAssignment.role_id == row.id))
    session.delete(row)


def grant(session: Session, user_id: str, project_id: str, role_id: str) -> None:
    """Idempotent, as Keystone's PUT is."""
    if session.get(RoleAssignment, (user_id, project_id, role_id)) is None:
        session.add(RoleAssignment(user_id=user_id, project_id=project_id, role_id=role_id))
        session.flush()


def revoke(session: Session, user_id: str, project_id: str, role_id: str) -> None:
    row = session.get(RoleAssignment, (user_id, project_id, role_id))
    if row is None:
        raise NotFound(f"Could not find role assignment with role: {role_id}, user or group: "
                       f"{user_id}, project, domain, or system: {project_id}.")
    session.delete(row)


def assignments(session: Session, *, user_id: str | None = None,
                project_id: str | None = None,
                role_id: str | None = None) -> list[RoleAssignment]:
    query = sa.select(RoleAssignment)
    if user_id is not None:
        query = query.where(RoleAssignment.user_id == user_id)
    if project_id is not None:
        query = query.where(RoleAssignment.project_id == project_id)
    if role_id is not None:
        query = query.where(RoleAssignment.role_id == role_id)
    return list(session.scalars(query.order_by(RoleAssignment.project_id,
                                               RoleAssignment.user_id, RoleAssignment.role_id)))
