"""Day rollup of the dose summary: the rollup table, its dirty marks and the triggers that write them.

Existing history is not summed here: every key of the stored sessions is marked dirty, and the first
summary the rollup answers rebuilds those days through the ordinary refresh (in batches, each its own
short transaction), so there is one definition of a rollup row, not a second copy in a migration.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sessionlog.store.rollup_triggers import (
    drop_day_summary_triggers,
    install_day_summary_triggers,
    mark_every_key_dirty,
)

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "session_day_summary",
        sa.Column("started", sa.Boolean(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("session_count", sa.Integer(), nullable=False),
        sa.Column("duration_sum_s", sa.Float(), nullable=True),
        sa.Column("duration_count", sa.Integer(), nullable=False),
        sa.Column("charge_sum_uc", sa.Float(), nullable=True),
        sa.Column("charge_count", sa.Integer(), nullable=False),
        sa.Column("current_density_sum_ma_cm2", sa.Float(), nullable=True),
        sa.Column("current_density_count", sa.Integer(), nullable=False),
        sa.Column("current_density_max_ma_cm2", sa.Float(), nullable=True),
        sa.Column("on_time_sum_s", sa.Float(), nullable=True),
        sa.Column("adverse_event_count", sa.Integer(), nullable=False),
        sa.Column("aborted_count", sa.Integer(), nullable=False),
        sa.Column("interrupted_count", sa.Integer(), nullable=False),
        sa.Column("out_of_limits_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("started", "day", "modality", name=op.f("pk_session_day_summary")),
    )
    op.create_table(
        "session_day_summary_dirty",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started", sa.Boolean(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("claimed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_day_summary_dirty")),
    )
    with op.batch_alter_table("session_day_summary_dirty", schema=None) as batch_op:
        batch_op.create_index(
            "ix_session_day_summary_dirty_key", ["started", "day", "modality"], unique=False
        )

    bind = op.get_bind()
    # The definition of this revision; 0006 makes adverse events mark their whole chain.
    install_day_summary_triggers(bind, across_chains=False)
    mark_every_key_dirty(bind)


def downgrade() -> None:
    drop_day_summary_triggers(op.get_bind())
    with op.batch_alter_table("session_day_summary_dirty", schema=None) as batch_op:
        batch_op.drop_index("ix_session_day_summary_dirty_key")

    op.drop_table("session_day_summary_dirty")
    op.drop_table("session_day_summary")
