"""The ``sessionlog`` command line: run the service and manage its database.

Every command reads the same settings as the service (``SESSIONLOG_`` variables, optional TOML file),
so ``sessionlog db upgrade`` migrates exactly the database ``sessionlog serve`` will open.
"""

from __future__ import annotations

from typing import Annotated

import typer

import sessionlog
from sessionlog.settings import Settings
from sessionlog.store import migrations
from sessionlog.store.database import make_engine

app = typer.Typer(
    help="Treatment-session logging for electrical stimulators.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Inspect and migrate the database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


@app.command()
def version() -> None:
    """Print the installed version."""
    typer.echo(sessionlog.__version__)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port to listen on.")] = None,
) -> None:
    """Run the HTTP API (the embedded SQLite default is created and migrated on first start)."""
    import uvicorn

    from sessionlog.api.app import create_app

    settings = Settings()
    engine = make_engine(settings.effective_database_url)
    try:
        migrations.ensure_migrated(engine, auto_migrate=settings.should_auto_migrate)
    except migrations.DatabaseNotMigratedError as error:
        raise _fail(str(error)) from error
    finally:
        engine.dispose()
    where = settings.effective_database_url
    typer.echo(f"database: {make_engine(where).url.render_as_string(hide_password=True)}")
    bind_host = host or settings.host
    bind_port = settings.port if port is None else port
    typer.echo(f"API docs: http://{bind_host}:{bind_port}/api/v1/docs")
    uvicorn.run(create_app(settings), host=bind_host, port=bind_port, log_level="info")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate the configured database to the latest schema (or to REVISION)."""
    engine = make_engine(Settings().effective_database_url)
    try:
        before = migrations.current_revision(engine)
        migrations.upgrade(engine, revision)
        after = migrations.current_revision(engine)
    finally:
        engine.dispose()
    typer.echo(f"database upgraded: {before or 'empty'} -> {after}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base.")],
) -> None:
    """Migrate the configured database back to REVISION (data in dropped tables is lost)."""
    engine = make_engine(Settings().effective_database_url)
    try:
        migrations.downgrade(engine, revision)
        after = migrations.current_revision(engine)
    finally:
        engine.dispose()
    typer.echo(f"database downgraded to {after or 'empty'}")


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the configured database and whether it is current."""
    engine = make_engine(Settings().effective_database_url)
    try:
        current = migrations.current_revision(engine)
        head = migrations.head_revision(engine)
    finally:
        engine.dispose()
    state = "up to date" if current == head else "needs `sessionlog db upgrade`"
    typer.echo(f"current: {current or 'empty'}\nhead: {head}\n{state}")
