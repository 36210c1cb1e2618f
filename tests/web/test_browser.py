"""The pages in a real browser: Chromium (Debian's package) driven by Playwright over a real server.

One practitioner's whole session (sign in, connect the simulated stimulator, a refused plan and its
reason, an approved plan, start, the plot moving, an intensity step, Escape, the stopped record) and
the analyst's overview, with a screenshot of each page in ``test-artifacts/web/``. Skipped, with the
reason, where Chromium or the Playwright package is not installed.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from sessionlog.api.app import create_app
from sessionlog.settings import Settings
from sessionlog.store.database import make_engine, session_scope
from sessionlog.store.models import Client
from tests.conftest import create_user
from tests.web.conftest import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed"
)
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[str]:
    """A real uvicorn server on 127.0.0.1 with the pages, over a migrated temporary SQLite file."""
    root = tmp_path_factory.mktemp("web-server")
    database = root / "sessionlog.sqlite3"
    shutil.copyfile(sqlite_template, database)
    url = f"sqlite:///{database}"
    engine = make_engine(url)
    create_user(engine, "pia", "practitioner", PASSWORD)
    create_user(engine, "ada", "analyst", PASSWORD)
    with session_scope(engine) as db:
        db.add(Client(code="C-0101", contraindications=["metal_implant_near_site"]))
        db.add(Client(code="C-0102"))
    engine.dispose()
    app = create_app(Settings(database_url=url, data_dir=root / "data", auto_migrate=False))
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        yield launched
        launched.close()


def new_page(browser: Any, width: int = 1280, height: int = 800) -> Any:
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(8000)
    return context.new_page()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/app/sign-in")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/app/**")


def points(page: Any) -> int:
    return int(page.locator("#current-plot").get_attribute("data-points") or 0)


def test_practitioner_runs_watches_and_stops_a_session(server: str, browser: Any) -> None:
    page = new_page(browser)
    page.goto(f"{server}/app/sign-in")
    shot(page, "01-sign-in")
    sign_in(page, server, "pia")

    # Today: connect the simulated stimulator through the page.
    page.get_by_label("Address").fill("sim://?channels=2&seed=7")
    page.get_by_role("button", name="Connect device").click()
    page.wait_for_selector("#devices tr[data-device-id]")
    shot(page, "02-today")

    page.get_by_role("link", name="Clients").click()
    page.get_by_role("link", name="C-0101").click()
    assert "metal implant near site" in page.locator("#contraindications").inner_text()
    shot(page, "03-client")

    # New session: a refused plan shows the engine's reason and cannot be created.
    page.get_by_role("link", name="New session", exact=True).first.click()
    page.get_by_label("Client", exact=True).select_option(label="C-0102")
    page.get_by_label("Body site").select_option("calf")
    page.locator("#ch1-amplitude").fill("150")
    page.wait_for_selector("#verdict-state.verdict-refused")
    reasons = page.locator("#verdict-reasons").inner_text()
    assert "amplitude" in reasons.lower()
    assert page.get_by_role("button", name="Create session").is_disabled()
    shot(page, "04-new-session-refused")

    page.locator("#ch1-amplitude").fill("20")
    page.wait_for_selector("#verdict-state.verdict-ok")
    assert page.locator("#dose tbody tr").count() == 1
    assert (
        "Channel 1: intensity may be raised up to" in page.locator(".amplitude-range").inner_text()
    )
    shot(page, "05-new-session-allowed")
    page.get_by_role("button", name="Create session").click()
    page.wait_for_url("**/live")
    session_id = page.url.rstrip("/").split("/")[-2]

    # Live: start, see the plot move, step the intensity up, then Escape stops it.
    page.get_by_role("button", name="Start").click()
    page.wait_for_function("Number(document.querySelector('#current-plot').dataset.points) > 3")
    first = points(page)
    page.wait_for_function(
        f"Number(document.querySelector('#current-plot').dataset.points) > {first}"
    )
    page.get_by_role("button", name="Raise channel 1 intensity").click()
    page.wait_for_selector("#intensity-result:has-text('approved')")
    assert "21.0 mA" in page.locator("#intensity-result").inner_text()
    # The highest target the limits engine allows, as the live status reports it.
    allowed = page.locator('#channel-table tr[data-channel="1"] .allowed').inner_text()
    ranges = page.evaluate(
        f"fetch('/api/v1/sessions/{session_id}/live').then((r) => r.json())"
        ".then((s) => s.intensity_ranges)"
    )
    assert allowed == f"up to {ranges['1']['max_ua'] / 1000:.1f} mA"
    shot(page, "06-live-running")

    # At tablet width, scrolled to the bottom, the STOP button is still on screen.
    page.set_viewport_size({"width": 768, "height": 600})
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    box = page.locator("#stop").bounding_box()
    assert box is not None
    assert box["y"] >= 0
    assert box["y"] + box["height"] <= 600
    shot(page, "06b-live-tablet-scrolled")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_label("Note", exact=True).fill("client comfortable")
    page.keyboard.press("Escape")
    page.wait_for_selector("#state:has-text('stopped')")
    assert "emergency stop" in page.locator("#end-reason").inner_text()
    assert page.locator("#connection-banner").is_hidden()
    shot(page, "07-live-stopped")

    # The record: stopped, with the intensity change among its events and the telemetry plotted.
    page.get_by_role("link", name="Open the session record").click()
    page.wait_for_url(f"**/app/sessions/{session_id}")
    assert page.locator("#record-status").inner_text() == "stopped"
    assert "intensity changed" in page.locator("#events").inner_text()
    page.wait_for_function("Number(document.querySelector('#record-plot').dataset.points) > 0")
    shot(page, "08-record")

    page.set_viewport_size({"width": 800, "height": 1100})
    shot(page, "09-record-tablet")

    # An adverse event is reported from the record and appears among its events.
    page.get_by_label("What happened").fill("skin redness under electrode 1")
    page.get_by_label("Severity").select_option("mild")
    page.get_by_role("button", name="Report adverse event").click()
    page.wait_for_selector("#events:has-text('skin redness under electrode 1')")
    assert "adverse event" in page.locator("#events").inner_text()

    # Entered in error: a new version with that status; the original is kept.
    page.get_by_label("Reason (required)").fill("recorded for the wrong client")
    page.get_by_role("button", name="Mark as entered in error").click()
    page.wait_for_function(f"!location.pathname.endsWith('/sessions/{session_id}')")
    assert page.locator("#record-status").inner_text() == "entered_in_error"
    shot(page, "09b-record-entered-in-error")
    page.context.close()


def test_live_page_shows_a_lost_server_connection(server: str, browser: Any) -> None:
    page = new_page(browser, 800, 1100)
    sign_in(page, server, "pia")
    page.goto(f"{server}/app/sessions/new")
    page.get_by_label("Client", exact=True).select_option(label="C-0102")
    page.get_by_label("Body site").select_option("calf")
    page.wait_for_selector("#verdict-state.verdict-ok")
    page.get_by_role("button", name="Create session").click()
    page.wait_for_url("**/live")
    page.context.set_offline(True)
    page.wait_for_selector("#connection-banner:not([hidden])")
    assert "lost" in page.locator("#connection-banner").inner_text().lower()
    shot(page, "10-live-connection-lost")
    page.context.set_offline(False)
    page.keyboard.press("Escape")
    page.wait_for_selector("#state:has-text('stopped')")
    page.context.close()


def record_a_session(browser: Any, server: str) -> None:
    """A practitioner records a standalone November session through the API, with the page cookie."""
    page = new_page(browser)
    sign_in(page, server, "pia")
    api = page.request
    origin = {"Origin": server}
    connections = api.get(f"{server}/api/v1/connections").json()
    if not connections:
        connected = api.post(
            f"{server}/api/v1/connections",
            data={"driver": "simulated", "url": "sim://?channels=1&seed=9"},
            headers=origin,
        )
        assert connected.ok, connected.text()
        connections = [connected.json()]
    client = api.get(f"{server}/api/v1/clients").json()["items"][0]
    me = api.get(f"{server}/api/v1/auth/me").json()
    recorded = api.post(
        f"{server}/api/v1/sessions",
        data={
            "client_id": client["id"],
            "practitioner_id": me["user_id"],
            "device_id": connections[0]["device"]["id"],
            "plan": {
                "modality": "microcurrent",
                "duration_s": 600,
                "electrode": {"body_site": "lower_back", "area_cm2": 20},
                "channels": [
                    {"channel": 1, "amplitude_ua": 200, "pulse_width_us": 1000, "frequency_hz": 10}
                ],
            },
            "started_at": "2026-11-20T09:00:00+00:00",
            "ended_at": "2026-11-20T09:10:00+00:00",
        },
        headers=origin,
    )
    assert recorded.status == 201, recorded.text()
    page.context.close()


def test_analyst_overview_charts_sessions_per_month(server: str, browser: Any) -> None:
    record_a_session(browser, server)
    page = new_page(browser)
    sign_in(page, server, "ada")
    assert page.url.endswith("/app/overview")
    page.wait_for_selector("#overview-status[data-state]")
    assert page.locator("#overview-status").get_attribute("data-state") == "loaded"
    row = page.locator("#overview-table tbody tr", has_text="2026-11")
    assert row.locator("td").nth(2).inner_text() == "1"  # the microcurrent column
    assert int(page.locator("#overview-chart").get_attribute("data-bars") or 0) >= 2
    assert page.get_by_role("link", name="CSV").is_visible()
    shot(page, "11-overview")
    page.context.close()


def test_overview_says_so_when_the_analytics_service_is_absent(server: str, browser: Any) -> None:
    page = new_page(browser)
    # A server without the analytics routes answers 404 here; the page must say so, not fail.
    page.route(
        "**/api/v1/analytics/summary*",
        lambda route: route.fulfill(
            status=404, content_type="application/problem+json", body='{"status": 404}'
        ),
    )
    sign_in(page, server, "ada")
    page.wait_for_selector("#overview-status[data-state]")
    assert page.locator("#overview-status").get_attribute("data-state") == "unavailable"
    assert "not available" in page.locator("#overview-status").inner_text()
    assert page.locator("#exports").is_hidden()
    shot(page, "12-overview-unavailable")
    page.context.close()


def test_an_acknowledgement_ticked_on_the_live_page_holds_for_its_own_warning_only(
    server: str, browser: Any
) -> None:
    """Channel 1's current density was acknowledged when the session was created; raising
    channel 2 past 2 mA/cm² needs a tick of its own, and that tick does not cover channel 3."""
    page = new_page(browser)
    sign_in(page, server, "pia")
    api, origin = page.request, {"Origin": server}
    connected = api.post(
        f"{server}/api/v1/connections",
        data={"driver": "simulated", "url": "sim://?channels=3&seed=5&serial_number=SN-ACK"},
        headers=origin,
    )
    assert connected.ok, connected.text()
    clients = api.get(f"{server}/api/v1/clients").json()["items"]
    client = next(c for c in clients if c["code"] == "C-0102")
    me = api.get(f"{server}/api/v1/auth/me").json()
    # 5 cm² at 300 µs and 50 Hz: 70 mA is 2.42 mA/cm² (a warning), 57 mA is 1.97, 58 mA is 2.01.
    created = api.post(
        f"{server}/api/v1/sessions/live",
        data={
            "client_id": client["id"],
            "practitioner_id": me["user_id"],
            "device_id": connected.json()["device"]["id"],
            "plan": {
                "modality": "ems",
                "duration_s": 600,
                "electrode": {"body_site": "calf", "area_cm2": 5},
                "channels": [
                    {"channel": n, "amplitude_ma": ma, "pulse_width_us": 300, "frequency_hz": 50}
                    for n, ma in ((1, 70), (2, 57), (3, 57))
                ],
            },
            "acknowledged_warnings": ["current_density_high"],
        },
        headers=origin,
    )
    assert created.status == 201, created.text()
    session_id = created.json()["session_id"]
    page.goto(f"{server}/app/sessions/{session_id}/live")
    page.get_by_role("button", name="Start").click()
    page.wait_for_selector("#state:has-text('running')")

    page.get_by_role("button", name="Raise channel 2 intensity").click()
    page.wait_for_selector("#intensity-result.error")
    assert "58.0 mA refused" in page.locator("#intensity-result").inner_text()
    page.locator("#live-ack-current_density_high").check()
    page.get_by_role("button", name="Raise channel 2 intensity").click()
    page.wait_for_selector("#intensity-result:has-text('approved')")
    assert "Channel 2 target 58.0 mA approved" in page.locator("#intensity-result").inner_text()

    page.get_by_role("button", name="Raise channel 3 intensity").click()
    page.wait_for_selector("#intensity-result.error")
    assert "Channel 3 to 58.0 mA refused" in page.locator("#intensity-result").inner_text()
    status = api.get(f"{server}/api/v1/sessions/{session_id}/live").json()
    assert status["target_ua"] == {"1": 70_000, "2": 58_000, "3": 57_000}
    page.keyboard.press("Escape")
    page.wait_for_selector("#state:has-text('stopped')")
    page.context.close()
