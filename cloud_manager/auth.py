"""Bearer tokens from configuration: one admin token, one token per project.

(Full identity, with users, roles and Keystone-compatible tokens, comes later.)
A project is identified by a uuid derived from its name, so every process of a
multi-process cloud agrees on it without coordination.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from cloud_manager.db.models import Project
from ironbark.config import ApiOptions

_PROJECT_NS = uuid.UUID("6f1c4a52-0c55-4d8e-9f59-2a8c3f4b7e10")
ADMIN_PROJECT = "admin"


def project_id(name: str) -> str:
    return str(uuid.uuid5(_PROJECT_NS, name))


@dataclass(frozen=True)
class Principal:
    project_id: str
    project_name: str
    is_admin: bool


class TokenTable:
    def __init__(self, options: ApiOptions):
        assert options.admin_token is not None
        self._tokens: list[tuple[str, Principal]] = [
            (options.admin_token, Principal(project_id(ADMIN_PROJECT), ADMIN_PROJECT, True))
        ]
        for name, token in sorted(options.project_tokens.items()):
            self._tokens.append((token, Principal(project_id(name), name, name == ADMIN_PROJECT)))

    def authenticate(self, token: str) -> Principal | None:
        found = None
        for known, principal in self._tokens:  # compare with every token: constant time
            if hmac.compare_digest(known.encode(), token.encode()):
                found = principal
        return found

    def ensure_projects(self, session: Session) -> None:
        for _, principal in self._tokens:
            if session.get(Project, principal.project_id) is None:
                session.add(Project(id=principal.project_id, name=principal.project_name))
