"""Analytics: a covering index for the grouped summaries, and an index to find superseded sessions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUMMARY_INDEX_COLUMNS = [
    "started_at",
    "modality",
    "status",
    "ended_at",
    "out_of_limits",
    "dose_total_charge_uc",
    "dose_on_time_s",
    "dose_max_current_density_ma_cm2",
]


def upgrade() -> None:
    with op.batch_alter_table("session", schema=None) as batch_op:
        batch_op.create_index("ix_session_summary", SUMMARY_INDEX_COLUMNS, unique=False)
        batch_op.create_index(
            "ix_session_supersedes_id",
            ["supersedes_id"],
            unique=False,
            sqlite_where=sa.text("supersedes_id IS NOT NULL"),
            postgresql_where=sa.text("supersedes_id IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("session", schema=None) as batch_op:
        batch_op.drop_index("ix_session_supersedes_id")
        batch_op.drop_index("ix_session_summary")
