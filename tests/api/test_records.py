"""Users, clients, devices and programs: create, read, list, update, and the errors around them."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem, created


def test_health_reports_the_database(api: TestClient) -> None:
    response = api.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


def test_client_round_trip_with_screening_and_prescription(api: TestClient) -> None:
    body = {
        "code": "C-42",
        "contraindications": ["pregnancy", "epilepsy"],
        "prescription": {"modalities": ["ems"], "max_amplitude_ma": 40, "max_duration_s": 1800},
        "notes": "left knee rehab",
    }
    client = created(api, "/clients", body)
    fetched = api.get(f"/api/v1/clients/{client['id']}")
    assert fetched.status_code == 200
    data = fetched.json()
    assert data["contraindications"] == ["pregnancy", "epilepsy"]
    assert data["prescription"]["max_amplitude_ua"] == 40_000
    assert data["version"] == 1
    assert fetched.headers["ETag"] == f'W/"{client["id"]}-1"'


def test_update_bumps_the_version_and_keeps_unsent_fields(api: TestClient) -> None:
    client = created(api, "/clients", {"code": "C-1", "notes": "first"})
    response = api.patch(
        f"/api/v1/clients/{client['id']}",
        json={"contraindications": ["active_implant"]},
        headers={"If-Match": f'W/"{client["id"]}-1"'},
    )
    assert response.status_code == 200
    data = response.json()
    assert data["version"] == 2
    assert data["notes"] == "first"
    assert data["contraindications"] == ["active_implant"]


def test_update_without_if_match_is_428_and_changes_nothing(api: TestClient) -> None:
    client = created(api, "/clients", {"code": "C-1", "notes": "first"})
    path = f"/api/v1/clients/{client['id']}"
    problem = assert_problem(api.patch(path, json={"notes": "second"}), 428)
    assert 'W/"' in problem["detail"]
    assert api.get(path).json()["notes"] == "first"


def test_update_with_a_stale_etag_is_refused_and_changes_nothing(api: TestClient) -> None:
    client = created(api, "/clients", {"code": "C-1", "notes": "first"})
    path = f"/api/v1/clients/{client['id']}"
    fresh = api.patch(path, json={"notes": "second"}, headers={"If-Match": 'W/"1-1"'})
    assert fresh.status_code == 200
    stale = api.patch(path, json={"notes": "third"}, headers={"If-Match": 'W/"1-1"'})
    assert_problem(stale, 412)
    assert api.get(path).json()["notes"] == "second"


def test_duplicate_client_code_is_a_conflict_naming_the_field(api: TestClient) -> None:
    created(api, "/clients", {"code": "C-7"})
    response = api.post("/api/v1/clients", json={"code": "C-7"})
    assert_problem(response, 409, "code")
    assert len(api.get("/api/v1/clients").json()["items"]) == 1


def test_duplicate_device_serial_for_the_same_driver_is_a_conflict(api: TestClient) -> None:
    body = {"driver": "simulated", "serial_number": "S-1", "model": "Ref"}
    created(api, "/devices", body)
    assert_problem(api.post("/api/v1/devices", json=body), 409, "serial_number")
    created(api, "/devices", {**body, "driver": "rehastim2"})


@pytest.mark.parametrize("resource", ["users", "clients", "devices", "programs", "sessions"])
def test_unknown_id_is_a_404_problem(api: TestClient, resource: str) -> None:
    problem = assert_problem(api.get(f"/api/v1/{resource}/12345"), 404)
    assert "12345" in problem["detail"]


@pytest.mark.parametrize("record_id", ["0", "-1", "99999999999999999999", "abc"])
def test_out_of_range_ids_are_422_not_server_errors(api: TestClient, record_id: str) -> None:
    assert_problem(api.get(f"/api/v1/clients/{record_id}"), 422, "record_id")


def test_lists_page_with_a_cursor_in_a_stable_order(api: TestClient) -> None:
    codes = [f"C-{i:03d}" for i in range(7)]
    for code in codes:
        created(api, "/clients", {"code": code})
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/api/v1/clients", params=params).json()
        seen += [item["code"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == codes
    assert pages == 3


@pytest.mark.parametrize("cursor", ["garbage", "eyJhZnRlciI6ICJ4In0", "%%%"])
def test_a_forged_cursor_is_a_422_naming_the_cursor(api: TestClient, cursor: str) -> None:
    assert_problem(api.get("/api/v1/clients", params={"cursor": cursor}), 422, "cursor")


def test_program_keeps_channels_with_explicit_units(api: TestClient) -> None:
    program = created(
        api,
        "/programs",
        {
            "name": "Quadriceps strength",
            "modality": "ems",
            "duration_s": 900,
            "channels": [
                {"channel": 1, "amplitude_ma": 25.5, "pulse_width_us": 300, "frequency_hz": 40},
                {"channel": 2, "amplitude_ua": 25500, "pulse_width_us": 300, "frequency_hz": 40},
            ],
        },
    )
    assert [c["amplitude_ua"] for c in program["channels"]] == [25500, 25500]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": ""}, "code"),
        ({"code": "has space"}, "code"),
        ({"code": "C-1", "unknown": 1}, "unknown"),
        ({"code": "C-1", "notes": "nul\u0000byte"}, "notes"),
        ({"code": "C-1", "contraindications": ["tired"]}, "contraindications"),
        (
            {"code": "C-1", "prescription": {"max_amplitude_ua": 5, "max_amplitude_ma": 5}},
            "prescription",
        ),
    ],
)
def test_bad_client_input_is_422_naming_the_field_and_stores_nothing(
    api: TestClient, body: dict[str, object], field: str
) -> None:
    assert_problem(api.post("/api/v1/clients", json=body), 422, field)
    assert api.get("/api/v1/clients").json()["items"] == []


def test_malformed_json_is_a_422_problem(api: TestClient) -> None:
    response = api.post(
        "/api/v1/clients", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_problem(response, 422)


def test_unknown_route_is_a_404_problem(api: TestClient) -> None:
    assert_problem(api.get("/api/v1/nowhere"), 404)


def test_wrong_method_is_a_405_problem(api: TestClient) -> None:
    assert_problem(api.delete("/api/v1/clients"), 405)
