"""Admin CRUD of domains, projects, users, roles and role assignments (``/identity/v3``).

Keystone's default policy, reduced to the three roles: the cloud admin (admin role
on its scoped project) manages everything; anyone may read their own user, their
own projects and the roles, and change their own password.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Response, jsonify, request

from cloud_manager.api.openstack.common import (
    caller,
    cloud,
    field,
    json_body,
    member,
    name_check,
    no_extra,
    query_bool,
    require_admin,
)
from cloud_manager.api.openstack.identity import blueprint, views
from cloud_manager.db.models import Domain, Project, Role, User
from cloud_manager.errors import BadInput, Forbidden, Unauthorized
from cloud_manager.identity import directory, passwords

_NAME = name_check(255)


def _filtered(session: Any, model: Any, names: tuple[str, ...]) -> list[Any]:
    query = sa.select(model)
    for name in names:
        if name == "enabled":
            wanted = query_bool("enabled")
            if wanted is not None:
                query = query.where(model.enabled.is_(wanted))
        elif name in request.args:
            query = query.where(getattr(model, name) == request.args[name])
    return list(session.scalars(query.order_by(model.name)))


def _body(key: str, allowed: tuple[str, ...], *, create: bool) -> dict[str, Any]:
    data = member(json_body(), key, key)
    no_extra(data, allowed, key)
    out: dict[str, Any] = {}
    for name in ("tags", "options", "is_domain"):
        if data.get(name):  # empty is what every client sends by default
            raise BadInput(f"field '{key}.{name}': not supported by this cloud",
                           field=f"{key}.{name}")
    if create or "name" in data:
        out["name"] = field(data, "name", str, key, required=True, check=_NAME)
    for name in ("description", "email"):
        if name in data and name in allowed:
            out[name] = field(data, name, str, key, nullable=True) or ""
    if "enabled" in data:
        out["enabled"] = field(data, "enabled", bool, key)
    for name in ("domain_id", "default_project_id"):
        if name in data and name in allowed:
            out[name] = field(data, name, str, key, nullable=name == "default_project_id")
    if "password" in data and "password" in allowed:
        out["password"] = field(data, "password", str, key, nullable=True)
    if not create and not out:
        raise BadInput(f"field '{key}': names nothing to change", field=key)
    return out


# --- domains ------------------------------------------------------------------------------


@blueprint.get("/v3/domains")
def list_domains() -> Response:
    require_admin("identity:list_domains")
    with cloud().sessions() as session:
        rows = _filtered(session, Domain, ("name", "enabled"))
        return jsonify(views.collection("domains", [views.domain(d) for d in rows], "domains"))


@blueprint.post("/v3/domains")
def create_domain() -> tuple[Response, int]:
    require_admin("identity:create_domain")
    given = _body("domain", ("name", "description", "enabled", "tags", "options"), create=True)
    with cloud().sessions.begin() as session:
        row = directory.create_domain(session, given["name"], given.get("description", ""),
                                      given.get("enabled", True))
        return jsonify({"domain": views.domain(row)}), 201


@blueprint.get("/v3/domains/<domain_id>")
def show_domain(domain_id: str) -> Response:
    if caller().domain_id != domain_id:
        require_admin("identity:get_domain")
    with cloud().sessions() as session:
        return jsonify({"domain": views.domain(directory.domain(session, domain_id))})


@blueprint.patch("/v3/domains/<domain_id>")
def update_domain(domain_id: str) -> Response:
    require_admin("identity:update_domain")
    given = _body("domain", ("name", "description", "enabled", "tags", "options"),
                  create=False)
    with cloud().sessions.begin() as session:
        row = directory.update_domain(session, directory.domain(session, domain_id), given)
        return jsonify({"domain": views.domain(row)})


@blueprint.delete("/v3/domains/<domain_id>")
def delete_domain(domain_id: str) -> tuple[str, int]:
    require_admin("identity:delete_domain")
    with cloud().sessions.begin() as session:
        directory.delete_domain(session, directory.domain(session, domain_id))
    return "", 204


# --- projects -----------------------------------------------------------------------------

_PROJECT_FIELDS = ("name", "description", "enabled", "domain_id", "parent_id", "is_domain",
                   "tags", "options")


@blueprint.get("/v3/projects")
def list_projects() -> Response:
    with cloud().sessions() as session:
        if caller().is_admin:
            rows = _filtered(session, Project, ("name", "domain_id", "enabled"))
        else:  # as Keystone's reader policy: the projects one has a role on
            mine = {p.id for p in directory.user_projects(session, caller().user_id)}
            rows = [p for p in _filtered(session, Project, ("name", "domain_id", "enabled"))
                    if p.id in mine]
        return jsonify(views.collection("projects", [views.project(p) for p in rows],
                                        "projects"))


@blueprint.post("/v3/projects")
def create_project() -> tuple[Response, int]:
    require_admin("identity:create_project")
    data = member(json_body(), "project", "project")
    if data.get("is_domain"):
        raise BadInput("field 'project.is_domain': projects acting as domains are not "
                       "supported", field="project.is_domain")
    given = _body("project", _PROJECT_FIELDS, create=True)
    parent = field(data, "parent_id", str, "project", nullable=True)
    domain_id = given.get("domain_id") or parent or directory.DEFAULT_DOMAIN
    if parent is not None and parent != domain_id:
        raise BadInput("field 'project.parent_id': nested projects are not supported (the "
                       "parent must be the project's domain)", field="project.parent_id")
    with cloud().sessions.begin() as session:
        row = directory.create_project(session, given["name"], domain_id,
                                       given.get("description", ""), given.get("enabled", True))
        return jsonify({"project": views.project(row)}), 201


@blueprint.get("/v3/projects/<project_id>")
def show_project(project_id: str) -> Response:
    if caller().project_id != project_id:
        require_admin("identity:get_project")
    with cloud().sessions() as session:
        return jsonify({"project": views.project(directory.project(session, project_id))})


@blueprint.patch("/v3/projects/<project_id>")
def update_project(project_id: str) -> Response:
    require_admin("identity:update_project")
    given = _body("project", ("name", "description", "enabled", "tags", "options"),
                  create=False)
    with cloud().sessions.begin() as session:
        row = directory.update_project(session, directory.project(session, project_id), given)
        return jsonify({"project": views.project(row)})


@blueprint.delete("/v3/projects/<project_id>")
def delete_project(project_id: str) -> tuple[str, int]:
    require_admin("identity:delete_project")
    if project_id == caller().project_id:
        raise Forbidden("a token cannot delete the project it is scoped to")
    with cloud().sessions.begin() as session:
        directory.delete_project(session, directory.project(session, project_id))
    return "", 204


# --- users --------------------------------------------------------------------------------

_USER_FIELDS = ("name", "domain_id", "password", "enabled", "default_project_id",
                "description", "email", "options")


@blueprint.get("/v3/users")
def list_users() -> Response:
    require_admin("identity:list_users")
    with cloud().sessions() as session:
        rows = _filtered(session, User, ("name", "domain_id", "enabled"))
        return jsonify(views.collection("users", [views.user(u) for u in rows], "users"))


@blueprint.post("/v3/users")
def create_user() -> tuple[Response, int]:
    require_admin("identity:create_user")
    given = _body("user", _USER_FIELDS, create=True)
    with cloud().sessions.begin() as session:
        row = directory.create_user(
            session, given["name"], given.get("domain_id") or directory.DEFAULT_DOMAIN,
            given.get("password"), given.get("enabled", True), given.get("default_project_id"),
            given.get("description", ""), given.get("email") or None)
        return jsonify({"user": views.user(row)}), 201


@blueprint.get("/v3/users/<user_id>")
def show_user(user_id: str) -> Response:
    if caller().user_id != user_id:
        require_admin("identity:get_user")
    with cloud().sessions() as session:
        return jsonify({"user": views.user(directory.user(session, user_id))})


@blueprint.patch("/v3/users/<user_id>")
def update_user(user_id: str) -> Response:
    require_admin("identity:update_user")
    given = _body("user", tuple(f for f in _USER_FIELDS if f != "domain_id"), create=False)
    with cloud().sessions.begin() as session:
        row = directory.update_user(session, directory.user(session, user_id), given)
        return jsonify({"user": views.user(row)})


@blueprint.delete("/v3/users/<user_id>")
def delete_user(user_id: str) -> tuple[str, int]:
    require_admin("identity:delete_user")
    if user_id == caller().user_id:
        raise Forbidden("a user cannot delete themself")
    with cloud().sessions.begin() as session:
        directory.delete_user(session, directory.user(session, user_id))
    return "", 204


@blueprint.post("/v3/users/<user_id>/password")
def change_password(user_id: str) -> tuple[str, int]:
    """One's own password, given the old one (Keystone's rule, even for an admin)."""
    if caller().user_id != user_id:
        raise Forbidden("You are not authorized to change another user's password.")
    data = member(json_body(), "user", "user")
    no_extra(data, ("password", "original_password"), "user")
    new = field(data, "password", str, "user", required=True, check=_password_rule)
    old = field(data, "original_password", str, "user", required=True)
    with cloud().sessions.begin() as session:
        row = directory.user(session, user_id)
        if not passwords.verify(row.password_hash, old):
            raise Unauthorized("The original password is wrong.")
        directory.set_password(session, row, new)
    return "", 204


def _password_rule(value: str) -> str | None:
    return None if 1 <= len(value) <= 4096 else "must be 1 to 4096 characters"


@blueprint.get("/v3/users/<user_id>/projects")
def user_projects(user_id: str) -> Response:
    if caller().user_id != user_id:
        require_admin("identity:list_user_projects")
    with cloud().sessions() as session:
        directory.user(session, user_id)
        rows = directory.user_projects(session, user_id)
        return jsonify(views.collection("projects", [views.project(p) for p in rows],
                                        f"users/{user_id}/projects"))


# --- roles and assignments ----------------------------------------------------------------


@blueprint.get("/v3/roles")
def list_roles() -> Response:
    with cloud().sessions() as session:
        rows = _filtered(session, Role, ("name",))
        return jsonify(views.collection("roles", [views.role(r) for r in rows], "roles"))


@blueprint.post("/v3/roles")
def create_role() -> tuple[Response, int]:
    require_admin("identity:create_role")
    given = _body("role", ("name", "description", "options"), create=True)
    with cloud().sessions.begin() as session:
        row = directory.create_role(session, given["name"], given.get("description", ""))
        return jsonify({"role": views.role(row)}), 201


@blueprint.get("/v3/roles/<role_id>")
def show_role(role_id: str) -> Response:
    with cloud().sessions() as session:
        return jsonify({"role": views.role(directory.role(session, role_id))})


@blueprint.delete("/v3/roles/<role_id>")
def delete_role(role_id: str) -> tuple[str, int]:
    require_admin("identity:delete_role")
    with cloud().sessions.begin() as session:
        row = directory.role(session, role_id)
        if row.name in ("admin", "member", "reader"):
            raise Forbidden(f"role '{row.name}' is one the policy relies on; it stays")
        directory.delete_role(session, row)
    return "", 204


def _trio(session: Any, project_id: str, user_id: str, role_id: str) -> None:
    directory.project(session, project_id)
    directory.user(session, user_id)
    directory.role(session, role_id)


@blueprint.put("/v3/projects/<project_id>/users/<user_id>/roles/<role_id>")
def grant_role(project_id: str, user_id: str, role_id: str) -> tuple[str, int]:
    require_admin("identity:create_grant")
    with cloud().sessions.begin() as session:
        _trio(session, project_id, user_id, role_id)
        directory.grant(session, user_id, project_id, role_id)
    return "", 204


@blueprint.route("/v3/projects/<project_id>/users/<user_id>/roles/<role_id>",
                 methods=["HEAD", "GET"])
def check_role(project_id: str, user_id: str, role_id: str) -> tuple[str, int]:
    require_admin("identity:check_grant")
    with cloud().sessions() as session:
        _trio(session, project_id, user_id, role_id)
        if not directory.assignments(session, user_id=user_id, project_id=project_id,
                                     role_id=role_id):
            directory.revoke(session, user_id, project_id, role_id)  # raises the 404
    return "", 204


@blueprint.delete("/v3/projects/<project_id>/users/<user_id>/roles/<role_id>")
def revoke_role(project_id: str, user_id: str, role_id: str) -> tuple[str, int]:
    require_admin("identity:revoke_grant")
    with cloud().sessions.begin() as session:
        _trio(session, project_id, user_id, role_id)
        directory.revoke(session, user_id, project_id, role_id)
    return "", 204


@blueprint.get("/v3/projects/<project_id>/users/<user_id>/roles")
def list_grants(project_id: str, user_id: str) -> Response:
    if caller().user_id != user_id:
        require_admin("identity:list_grants")
    with cloud().sessions() as session:
        directory.project(session, project_id)
        directory.user(session, user_id)
        rows = [directory.role(session, a.role_id) for a in
                directory.assignments(session, user_id=user_id, project_id=project_id)]
        return jsonify(views.collection("roles", [views.role(r) for r in rows],
                                        f"projects/{project_id}/users/{user_id}/roles"))


@blueprint.get("/v3/role_assignments")
def list_assignments() -> Response:
    """Filters ``user.id``, ``scope.project.id``, ``role.id``; ``include_names``.
    Others see their own assignments only."""
    allowed = {"user.id", "scope.project.id", "role.id", "include_names", "effective"}
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise BadInput(f"unsupported filter '{unknown[0]}'", field=unknown[0])
    user_id = request.args.get("user.id")
    if not caller().is_admin:
        if user_id not in (None, caller().user_id):
            raise Forbidden("You are not authorized to list another user's assignments.")
        user_id = caller().user_id
    with cloud().sessions() as session:
        rows = directory.assignments(session, user_id=user_id,
                                     project_id=request.args.get("scope.project.id"),
                                     role_id=request.args.get("role.id"))
        names = None
        if query_bool("include_names"):
            names = {}
            for model in (Role, User, Project):
                names.update({r.id: r.name for r in session.scalars(sa.select(model))})
        return jsonify(views.collection(
            "role_assignments", [views.assignment(a, names) for a in rows], "role_assignments"))
