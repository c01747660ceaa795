"""identity: domains, users, roles, role assignments and tokens

Revision ID: c0005
Revises: c0004
Create Date: 2026-11-22 20:00:00.000000

Projects gain a domain, a description and an enabled flag. Rows made by the static
tokens of earlier versions stay (they are the projects' ids servers refer to) and
join the default domain; ``cloud_manager.identity.bootstrap`` gives the admin project
its admin user at the next start.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import ironbark.db

revision: str = "c0005"
down_revision: str | None = "c0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHEN = ironbark.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "domains",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_domains")),
        sa.UniqueConstraint("name", name=op.f("uq_domains_name")),
    )
    domains = sa.table("domains", sa.column("id", sa.String), sa.column("name", sa.String),
                       sa.column("description", sa.Text), sa.column("enabled", sa.Boolean),
                       sa.column("created_at", _WHEN))
    op.bulk_insert(domains, [{"id": "default", "name": "Default",
                              "description": "The default domain", "enabled": True,
                              "created_at": ironbark.db.utcnow()}])
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("domain_id", sa.String(length=64), nullable=False,
                                      server_default="default"))
        batch_op.add_column(sa.Column("description", sa.Text(), nullable=False,
                                      server_default=""))
        batch_op.add_column(sa.Column("enabled", sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
        batch_op.create_foreign_key(op.f("fk_projects_domain_id_domains"), "domains",
                                    ["domain_id"], ["id"])
    op.create_table(
        "users",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("domain_id", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("default_project_id", sa.String(length=36), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("password_changed_at", _WHEN, nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["domain_id"], ["domains.id"],
                                name=op.f("fk_users_domain_id_domains")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("domain_id", "name", name="uq_users_domain_name"),
    )
    op.create_table(
        "roles",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roles")),
        sa.UniqueConstraint("name", name=op.f("uq_roles_name")),
    )
    op.create_table(
        "role_assignments",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("role_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_role_assignments_user_id_users")),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE",
                                name=op.f("fk_role_assignments_project_id_projects")),
        sa.ForeignKeyConstraint(["role_id"], ["roles.id"], ondelete="CASCADE",
                                name=op.f("fk_role_assignments_role_id_roles")),
        sa.PrimaryKeyConstraint("user_id", "project_id", "role_id",
                                name=op.f("pk_role_assignments")),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=True),
        sa.Column("audit_id", sa.String(length=32), nullable=False),
        sa.Column("methods", sa.String(length=64), nullable=False),
        sa.Column("issued_at", _WHEN, nullable=False),
        sa.Column("expires_at", _WHEN, nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_tokens_user_id_users")),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE",
                                name=op.f("fk_tokens_project_id_projects")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tokens")),
    )
    op.create_index(op.f("ix_tokens_user_id"), "tokens", ["user_id"])
    op.create_index(op.f("ix_tokens_expires_at"), "tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_table("tokens")
    op.drop_table("role_assignments")
    op.drop_table("roles")
    op.drop_table("users")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_projects_domain_id_domains"), type_="foreignkey")
        batch_op.drop_column("enabled")
        batch_op.drop_column("description")
        batch_op.drop_column("domain_id")
    op.drop_table("domains")
