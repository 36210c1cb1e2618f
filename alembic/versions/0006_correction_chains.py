"""Correction chains: one successor per version, and each later version linked to its chain's root.

A session version may be superseded once: ``ix_session_supersedes_id`` becomes the unique
``uq_session_supersedes_id``, so two concurrent corrections of one version cannot both be stored on
PostgreSQL (SQLite already serialised them). A database that already holds such forks keeps them:
the index then leaves out the rows superseding an already forked version (nothing stored is refused
or lost) and checks every other row; a forked version always has a newer one, so the service refuses
to correct it again anyway. Such a database also keeps the plain ``ix_session_supersedes_id``: a
planner can use the unique index to find a newer version only when a query implies its predicate,
which ``supersedes_id = ...`` does for ``IS NOT NULL`` but not for a list of excluded ids.

``session_chain`` links every later version to the first version of its chain, so events and
telemetry recorded on any version belong to the whole chain and analytics count them on its latest
version. Existing corrections are linked here; triggers link each new one (``store/chains.py``).
The rollup's adverse-event trigger now marks every version of the event's chain, and the days of
chains with corrections are marked for the next refresh, which counts their earlier versions'
adverse events on the latest.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sessionlog.store.append_only import drop_append_only, install_append_only
from sessionlog.store.chains import FILL_EXISTING, drop_chain_triggers, install_chain_triggers
from sessionlog.store.rollup_triggers import (
    drop_day_summary_triggers,
    install_day_summary_triggers,
    mark_every_key_dirty,
)

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FORKED = (
    "SELECT supersedes_id FROM session WHERE supersedes_id IS NOT NULL "
    "GROUP BY supersedes_id HAVING count(*) > 1 ORDER BY supersedes_id"
)
"""The versions that more than one row supersedes (stored before the index existed)."""


def _supersedes_index(*, unique: bool, forked: Sequence[int] = ()) -> None:
    where = "supersedes_id IS NOT NULL"
    if forked:
        where += f" AND supersedes_id NOT IN ({', '.join(str(int(i)) for i in forked)})"
    name = "uq_session_supersedes_id" if unique else "ix_session_supersedes_id"
    with op.batch_alter_table("session", schema=None) as batch_op:
        batch_op.create_index(
            name,
            ["supersedes_id"],
            unique=unique,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "session_chain",
        sa.Column("session_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("root_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["root_id"], ["session.id"], name=op.f("fk_session_chain_root_id_session")
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_session_chain")),
    )
    with op.batch_alter_table("session_chain", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_session_chain_root_id"), ["root_id"], unique=False)
    bind.exec_driver_sql(FILL_EXISTING)
    install_append_only(bind, "session_chain")
    install_chain_triggers(bind)

    drop_day_summary_triggers(bind)
    install_day_summary_triggers(bind, across_chains=True)
    mark_every_key_dirty(bind, corrected_only=True)

    forked = [int(row[0]) for row in bind.exec_driver_sql(FORKED)]
    if not forked:
        with op.batch_alter_table("session", schema=None) as batch_op:
            batch_op.drop_index("ix_session_supersedes_id")
    _supersedes_index(unique=True, forked=forked)


def downgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("session", schema=None) as batch_op:
        batch_op.drop_index("uq_session_supersedes_id")
    indexes = {index["name"] for index in sa.inspect(bind).get_indexes("session")}
    if "ix_session_supersedes_id" not in indexes:  # kept by the upgrade of a forked database
        _supersedes_index(unique=False)

    mark_every_key_dirty(bind, corrected_only=True)
    drop_day_summary_triggers(bind)
    install_day_summary_triggers(bind, across_chains=False)

    drop_chain_triggers(bind)
    drop_append_only(bind, "session_chain")
    with op.batch_alter_table("session_chain", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_chain_root_id"))
    op.drop_table("session_chain")
