"""Tokens: password sign-in, issue, validate, revoke.

A token is 32 random bytes (URL-safe base64); the database keeps only its SHA-256,
so the table is useless to whoever reads it. Validation reads the current user,
project and role assignments each time: disabling a user or a project, or removing
a role, takes effect at the next request, and revocation needs no cache to expire.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cloud_manager.auth import ADMIN, Principal
from cloud_manager.db.models import Domain, Project, Role, RoleAssignment, Token, User
from cloud_manager.errors import Unauthorized
from cloud_manager.identity import passwords
from ironbark.db import utcnow

# Keystone's own words: clients match on the status, people read the message.
NOT_AUTHENTICATED = "The request you have made requires authentication."


@dataclass(frozen=True)
class Validated:
    """A live token and what it stands for now."""

    token: Token
    user: User
    project: Project | None
    roles: list[Role]

    def principal(self) -> Principal:
        names = frozenset(r.name for r in self.roles)
        return Principal(
            project_id=self.project.id if self.project else "",
            project_name=self.project.name if self.project else "",
            is_admin=self.project is not None and ADMIN in names,
            user_id=self.user.id, user_name=self.user.name, roles=names,
            domain_id=self.user.domain_id)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def find_user(session: Session, *, user_id: str | None, name: str | None,
              domain_id: str | None, domain_name: str | None) -> User | None:
    """A user by id, or by name within a domain given by id or name (Keystone's rules)."""
    if user_id is not None:
        return session.get(User, user_id)
    if domain_id is None and domain_name is not None:
        domain = session.scalars(sa.select(Domain).where(Domain.name == domain_name)).first()
        domain_id = domain.id if domain else None
    if name is None or domain_id is None:
        return None
    return session.scalars(sa.select(User).where(User.name == name,
                                                 User.domain_id == domain_id)).first()


def check_password(session: Session, user: User | None, password: str) -> User:
    """The user, if enabled (with its domain) and the password is right; else 401.

    The same answer for every failure, and one hash verification for each, so a
    caller learns nothing about which names exist.
    """
    ok = passwords.verify(user.password_hash if user else None, password)
    if not ok or user is None or not user.enabled or not _domain_enabled(session, user):
        raise Unauthorized(NOT_AUTHENTICATED)
    if user.password_hash and passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    return user


def _domain_enabled(session: Session, user: User) -> bool:
    domain = session.get(Domain, user.domain_id)
    return domain is not None and domain.enabled


def roles_on(session: Session, user_id: str, project_id: str) -> list[Role]:
    return list(session.scalars(
        sa.select(Role).join(RoleAssignment, RoleAssignment.role_id == Role.id)
        .where(RoleAssignment.user_id == user_id, RoleAssignment.project_id == project_id)
        .order_by(Role.name)))


def issue(session: Session, user: User, project: Project | None, ttl: float,
          methods: list[str], expires_at: dt.datetime | None = None) -> tuple[str, Validated]:
    """A new token for ``user`` (scoped to ``project`` if given, where it needs a role).

    ``expires_at``: a rescoped token keeps the expiry of the token it came from.
    """
    roles: list[Role] = []
    if project is not None:
        if not project.enabled:
            raise Unauthorized(f"project {project.id} is disabled")
        roles = roles_on(session, user.id, project.id)
        if not roles:
            raise Unauthorized(f"user {user.id} has no role on project {project.id}")
    now = utcnow()
    secret = secrets.token_urlsafe(32)
    row = Token(id=digest(secret), user_id=user.id, project_id=project.id if project else None,
                audit_id=uuid.uuid4().hex[:22], methods=",".join(methods), issued_at=now,
                expires_at=expires_at or now + dt.timedelta(seconds=ttl), revoked=False)
    session.add(row)
    session.flush()
    return secret, Validated(row, user, project, roles)


def validate(session: Session, secret: str) -> Validated | None:
    """The token's current meaning, or None if it is unknown, revoked, expired, or its
    user, domain or project is disabled, or its user lost every role on the project."""
    row = session.get(Token, digest(secret))
    if row is None or row.revoked or row.expires_at <= utcnow():
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.enabled or not _domain_enabled(session, user):
        return None
    project = None
    roles: list[Role] = []
    if row.project_id is not None:
        project = session.get(Project, row.project_id)
        if project is None or not project.enabled:
            return None
        roles = roles_on(session, user.id, project.id)
        if not roles:
            return None
    return Validated(row, user, project, roles)


def revoke(session: Session, token: Token) -> None:
    token.revoked = True


def revoke_user(session: Session, user_id: str) -> None:
    """Every token of a user (disabled, deleted or with a new password)."""
    session.execute(sa.update(Token).where(Token.user_id == user_id).values(revoked=True))


def prune(session: Session, now: dt.datetime | None = None) -> int:
    """Forget tokens that expired: they can never validate again."""
    result = session.execute(sa.delete(Token).where(Token.expires_at <= (now or utcnow())))
    return int(getattr(result, "rowcount", 0) or 0)
