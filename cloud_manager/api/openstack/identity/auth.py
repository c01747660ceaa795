"""``/identity/v3/auth``: sign in (password or token), validate, revoke; the caller's
projects and catalog.

Scope as Keystone decides it: an explicit ``scope.project``; ``"unscoped"``; or,
with no scope, the user's default project when they have a role there, else none.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from cloud_manager.api.openstack.common import (
    base_url,
    caller,
    cloud,
    field,
    json_body,
    member,
)
from cloud_manager.api.openstack.identity import blueprint, views
from cloud_manager.db.models import Project
from cloud_manager.errors import BadInput, Forbidden, NotFound, Unauthorized
from cloud_manager.identity import catalog, directory, tokens


@blueprint.post("/v3/auth/tokens")
def issue_token() -> tuple[Response, int]:
    auth = member(json_body(), "auth", "auth")
    identity = member(auth, "identity", "auth.identity")
    methods = field(identity, "methods", list, "auth.identity", required=True)
    if not methods or not all(m in ("password", "token") for m in methods):
        raise BadInput("field 'auth.identity.methods': give [\"password\"] or [\"token\"]",
                       field="auth.identity.methods")
    options = cloud().config.identity
    with cloud().sessions.begin() as session:
        expires_at = None
        if "password" in methods:
            user = _password_user(session, member(identity, "password", "auth.identity.password"))
        else:
            given = member(identity, "token", "auth.identity.token")
            secret = field(given, "id", str, "auth.identity.token", required=True)
            found = tokens.validate(session, secret)
            if found is None:
                raise Unauthorized(tokens.NOT_AUTHENTICATED)
            user, expires_at = found.user, found.token.expires_at
        project = _scope(session, auth.get("scope"), user)
        secret, issued = tokens.issue(session, user, project, options.token_ttl, methods,
                                      expires_at=expires_at)
        body = views.token(session, issued, "nocatalog" not in request.args, options.region)
    answer = jsonify(body)
    answer.headers["X-Subject-Token"] = secret
    return answer, 201


def _password_user(session: Any, password: dict[str, Any]) -> Any:
    path = "auth.identity.password.user"
    given = member(password, "user", path)
    secret = field(given, "password", str, path, required=True)
    domain = field(given, "domain", dict, path, default={})
    user = tokens.find_user(
        session, user_id=field(given, "id", str, path),
        name=field(given, "name", str, path),
        domain_id=field(domain, "id", str, f"{path}.domain"),
        domain_name=field(domain, "name", str, f"{path}.domain"))
    if given.get("id") is None and given.get("name") is None:
        raise BadInput(f"field '{path}': give the user's 'id', or 'name' and 'domain'",
                       field=path)
    return tokens.check_password(session, user, secret)


def _scope(session: Any, scope: Any, user: Any) -> Project | None:
    if scope == "unscoped":
        return None
    if scope is None:
        if user.default_project_id and tokens.roles_on(session, user.id,
                                                       user.default_project_id):
            return session.get(Project, user.default_project_id)
        return None
    if not isinstance(scope, dict) or set(scope) - {"project"}:
        raise BadInput("field 'auth.scope': only a project scope (or \"unscoped\") is "
                       "supported", field="auth.scope")
    ref = member(scope, "project", "auth.scope.project")
    project = directory.project_by_ref(session, ref)
    if project is None:
        raise Unauthorized(f"{tokens.NOT_AUTHENTICATED} (no such project, or no role on it)")
    return project


def _subject(session: Any) -> tokens.Validated:
    """The token named by X-Subject-Token, which the caller may look at: its own, or any
    for an admin."""
    secret = request.headers.get("X-Subject-Token", "").strip()
    if not secret:
        raise BadInput("header 'X-Subject-Token' names the token to check", field="X-Subject-Token")
    found = tokens.validate(session, secret)
    if found is None:
        raise NotFound("Could not find token: the token is unknown, expired or revoked.")
    if found.user.id != caller().user_id and not caller().is_admin:
        raise Forbidden("You are not authorized to perform the requested action: identity:"
                        "validate_token.")
    return found


@blueprint.route("/v3/auth/tokens", methods=["GET", "HEAD"])
def validate_token() -> Response:
    with cloud().sessions() as session:
        found = _subject(session)
        body = views.token(session, found, "nocatalog" not in request.args,
                           cloud().config.identity.region)
    answer = jsonify(body)
    answer.headers["X-Subject-Token"] = request.headers["X-Subject-Token"].strip()
    return answer


@blueprint.delete("/v3/auth/tokens")
def revoke_token() -> tuple[str, int]:
    with cloud().sessions.begin() as session:
        found = _subject(session)
        tokens.revoke(session, found.token)
    return "", 204


@blueprint.get("/v3/auth/projects")
def my_projects() -> Response:
    with cloud().sessions() as session:
        rows = directory.user_projects(session, caller().user_id)
        return jsonify(views.collection("projects", [views.project(p) for p in rows],
                                        "auth/projects"))


@blueprint.get("/v3/auth/catalog")
def my_catalog() -> Response:
    if not caller().scoped:
        raise Forbidden("an unscoped token has no catalog")
    return jsonify({"catalog": catalog.catalog(base_url(), cloud().config.identity.region),
                    "links": {"self": f"{base_url()}/identity/v3/auth/catalog",
                              "previous": None, "next": None}})
