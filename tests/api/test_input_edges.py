"""Input at the edges of what the store can hold: each is refused with a problem naming the field
(or, for credentials, answered like any other bad credential), never a server error, and changes
nothing. Every test runs on SQLite and, when configured, on PostgreSQL, whose refusals differ."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from sessionlog.analytics.filters import AnalyticsInputError
from sessionlog.analytics.queries import decode_position, parse_sort
from sessionlog.security import api_keys
from sessionlog.store.models import AuditEvent, TreatmentSession
from tests.api.conftest import assert_problem, created, session_body
from tests.conftest import create_user

PASSWORD = "correct horse battery"
USER = {"username": "anna", "display_name": "Anna", "role": "practitioner"}
PROGRAM = {
    "name": "quads",
    "modality": "ems",
    "duration_s": 600,
    "channels": [{"channel": 1, "amplitude_ma": 20, "pulse_width_us": 300, "frequency_hz": 35}],
}


def forged_cursor(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def count(api: TestClient, model: Any, *conditions: Any) -> int:
    with Session(api.app.state.engine) as db:  # type: ignore[attr-defined]
        return db.exec(select(func.count()).select_from(model).where(*conditions)).one()


def page_after(api: TestClient, sort: str, value: Any) -> Any:
    cursor = forged_cursor({"after": 1, "sort": sort, "value": value})
    return api.get("/api/v1/sessions", params={"sort": sort, "cursor": cursor, "limit": 1})


# ---------------------------------------------------------------------------- paging cursors


@pytest.mark.parametrize(
    ("sort", "at_the_edge", "beyond"),
    [
        ("started_at", "2000-01-01T12:00:00+14:00", "0001-01-01T00:00:00+14:00"),
        ("-started_at", "9999-12-31T09:00:00-14:00", "9999-12-31T23:59:59-14:00"),
        ("ended_at", "0001-01-01T01:30:00+01:00", "0001-01-01T00:30:00+01:00"),
        ("client_id", 2**31 - 1, 2**40),
        ("practitioner_id", 2**31 - 1, 2**63),
        ("-device_id", -(2**31), -(2**31) - 1),
        ("modality", "ems", "\ud800"),
        ("body_site", "thigh_anterior", "a\udfffb"),
        ("dose_on_time_s", 1e308, float("inf")),
        ("dose_max_power_density_w_cm2", -1e308, float("nan")),
    ],
)
def test_a_cursor_value_is_held_to_what_its_column_can_hold(
    api: TestClient, refs: dict[str, int], sort: str, at_the_edge: Any, beyond: Any
) -> None:
    created(api, "/sessions", session_body(refs))
    assert page_after(api, sort, at_the_edge).status_code == 200
    problem = assert_problem(page_after(api, sort, beyond), 422, "cursor")
    assert [error["location"] for error in problem["errors"]] == ["query"]


def test_a_cursor_the_route_would_not_even_accept_is_refused_by_the_decoder() -> None:
    """The route bounds a cursor's length; the decoder must not rely on it."""
    too_large = forged_cursor({"after": 1, "sort": "dose_on_time_s", "value": 10**400})
    with pytest.raises(AnalyticsInputError):
        decode_position(too_large, parse_sort("dose_on_time_s"))
    too_deep = base64.urlsafe_b64encode(b"[" * 100_000).decode()
    with pytest.raises(AnalyticsInputError):
        decode_position(too_deep, parse_sort("id"))


# ---------------------------------------------------------------------------- signing in


def test_a_username_with_nul_is_an_ordinary_failed_sign_in(anonymous: TestClient) -> None:
    create_user(anonymous.app.state.engine, "pia", "practitioner", PASSWORD)  # type: ignore[attr-defined]
    for _ in range(5):
        refused = anonymous.post(
            "/api/v1/auth/token", data={"username": "pia\x00", "password": PASSWORD}
        )
        assert_problem(refused, 401)
        assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert count(anonymous, AuditEvent, AuditEvent.action == "sign_in_refused") == 5
    limited = anonymous.post("/api/v1/auth/token", data={"username": "pia\x00", "password": "x"})
    assert_problem(limited, 429)
    # The address is now limited too, so the real name is refused as well until the window passes.
    assert_problem(
        anonymous.post("/api/v1/auth/token", data={"username": "pia", "password": PASSWORD}), 429
    )


# ---------------------------------------------------------------------------- API keys


def get_with_raw_headers(client: TestClient, path: str, headers: dict[bytes, bytes]) -> Any:
    """A GET whose header bytes reach the app unchanged (TestClient re-encodes them as UTF-8)."""

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as raw:
            return await raw.get(path, headers=headers)

    return asyncio.run(call())


@pytest.mark.parametrize("presented", [b"slk_\xb2_abc", b"slk_\xb9\xb3_abc", b"slk_1\xb2_x"])
def test_an_api_key_with_a_non_ascii_digit_is_401(anonymous: TestClient, presented: bytes) -> None:
    response = get_with_raw_headers(anonymous, "/api/v1/auth/me", {b"X-API-Key": presented})
    assert_problem(response, 401)


def test_only_ascii_digits_are_read_as_a_key_id() -> None:
    assert api_keys.parse_key("slk_12_secret") == (12, "secret")
    assert api_keys.parse_key("slk_\u0661\u0662_secret") is None  # Arabic-Indic digits: 12
    assert api_keys.parse_key("slk_\xb2_secret") is None


# ---------------------------------------------------------------------------- PATCH with null


def patch(api: TestClient, path: str, body: dict[str, Any]) -> Any:
    current = api.get(f"/api/v1{path}")
    assert current.status_code == 200
    return api.patch(f"/api/v1{path}", json=body, headers={"If-Match": current.headers["ETag"]})


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/users", USER, "display_name"),
        ("/users", USER, "role"),
        ("/users", USER, "active"),
        ("/users", USER, "password"),
        ("/clients", {"code": "C-1", "contraindications": ["pregnancy"]}, "contraindications"),
        ("/programs", PROGRAM, "duration_s"),
        ("/programs", PROGRAM, "channels"),
    ],
)
def test_null_for_a_field_that_cannot_be_empty_is_422_and_changes_nothing(
    api: TestClient, path: str, body: dict[str, Any], field: str
) -> None:
    record = created(api, path, body)
    response = patch(api, f"{path}/{record['id']}", {field: None})
    problem = assert_problem(response, 422, field)
    assert "may not be null" in problem["detail"]
    assert api.get(f"/api/v1{path}/{record['id']}").json() == record


def test_null_is_accepted_exactly_where_the_published_schema_allows_it(api: TestClient) -> None:
    schemas = api.get("/api/v1/openapi.json").json()["components"]["schemas"]

    def nullable(schema: str, field: str) -> bool:
        return {"type": "null"} in schemas[schema]["properties"][field].get("anyOf", [])

    assert not nullable("UserUpdate", "display_name")
    assert not nullable("ProgramUpdate", "channels")
    assert not nullable("ClientUpdate", "contraindications")
    assert nullable("ClientUpdate", "notes")
    assert nullable("DeviceUpdate", "label")
    client = created(api, "/clients", {"code": "C-1", "notes": "first"})
    cleared = patch(api, f"/clients/{client['id']}", {"notes": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["notes"] is None
    device = {"driver": "simulated", "serial_number": "S-1", "model": "Ref", "label": "room 2"}
    device_id = created(api, "/devices", device)["id"]
    cleared = patch(api, f"/devices/{device_id}", {"label": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["label"] is None


# ---------------------------------------------------------------------------- free text

CONTROLS = ["\x0b", "a\x0cb", "x\x1by", "\x7f", "a\x85b", "\u2028", "a\u2029"]
ONLY_WHITESPACE = ["\u00a0", " ", "\u2003\u3000"]


@pytest.mark.parametrize("value", CONTROLS + ONLY_WHITESPACE)
def test_session_outcome_with_controls_or_only_whitespace_is_refused(
    api: TestClient, refs: dict[str, int], value: str
) -> None:
    response = api.post("/api/v1/sessions", json=session_body(refs, outcome=value))
    assert_problem(response, 422, "outcome")
    assert count(api, TreatmentSession) == 0


@pytest.mark.parametrize("value", [*CONTROLS, *ONLY_WHITESPACE, "a\tb", "a\nb", "a\r"])
def test_single_line_text_refuses_controls_line_breaks_and_blank_values(
    api: TestClient, value: str
) -> None:
    assert_problem(
        api.post("/api/v1/users", json={**USER, "display_name": value}), 422, "display_name"
    )
    device = {"driver": "simulated", "serial_number": "S-1", "model": value}
    assert_problem(api.post("/api/v1/devices", json=device), 422, "model")
    assert [u["username"] for u in api.get("/api/v1/users").json()["items"]] == ["tester"]
    assert api.get("/api/v1/devices").json()["items"] == []


def test_text_keeps_ordinary_whitespace_but_refuses_a_blank_update(
    api: TestClient, refs: dict[str, int]
) -> None:
    outcome = "tolerated well\n\tno redness\r\nnext:\u00a0week"
    session = created(api, "/sessions", session_body(refs, outcome=outcome, notes=""))
    assert session["outcome"] == outcome
    user = created(api, "/users", {**USER, "username": "bo", "display_name": "Bo\u00a0Ek "})
    assert user["display_name"] == "Bo\u00a0Ek "
    refused = patch(api, f"/users/{user['id']}", {"display_name": "\u00a0"})
    assert_problem(refused, 422, "display_name")
    assert api.get(f"/api/v1/users/{user['id']}").json()["display_name"] == "Bo\u00a0Ek "


def test_device_text_longer_than_its_column_is_refused(api: TestClient) -> None:
    long_serial = {"driver": "simulated", "serial_number": "S" * 129, "model": "Ref"}
    assert_problem(api.post("/api/v1/devices", json=long_serial), 422, "serial_number")
    long_firmware = {"driver": "simulated", "serial_number": "S-1", "model": "Ref"}
    long_firmware["firmware_version"] = "1" * 65
    assert_problem(api.post("/api/v1/devices", json=long_firmware), 422, "firmware_version")
    assert api.get("/api/v1/devices").json()["items"] == []
