"""Keystone's JSON for each identity record (the v3 API reference's shapes)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from cloud_manager.api.openstack.common import base_url, iso
from cloud_manager.db.models import Domain, Project, Role, RoleAssignment, User
from cloud_manager.identity import catalog as service_catalog
from cloud_manager.identity.tokens import Validated


def _self(path: str) -> dict[str, Any]:
    return {"self": f"{base_url()}/identity/v3/{path}"}


def collection(key: str, items: list[dict[str, Any]], path: str) -> dict[str, Any]:
    return {key: items, "links": {**_self(path), "previous": None, "next": None}}


def domain(d: Domain) -> dict[str, Any]:
    return {"id": d.id, "name": d.name, "description": d.description, "enabled": d.enabled,
            "tags": [], "options": {}, "links": _self(f"domains/{d.id}")}


def project(p: Project) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "domain_id": p.domain_id,
            "description": p.description, "enabled": p.enabled, "parent_id": p.domain_id,
            "is_domain": False, "tags": [], "options": {}, "links": _self(f"projects/{p.id}")}


def user(u: User) -> dict[str, Any]:
    view: dict[str, Any] = {"id": u.id, "name": u.name, "domain_id": u.domain_id,
                            "enabled": u.enabled, "password_expires_at": None,
                            "options": {}, "links": _self(f"users/{u.id}")}
    if u.default_project_id:
        view["default_project_id"] = u.default_project_id
    if u.description:
        view["description"] = u.description
    if u.email:
        view["email"] = u.email
    return view


def role(r: Role) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "domain_id": None, "description": r.description,
            "options": {}, "links": _self(f"roles/{r.id}")}


def assignment(a: RoleAssignment, names: dict[str, str] | None = None) -> dict[str, Any]:
    def ref(kind: str, ident: str) -> dict[str, Any]:
        return {"id": ident, **({"name": names[ident]} if names and ident in names else {})}
    return {"role": ref("role", a.role_id), "user": ref("user", a.user_id),
            "scope": {"project": ref("project", a.project_id)},
            "links": {"assignment": f"{base_url()}/identity/v3/projects/{a.project_id}/"
                                    f"users/{a.user_id}/roles/{a.role_id}"}}


def token(session: Session, found: Validated, with_catalog: bool, region: str) -> dict:
    t, u = found.token, found.user
    user_domain = session.get(Domain, u.domain_id)
    body: dict[str, Any] = {
        "methods": t.methods.split(","),
        "user": {"id": u.id, "name": u.name, "password_expires_at": None,
                 "domain": {"id": u.domain_id,
                            "name": user_domain.name if user_domain else u.domain_id}},
        "audit_ids": [t.audit_id],
        "expires_at": iso(t.expires_at, micro=True),
        "issued_at": iso(t.issued_at, micro=True),
    }
    if found.project is not None:
        p = found.project
        project_domain = session.get(Domain, p.domain_id)
        body["project"] = {"id": p.id, "name": p.name, "domain": {
            "id": p.domain_id, "name": project_domain.name if project_domain else p.domain_id}}
        body["is_domain"] = False
        body["roles"] = [{"id": r.id, "name": r.name} for r in found.roles]
        if with_catalog:
            body["catalog"] = service_catalog.catalog(base_url(), region)
    return {"token": body}
