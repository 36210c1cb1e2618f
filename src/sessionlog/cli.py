"""The ``sessionlog`` command line: run the service and manage its database.

Every command reads the same settings as the service (``SESSIONLOG_`` variables, optional TOML file),
so ``sessionlog db upgrade`` migrates exactly the database ``sessionlog serve`` will open. The commands
that approve plans or serve the API load the configured site policy first, so a missing or invalid
policy file ends them with one line naming the file and the reason, never with a traceback and never
by running without the site layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import BaseModel

import sessionlog
from sessionlog.admin_cli import audit_app, keys_app, users_app
from sessionlog.analytics.cli import export, seed
from sessionlog.cli_errors import (
    MAX_PORT,
    CleanErrorsGroup,
    fail,
    file_errors,
    host_port,
    load_settings,
)
from sessionlog.conformance.cli import driver_app
from sessionlog.safety import (
    AmplitudeRange,
    SafetyWarning,
    SitePolicy,
    SitePolicyError,
    Violation,
    WarningCode,
)
from sessionlog.safety.findings import format_current
from sessionlog.settings import Settings
from sessionlog.store import migrations
from sessionlog.store.database import make_engine

app = typer.Typer(
    cls=CleanErrorsGroup,
    help="Treatment-session logging for electrical stimulators.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Inspect and migrate the database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
devices_app = typer.Typer(help="Find and inspect stimulators.", no_args_is_help=True)
app.add_typer(devices_app, name="devices")
limits_app = typer.Typer(help="Check plans against the limits engine.", no_args_is_help=True)
app.add_typer(limits_app, name="limits")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(driver_app, name="driver")
app.command()(export)
app.command()(seed)


def _require_site_policy(settings: Settings) -> SitePolicy | None:
    """The configured site policy (None if there is none), or exit with why it cannot be used."""
    from sessionlog.sessions.approval import site_policy

    try:
        return site_policy(settings)
    except SitePolicyError as error:
        raise _site_policy_failure(error) from error


def _site_policy_failure(error: SitePolicyError) -> typer.Exit:
    """One wording for every command, naming the file and the reason the engine's loader gave."""
    return fail(
        f"site policy {error}; nothing is approved without it "
        "(fix the file or the site_policy_path setting)"
    )


_UNITS_BY_SUFFIX = (
    ("_ma_per_cm2", "mA/cm²"),
    ("_w_per_cm2", "W/cm²"),
    ("_ua", "µA"),
    ("_ma", "mA"),
    ("_uc", "µC"),
    ("_mj", "mJ"),
    ("_us", "µs"),
    ("_ms", "ms"),
    ("_hz", "Hz"),
    ("_cm2", "cm²"),
    ("_s", "s"),
    ("_v", "V"),
)
"""Unit suffixes of plan and dose field names (every number names its unit), longest first."""


def _with_unit(value: float | str, field: str) -> str:
    """A finding's raw value in the unit its field name states, e.g. ``130000 µA``."""
    if isinstance(value, str):
        return value
    number = f"{value:.6g}" if isinstance(value, float) else str(value)
    unit = next((unit for suffix, unit in _UNITS_BY_SUFFIX if field.endswith(suffix)), "")
    return f"{number} {unit}".rstrip()


def _finding_lines(finding: Violation | SafetyWarning, state: str = "") -> list[str]:
    """A violation or warning as a practitioner reads it: layer, field, message, then the figures.

    The message is the engine's sentence; below it come the value and the bound (for a warning,
    the threshold) as the engine compared them, and where the bound comes from, so a refusal can
    be checked against its source without reading the code.
    """
    kind = "violation" if isinstance(finding, Violation) else "warning"
    bound_name, bound = (
        ("bound", finding.bound)
        if isinstance(finding, Violation)
        else ("threshold", finding.threshold)
    )
    lines = [f"  {kind} [{finding.layer}] {finding.field}: {finding.message}{state}"]
    figures = f"value {_with_unit(finding.value, finding.field)}"
    if bound is not None:
        figures += f", {bound_name} {_with_unit(bound, finding.field)}"
    lines.append(f"      {figures}")
    if finding.source:
        lines.append(f"      source: {finding.source}")
    return lines


@app.command()
def version() -> None:
    """Print the installed version."""
    typer.echo(sessionlog.__version__)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[
        int | None,
        typer.Option(help="TCP port to listen on (0: any free port).", min=0, max=MAX_PORT),
    ] = None,
) -> None:
    """Run the HTTP API (the embedded SQLite default is created and migrated on first start)."""
    import uvicorn

    from sessionlog.api.app import create_app

    settings = load_settings()
    _require_site_policy(settings)
    engine = make_engine(settings.effective_database_url)
    try:
        migrations.ensure_migrated(engine, auto_migrate=settings.should_auto_migrate)
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
    engine = make_engine(load_settings().effective_database_url)
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
    engine = make_engine(load_settings().effective_database_url)
    try:
        migrations.downgrade(engine, revision)
        after = migrations.current_revision(engine)
    finally:
        engine.dispose()
    typer.echo(f"database downgraded to {after or 'empty'}")


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the configured database and whether it is current."""
    engine = make_engine(load_settings().effective_database_url)
    try:
        current = migrations.current_revision(engine)
        head = migrations.head_revision(engine)
    finally:
        engine.dispose()
    state = "up to date" if current == head else "needs `sessionlog db upgrade`"
    typer.echo(f"current: {current or 'empty'}\nhead: {head}\n{state}")


@db_app.command("refresh-summary")
def db_refresh_summary() -> None:
    """Bring the per-day dose summary up to date now, instead of at the first summary query.

    After a migration or a bulk import every affected day is marked; the first analytics summary
    would rebuild them. Run this at deploy time to pay that once, ahead of the first analyst.
    """
    from sessionlog.analytics.day_summary import refresh_day_summary

    settings = load_settings()
    engine = make_engine(settings.effective_database_url)
    try:
        # As export and seed do: a stale schema is named, not met with an SQL error.
        migrations.ensure_migrated(engine, auto_migrate=settings.should_auto_migrate)
        report = refresh_day_summary(engine)
    finally:
        engine.dispose()
    typer.echo(f"day summary: {report.keys} days rebuilt in {report.batches} transactions")


@devices_app.command("scan")
def devices_scan() -> None:
    """List serial ports with their USB ids and the installed drivers that claim them."""
    from sessionlog.hal.discovery import scan_ports
    from sessionlog.hal.registry import available_drivers

    typer.echo(f"installed drivers: {', '.join(available_drivers()) or 'none'}")
    scan = scan_ports()
    for name, reason in scan.unloadable_drivers.items():
        typer.echo(f"driver {name} could not be loaded and claims no port: {reason}")
    if not scan.ports:
        typer.echo("no serial ports found")
    for port in scan.ports:
        usb = (
            f"{port.vid:04x}:{port.pid:04x}"
            if port.vid is not None and port.pid is not None
            else "-"
        )
        claimed = ", ".join(port.drivers) or "no driver claims it"
        typer.echo(f"{port.device}\t{usb}\t{port.description}\t{claimed}")


@app.command()
def simulate(
    tcp: Annotated[
        str | None,
        typer.Option(help="Listen on HOST:PORT (port 0: any free port).", callback=host_port),
    ] = None,
    pty: Annotated[bool, typer.Option(help="Serve on a new pseudo-terminal instead.")] = False,
    options: Annotated[
        str, typer.Option(help="Emulator options as in a sim:// URL, e.g. 'channels=2&seed=1'.")
    ] = "",
) -> None:
    """Run the simulated stimulator in this process; the first line printed is the URL to open."""
    from sessionlog_drivers.simulated.__main__ import main as run_simulator

    where = tcp or "127.0.0.1:0"
    arguments = ["--pty"] if pty else ["--tcp", where]
    try:
        code = run_simulator([*arguments, "--options", options])
    except OSError as error:  # only a bind or a pty can fail here, before the URL is printed
        what = "open a pseudo-terminal" if pty else f"listen on {where}"
        raise fail(
            f"cannot {what}: {error.strerror or error}; give an address of this machine "
            "and a free port, e.g. 127.0.0.1:0"
        ) from None
    raise typer.Exit(code=code)


@limits_app.command("check")
def limits_check(
    plan_file: Annotated[
        Path, typer.Argument(help="A stimulation plan as JSON.", exists=True, dir_okay=False)
    ],
    capabilities_file: Annotated[
        Path | None,
        typer.Option(
            "--capabilities", help="Device capabilities as JSON.", exists=True, dir_okay=False
        ),
    ] = None,
    acknowledge: Annotated[
        list[WarningCode] | None,
        typer.Option(help="A warning code to acknowledge (repeatable)."),
    ] = None,
) -> None:
    """Print the verdict and dose figures for a plan; exit 1 if it is not approved."""
    from sessionlog.safety import DeviceCapabilities, StimulationPlan
    from sessionlog.sessions.approval import ENGINE

    plan = _read_model(StimulationPlan, plan_file)
    capabilities = _read_model(DeviceCapabilities, capabilities_file) if capabilities_file else None
    policy = _require_site_policy(load_settings())
    verdict = ENGINE.approve(
        plan,
        capabilities=capabilities,
        site_policy=policy,
        acknowledged_warnings=frozenset(acknowledge or ()),
    )
    typer.echo(f"verdict: {'APPROVED' if verdict.approved else 'REFUSED'}")
    typer.echo(f"layers checked: {', '.join(verdict.layers)}")
    for violation in verdict.violations:
        typer.echo("\n".join(_finding_lines(violation)))
    for warning in verdict.warnings:
        state = "acknowledged" if warning.acknowledged else "needs --acknowledge " + warning.code
        typer.echo("\n".join(_finding_lines(warning, f" ({state})")))
    dose = verdict.dose
    typer.echo("dose:")
    typer.echo(f"  total charge      {dose.total_charge_uc:.6g} µC")
    typer.echo(f"  on-time           {dose.on_time_s:.6g} s")
    typer.echo(f"  current density   {dose.max_current_density_ma_per_cm2:.4g} mA/cm² (max)")
    typer.echo(f"  power density     {dose.max_power_density_w_per_cm2:.4g} W/cm² (max)")
    for figures in dose.channels:
        typer.echo(
            f"  channel {figures.channel}: phase charge {figures.phase_charge_uc:.4g} µC, "
            f"rms {figures.rms_current_ua / 1000:.4g} mA, "
            f"pulse energy {figures.pulse_energy_mj:.4g} mJ at 500 Ω"
        )
    ranges = (
        None if verdict.approved_plan is None else ENGINE.amplitude_ranges(verdict.approved_plan)
    )
    if ranges:
        typer.echo("live changes passing every layer with no finding:")
        for number, allowed in ranges.items():
            typer.echo(f"  channel {number}: {_amplitude_range_text(allowed)}")
    if not verdict.approved:
        raise typer.Exit(code=1)


_Model = TypeVar("_Model", bound=BaseModel)


def _read_model(model: type[_Model], path: Path) -> _Model:
    """A JSON input file as ``model``, or exit with one ``FILE: field: reason`` line per error."""
    from pydantic import ValidationError

    try:
        return model.model_validate_json(path.read_bytes())
    except ValidationError as error:
        raise fail(*file_errors(path, error)) from None


def _amplitude_range_text(allowed: AmplitudeRange) -> str:
    zero = "0" if allowed.zero_passes else ""
    if not allowed.above_zero:
        return zero or "none"
    span = (
        f"{format_current(allowed.floor_ua)} to {format_current(allowed.ceiling_ua)} "
        f"in steps of {format_current(allowed.step_ua)}"
    )
    return f"{zero} or {span}" if zero else span


@app.command()
def run(
    device: Annotated[str, typer.Option(help="Serial URL: /dev/ttyUSB0, socket://…, sim://…")],
    plan_file: Annotated[
        Path,
        typer.Option("--plan", help="The stimulation plan (JSON).", exists=True, dir_okay=False),
    ],
    driver: Annotated[str, typer.Option(help="Driver name (see `devices scan`).")] = "simulated",
    client: Annotated[str, typer.Option(help="Client code (created if new).")] = "C-0001",
    practitioner: Annotated[
        str, typer.Option(help="Practitioner username (created if new).")
    ] = "practitioner",
    acknowledge: Annotated[
        list[WarningCode] | None,
        typer.Option(help="A warning code to acknowledge (repeatable)."),
    ] = None,
) -> None:
    """Run and record one session on a device with a live view; Ctrl-C stops output, then exits."""
    from rich.console import Console

    from sessionlog.hal import HalError
    from sessionlog.live_view import run_session
    from sessionlog.safety import StimulationPlan
    from sessionlog.sessions.live import PlanRefusedError

    plan = _read_model(StimulationPlan, plan_file)
    settings = load_settings()
    _require_site_policy(settings)
    try:
        final = run_session(
            settings,
            url=device,
            driver=driver,
            plan=plan,
            client_code=client,
            practitioner=practitioner,
            acknowledged_warnings=frozenset(acknowledge or ()),
            console=Console(),
        )
    except PlanRefusedError as refused:
        raise fail("plan refused:\n  " + "\n  ".join(refused.verdict.reasons)) from refused
    except SitePolicyError as error:  # the file broke after the check above
        raise _site_policy_failure(error) from error
    except HalError as error:
        raise fail(str(error)) from error
    except KeyboardInterrupt:
        raise typer.Exit(code=130) from None
    if final != "completed":
        raise typer.Exit(code=1)


@app.command()
def demo(
    duration: Annotated[
        int, typer.Option(help="Length of the demo session in seconds.", min=5)
    ] = 20,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[
        int | None, typer.Option(help="TCP port (0: any free port).", min=0, max=MAX_PORT)
    ] = None,
    serve: Annotated[
        bool, typer.Option(help="Keep serving the API after the demo session.")
    ] = True,
) -> None:
    """Serve the API with a simulated device and run one recorded demo session through it."""
    from rich.console import Console

    from sessionlog.live_view import run_demo

    settings = load_settings()
    _require_site_policy(settings)
    engine = make_engine(settings.effective_database_url)
    try:
        migrations.ensure_migrated(engine, auto_migrate=settings.should_auto_migrate)
    finally:
        engine.dispose()
    try:
        final = run_demo(
            settings,
            host=host or settings.host,
            port=settings.port if port is None else port,
            serve=serve,
            duration_s=duration,
            console=Console(),
        )
    except KeyboardInterrupt:
        raise typer.Exit(code=0) from None
    if final != "completed":
        raise typer.Exit(code=1)
