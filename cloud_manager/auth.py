"""Who is calling: the principal a validated token stands for, and what it may do.

A token is issued by the identity service (``cloud_manager.identity.tokens``) for a
user, scoped to a project or not; every API request carries it in ``X-Auth-Token``
(OpenStack) or ``Authorization: Bearer`` (the native API and its CLI), and is checked
against the database at each request, so a revoked token or a removed role stops
working at once.

Policy, as Keystone's default roles mean it: ``admin`` on the scoped project is the
cloud's administrator; ``member`` may change its project's resources; ``reader`` may
only look.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ADMIN, MEMBER, READER = "admin", "member", "reader"
ROLES = (ADMIN, MEMBER, READER)


@dataclass(frozen=True)
class Principal:
    """``project_id`` is None for an unscoped token, which only the identity API takes."""

    project_id: str
    project_name: str
    is_admin: bool
    user_id: str = ""
    user_name: str = ""
    roles: frozenset[str] = field(default_factory=frozenset)
    domain_id: str = "default"

    @property
    def can_write(self) -> bool:
        return self.is_admin or MEMBER in self.roles

    @property
    def scoped(self) -> bool:
        return bool(self.project_id)
