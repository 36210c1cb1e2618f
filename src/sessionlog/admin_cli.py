"""Administration from the command line: users, API keys and audit verification.

These commands act on the configured database directly (for the first admin of a PostgreSQL
deployment, for automation, and for checking the audit chain offline); every change they make is
audited like a change through the API, with ``cli`` as the channel.
"""

from __future__ import annotations

import secrets
from typing import Annotated, get_args

import typer
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Engine
from sqlmodel import select

from sessionlog.cli_errors import fail, load_settings, option_errors
from sessionlog.fields import MAX_DB_INT, ShortText
from sessionlog.schemas import Role, UserCreate
from sessionlog.security import api_keys
from sessionlog.security.passwords import hash_password
from sessionlog.store.audit import append_event, verify_chain
from sessionlog.store.database import make_engine, read_only, session_scope
from sessionlog.store.migrations import ensure_migrated
from sessionlog.store.models import ApiKey, User
from sessionlog.store.types import utc_now

users_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="Create and revoke API keys.", no_args_is_help=True)
audit_app = typer.Typer(help="Check the audit trail.", no_args_is_help=True)

ROLES = get_args(Role)

KEY_NAME: TypeAdapter[str] = TypeAdapter(ShortText)
"""The rule ``POST /keys`` applies to a key's name (``KeyCreate.name``), without the web stack."""


def _engine() -> Engine:
    settings = load_settings()
    engine = make_engine(settings.effective_database_url)
    try:
        ensure_migrated(engine, auto_migrate=settings.should_auto_migrate)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _user_input(
    username: str, display_name: str | None, role: str, password: str | None
) -> UserCreate:
    """The account as ``POST /users`` would take it, or exit naming each option it refuses.

    Validating with the API's own model keeps one rule for a username, whichever way the
    account is made: a name the API refuses (blank, spaced, with control characters, too long,
    not ASCII) cannot be stored from here and then fail to sign in or to show in a record.
    """
    try:
        return UserCreate.model_validate(
            {
                "username": username,
                "display_name": username if display_name is None else display_name,
                "role": role,
                "password": password,
            }
        )
    except ValidationError as error:
        lines = option_errors(error)
        if display_name is None:  # the default copies the username: name only the option given
            lines = [line for line in lines if not line.startswith("--display-name:")]
        raise fail(*lines) from None


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
        raise fail(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    _user_input(username, display_name, role, password)  # before asking for a password
    if generate_password:
        password = secrets.token_urlsafe(18)
    elif password is None and not no_password:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    user_input = _user_input(username, display_name, role, password)
    engine = _engine()
    try:
        with session_scope(engine) as db:
            if db.exec(select(User).where(User.username == username)).first() is not None:
                raise fail(f"a user named {username!r} already exists")
            user = User(
                username=user_input.username,
                display_name=user_input.display_name,
                role=user_input.role,
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
    try:
        KEY_NAME.validate_python(name)
    except ValidationError as error:
        raise fail(*(f"--name: {line}" for line in option_errors(error))) from None
    engine = _engine()
    secret = api_keys.new_key_secret()
    try:
        with session_scope(engine) as db:
            owner = db.exec(select(User).where(User.username == user)).first()
            if owner is None or owner.id is None:
                raise fail(f"no user named {user!r}")
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
def revoke_key(
    key_id: Annotated[int, typer.Argument(help="The key's id.", min=1, max=MAX_DB_INT)],
) -> None:
    """Revoke an API key at once."""
    engine = _engine()
    try:
        with session_scope(engine) as db:
            key = db.get(ApiKey, key_id)
            if key is None:
                raise fail(f"no key with id {key_id}")
            if key.revoked_at is not None:
                raise fail(f"key {key_id} was already revoked")
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
