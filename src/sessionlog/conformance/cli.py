"""``sessionlog driver ...``: the command-line side of the driver SDK.

A ``typer`` sub-application that the main command line mounts as ``driver``; it only parses
arguments and reports, the work is in ``skeleton``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sessionlog.conformance.skeleton import SkeletonError, SkeletonNames, write_skeleton

driver_app = typer.Typer(help="Write and check stimulator drivers.", no_args_is_help=True)


@driver_app.callback()
def driver_commands() -> None:
    """Write and check stimulator drivers."""


@driver_app.command("new")
def new_driver(
    name: Annotated[str, typer.Argument(help="Driver name: lower-case letters and digits.")],
    directory: Annotated[
        Path, typer.Option("--directory", "-d", help="Where to create sessionlog-NAME/.")
    ] = Path(),
) -> None:
    """Write a working driver package (driver, emulator, entry point, tests) to start from."""
    try:
        written = write_skeleton(name, directory)
    except SkeletonError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=1) from error
    names = SkeletonNames.for_name(name)
    root = directory / names.distribution
    typer.echo(f"wrote {root}/")
    for path in written:
        typer.echo(f"  {path.relative_to(root)}")
    typer.echo(
        "\nnext:\n"
        f"  cd {root}\n"
        '  python -m pip install -e ".[test]"\n'
        "  python -m pytest            # the conformance contract against the emulator\n"
        "then replace the placeholder protocol with your device's; see docs/writing-a-driver.md"
    )
