"""Core records: users, clients, devices, programs, sessions, channels and session events.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sessionlog.store.append_only import (
    drop_append_only,
    drop_append_only_function,
    install_append_only,
)

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "app_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "role IN ('practitioner', 'integrator', 'analyst', 'admin')",
            name=op.f("ck_app_user_role_valid"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
        sa.UniqueConstraint("username", name=op.f("uq_app_user_username")),
    )
    op.create_table(
        "client",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("contraindications", sa.JSON(), nullable=False),
        sa.Column("prescription", sa.JSON(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client")),
        sa.UniqueConstraint("code", name=op.f("uq_client_code")),
    )
    op.create_table(
        "device",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("driver", sa.String(length=64), nullable=False),
        sa.Column("serial_number", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("firmware_version", sa.String(length=64), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("capabilities", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device")),
        sa.UniqueConstraint("driver", "serial_number", name="uq_device_driver_serial"),
    )
    op.create_table(
        "program",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("duration_s", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "modality IN ('ems', 'microcurrent')", name=op.f("ck_program_modality_valid")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_program")),
        sa.UniqueConstraint("name", name=op.f("uq_program_name")),
    )
    op.create_table(
        "session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("practitioner_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=True),
        sa.Column("supersedes_id", sa.Integer(), nullable=True),
        sa.Column("program_name", sa.String(length=200), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("body_site", sa.String(length=32), nullable=False),
        sa.Column("side", sa.String(length=16), nullable=True),
        sa.Column("electrode_area_cm2", sa.Float(), nullable=False),
        sa.Column("planned_duration_s", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("out_of_limits", sa.Boolean(), nullable=False),
        sa.Column("violations", sa.JSON(), nullable=False),
        sa.Column("dose_total_charge_uc", sa.Float(), nullable=True),
        sa.Column("dose_on_time_s", sa.Float(), nullable=True),
        sa.Column("dose_max_current_density_ma_cm2", sa.Float(), nullable=True),
        sa.Column("dose_max_power_density_w_cm2", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "body_site IN ('head_transcranial', 'eyes', 'forehead', 'face', 'cheek', 'jaw', 'mouth', 'neck_anterior', 'neck_posterior', 'shoulder', 'upper_arm', 'forearm', 'hand', 'chest_transthoracic', 'chest_unilateral', 'upper_back', 'lower_back', 'abdomen', 'gluteal', 'thigh_anterior', 'thigh_posterior', 'knee', 'calf', 'shin', 'foot')",
            name=op.f("ck_session_body_site_valid"),
        ),
        sa.CheckConstraint(
            "modality IN ('ems', 'microcurrent')", name=op.f("ck_session_modality_valid")
        ),
        sa.CheckConstraint("mode IN ('recorded', 'live')", name=op.f("ck_session_mode_valid")),
        sa.CheckConstraint(
            "status IN ('planned', 'running', 'paused', 'completed', 'stopped', 'aborted', 'interrupted', 'entered_in_error')",
            name=op.f("ck_session_status_valid"),
        ),
        sa.CheckConstraint(
            "electrode_area_cm2 > 0", name=op.f("ck_session_electrode_area_positive")
        ),
        sa.CheckConstraint(
            "ended_at IS NULL OR ended_at >= started_at", name=op.f("ck_session_end_after_start")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["client.id"], name=op.f("fk_session_client_id_client")
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["device.id"], name=op.f("fk_session_device_id_device")
        ),
        sa.ForeignKeyConstraint(
            ["practitioner_id"], ["app_user.id"], name=op.f("fk_session_practitioner_id_app_user")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["program.id"], name=op.f("fk_session_program_id_program")
        ),
        sa.ForeignKeyConstraint(
            ["supersedes_id"], ["session.id"], name=op.f("fk_session_supersedes_id_session")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session")),
    )
    with op.batch_alter_table("session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_session_body_site"), ["body_site"], unique=False)
        batch_op.create_index(batch_op.f("ix_session_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_session_device_id"), ["device_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_session_modality"), ["modality"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_session_out_of_limits"), ["out_of_limits"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_session_practitioner_id"), ["practitioner_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_session_program_id"), ["program_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_session_started_at"), ["started_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_session_status"), ["status"], unique=False)

    op.create_table(
        "session_channel",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("amplitude_ua", sa.Integer(), nullable=False),
        sa.Column("pulse_width_us", sa.Integer(), nullable=False),
        sa.Column("frequency_hz", sa.Float(), nullable=False),
        sa.Column("waveform", sa.String(length=16), nullable=False),
        sa.Column("phase_type", sa.String(length=32), nullable=False),
        sa.Column("polarity", sa.String(length=16), nullable=False),
        sa.Column("ramp_up_s", sa.Float(), nullable=False),
        sa.Column("ramp_down_s", sa.Float(), nullable=False),
        sa.Column("on_time_s", sa.Float(), nullable=True),
        sa.Column("off_time_s", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "phase_type IN ('biphasic_symmetric', 'biphasic_asymmetric', 'monophasic')",
            name=op.f("ck_session_channel_phase_type_valid"),
        ),
        sa.CheckConstraint(
            "polarity IN ('positive', 'negative', 'alternating')",
            name=op.f("ck_session_channel_polarity_valid"),
        ),
        sa.CheckConstraint(
            "waveform IN ('rectangular', 'sine', 'triangular', 'dc')",
            name=op.f("ck_session_channel_waveform_valid"),
        ),
        sa.CheckConstraint(
            "amplitude_ua >= 0", name=op.f("ck_session_channel_amplitude_nonnegative")
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["session.id"], name=op.f("fk_session_channel_session_id_session")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_channel")),
        sa.UniqueConstraint("session_id", "channel", name="uq_session_channel_session_channel"),
    )
    with op.batch_alter_table("session_channel", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_session_channel_session_id"), ["session_id"], unique=False
        )

    op.create_table(
        "session_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["app_user.id"], name=op.f("fk_session_event_actor_id_app_user")
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["session.id"], name=op.f("fk_session_event_session_id_session")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_event")),
    )
    with op.batch_alter_table("session_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_session_event_session_id"), ["session_id"], unique=False
        )

    install_append_only(op.get_bind(), "session_event")


def downgrade() -> None:
    drop_append_only(op.get_bind(), "session_event")
    drop_append_only_function(op.get_bind())
    with op.batch_alter_table("session_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_event_session_id"))

    op.drop_table("session_event")
    with op.batch_alter_table("session_channel", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_channel_session_id"))

    op.drop_table("session_channel")
    with op.batch_alter_table("session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_status"))
        batch_op.drop_index(batch_op.f("ix_session_started_at"))
        batch_op.drop_index(batch_op.f("ix_session_program_id"))
        batch_op.drop_index(batch_op.f("ix_session_practitioner_id"))
        batch_op.drop_index(batch_op.f("ix_session_out_of_limits"))
        batch_op.drop_index(batch_op.f("ix_session_modality"))
        batch_op.drop_index(batch_op.f("ix_session_device_id"))
        batch_op.drop_index(batch_op.f("ix_session_client_id"))
        batch_op.drop_index(batch_op.f("ix_session_body_site"))

    op.drop_table("session")
    op.drop_table("program")
    op.drop_table("device")
    op.drop_table("client")
    op.drop_table("app_user")
