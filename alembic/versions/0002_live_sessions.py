"""Live sessions: packed telemetry blocks, event sequence numbers, end reason and link errors.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sessionlog.store.append_only import drop_append_only, install_append_only

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "telemetry_block",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("t0", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("offsets_ms", sa.LargeBinary(), nullable=False),
        sa.Column("current_ua", sa.LargeBinary(), nullable=False),
        sa.Column("impedance_ohm", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("n > 0", name=op.f("ck_telemetry_block_not_empty")),
        sa.ForeignKeyConstraint(
            ["session_id"], ["session.id"], name=op.f("fk_telemetry_block_session_id_session")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry_block")),
        sa.UniqueConstraint("session_id", "seq", name="uq_telemetry_block_session_seq"),
    )
    with op.batch_alter_table("telemetry_block", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_telemetry_block_session_id"), ["session_id"], unique=False
        )

    with op.batch_alter_table("session", schema=None) as batch_op:
        batch_op.add_column(sa.Column("end_reason", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("link_errors", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )

    # SQLite's batch mode rebuilds the table, which drops its triggers: take them off and put them back.
    drop_append_only(op.get_bind(), "session_event")
    with op.batch_alter_table("session_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint("uq_session_event_session_seq", ["session_id", "seq"])
    install_append_only(op.get_bind(), "session_event")
    install_append_only(op.get_bind(), "telemetry_block")


def downgrade() -> None:
    drop_append_only(op.get_bind(), "telemetry_block")
    drop_append_only(op.get_bind(), "session_event")
    with op.batch_alter_table("session_event", schema=None) as batch_op:
        batch_op.drop_constraint("uq_session_event_session_seq", type_="unique")
        batch_op.drop_column("seq")
    install_append_only(op.get_bind(), "session_event")

    with op.batch_alter_table("session", schema=None) as batch_op:
        batch_op.drop_column("link_errors")
        batch_op.drop_column("end_reason")

    with op.batch_alter_table("telemetry_block", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_telemetry_block_session_id"))

    op.drop_table("telemetry_block")
