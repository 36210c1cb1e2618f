"""Administration from the command line: users, API keys and audit verification.

These commands act on the configured database directly (for the first admin of a PostgreSQL
deployment, for automation, and for checking the audit chain offline); every change they make is
audited like a change through the API, with ``cli`` as the channel.
"""

from __future__ import annotations

import secrets
from typing import Annotated, get_args

import typer
from sqlalchemy import Engine
from sqlmodel import select

from sessionlog.schemas import Role
from sessionlog.security import api_keys
from sessionlog.security.passwords import MIN_PASSWORD_LENGTH, hash_password
from sessionlog.settings import Settings
from sessionlog.store.audit import append_event, verify_chain
from sessionlog.store.database import make_engine, read_only, session_scope
from sessionlog.store.migrations import DatabaseNotMigratedError, ensure_migrated
from sessionlog.store.models import ApiKey, User
from sessionlog.store.types import utc_now

users_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="Create and revoke API keys.", no_args_is_help=True)
audit_app = typer.Typer(help="Check the audit trail.", no_args_is_help=True)

ROLES = get_args(Role)


def _engine() -> Engine:
    settings = Settings()
    engine = make_engine(settings.effective_database_url)
    try:
        ensure_migrated(engine, auto_migrate=settings.should_auto_migrate)
    except DatabaseNotMigratedError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=1) from error
    return engine


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


@users_app.command("create")
def create_user(
    username: Annotated[str, typer.Option(help="Sign-in name.")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")],
    display_name: Annotated[str | None, typer.Option(help="Shown in records.")] = None,
    password: Annotated[
        str | None,
        typer.Option(
            help="Omit to be asked (hidden), or use --generate-password.", hide_input=True
        ),
    ] = None,
    generate_password: Annotated[bool, typer.Option(help="Generate and print a password.")] = False,
    no_password: Annotated[bool, typer.Option(help="An API-key-only account (stations).")] = False,
) -> None:
    """Create a user (the first admin of a deployment, or any account)."""
    if role not in ROLES:
        raise _fail(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if generate_password:
        password = secrets.token_urlsafe(18)
    elif password is None and not no_password:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise _fail(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    engine = _engine()
    try:
        with session_scope(engine) as db:
            if db.exec(select(User).where(User.username == username)).first() is not None:
                raise _fail(f"a user named {username!r} already exists")
            user = User(
                username=username,
                display_name=display_name or username,
                role=role,
                password_hash=hash_password(password) if password else None,
            )
            db.add(user)
            db.flush()
            append_event(
                db,
                actor_id=None,
                actor_via="cli",
                action="create",
                resource="user",
                resource_id=user.id,
                after={"username": username, "role": role},
            )
            user_id = user.id
    finally:
        engine.dispose()
    typer.echo(f"created user {user_id}: {username} ({role})")
    if generate_password:
        typer.echo(f"password (shown once): {password}")


@keys_app.command("create")
def create_key(
    user: Annotated[str, typer.Option(help="Username the key acts as.")],
    name: Annotated[str, typer.Option(help="What the key is for, e.g. 'room 2 station'.")],
) -> None:
    """Create an API key for a user; the key is printed once and stored only as a hash."""
    engine = _engine()
    secret = api_keys.new_key_secret()
    try:
        with session_scope(engine) as db:
            owner = db.exec(select(User).where(User.username == user)).first()
            if owner is None or owner.id is None:
                raise _fail(f"no user named {user!r}")
            key = ApiKey(user_id=owner.id, name=name, secret_hash=api_keys.hash_secret(secret))
            db.add(key)
            db.flush()
            append_event(
                db,
                actor_id=None,
                actor_via="cli",
                action="create",
                resource="api_key",
                resource_id=key.id,
                after={"user_id": owner.id, "name": name},
            )
            assert key.id is not None
            key_id = key.id
    finally:
        engine.dispose()
    typer.echo(f"key {key_id} for {user} ({name}); send it as the X-API-Key header.")
    typer.echo(f"key (shown once): {api_keys.format_key(key_id, secret)}")


@keys_app.command("revoke")
def revoke_key(key_id: Annotated[int, typer.Argument(help="The key's id.")]) -> None:
    """Revoke an API key at once."""
    engine = _engine()
    try:
        with session_scope(engine) as db:
            key = db.get(ApiKey, key_id)
            if key is None:
                raise _fail(f"no key with id {key_id}")
            if key.revoked_at is not None:
                raise _fail(f"key {key_id} was already revoked")
            key.revoked_at = utc_now()
            db.add(key)
            append_event(
                db,
                actor_id=None,
                actor_via="cli",
                action="revoke",
                resource="api_key",
                resource_id=key_id,
            )
    finally:
        engine.dispose()
    typer.echo(f"key {key_id} revoked")


@audit_app.command("verify")
def verify() -> None:
    """Recompute the audit hash chain; exit 1 and name the first broken event if it does not hold."""
    engine = _engine()
    try:
        with session_scope(read_only(engine)) as db:
            report = verify_chain(db)
    finally:
        engine.dispose()
    if report.ok:
        typer.echo(f"audit chain intact: {report.events_checked} events verified")
        return
    typer.secho(
        f"audit chain BROKEN at event {report.first_broken_id}: {report.problem} "
        f"({report.events_checked} events before it verified)",
        err=True,
        fg=typer.colors.RED,
    )
    raise typer.Exit(code=1)
