"""The identity a new cloud starts with: the default domain, the three roles, and a
first admin user with the admin role on the admin project.

Idempotent: every start runs it. The admin's password is set only when the user is
made (from ``[identity] admin_password``, generated into secrets.toml when unset),
so a password changed through the API survives restarts.
"""

from __future__ import annotations

import logging
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cloud_manager.auth import ROLES
from cloud_manager.db.models import Domain, Project, User
from cloud_manager.identity import directory
from ironbark.config import IdentityOptions

log = logging.getLogger(__name__)

_NS = uuid.UUID("6f1c4a52-0c55-4d8e-9f59-2a8c3f4b7e10")


def stable_id(kind: str, name: str) -> str:
    """Ids of what bootstrap makes: the same in every process that races to make them."""
    return uuid.uuid5(_NS, f"{kind}:{name}").hex


def ensure(session: Session, options: IdentityOptions) -> User:
    if session.get(Domain, directory.DEFAULT_DOMAIN) is None:
        session.add(Domain(id=directory.DEFAULT_DOMAIN, name="Default",
                           description="The default domain", enabled=True))
    roles = {}
    for name in ROLES:
        roles[name] = directory.role_named(session, name) or directory.create_role(
            session, name, role_id=stable_id("role", name))
    project = session.scalars(sa.select(Project).where(
        Project.name == options.admin_project)).first()
    if project is None:
        project = directory.create_project(
            session, options.admin_project, directory.DEFAULT_DOMAIN,
            "The cloud administrators' project", True,
            project_id=stable_id("project", options.admin_project))
    admin = session.scalars(sa.select(User).where(
        User.name == options.admin_user, User.domain_id == directory.DEFAULT_DOMAIN)).first()
    if admin is None:
        assert options.admin_password is not None
        admin = directory.create_user(session, options.admin_user, directory.DEFAULT_DOMAIN,
                                      options.admin_password,
                                      default_project_id=project.id,
                                      description="The first administrator")
        log.info("made the first admin user '%s' on project '%s'", admin.name, project.name)
    directory.grant(session, admin.id, project.id, roles["admin"].id)
    return admin
