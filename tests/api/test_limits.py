"""The limits dry run over HTTP: the verdict, its layers and the dose, with nothing stored.

A dry run for a device checks the device layer or fails: it never answers as if the device had been
checked when its capabilities are unknown. The site layer is tested in test_site_policy.py.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem, created, ems_plan
from tests.sessions.conftest import connect


def test_dry_run_approves_a_plan_within_limits_and_returns_the_dose(api: TestClient) -> None:
    response = api.post("/api/v1/limits/check", json={"plan": ems_plan()})
    assert response.status_code == 200, response.text
    verdict = response.json()
    assert verdict["approved"] is True
    assert verdict["layers"] == ["standard"]
    assert verdict["dose"]["channels"][0]["phase_charge_uc"] == 9.0


def test_dry_run_reports_the_amplitudes_each_channel_may_take_and_none_when_refused(
    api: TestClient,
) -> None:
    client = created(api, "/clients", {"code": "C-8", "prescription": {"max_amplitude_ma": 42.5}})
    approved = api.post(
        "/api/v1/limits/check", json={"plan": ems_plan(), "client_id": client["id"]}
    ).json()
    too_strong = ems_plan(
        channels=[{"channel": 1, "amplitude_ma": 130, "pulse_width_us": 300, "frequency_hz": 35}]
    )
    refused = api.post("/api/v1/limits/check", json={"plan": too_strong}).json()

    assert approved["approved"] is True
    # The prescription's 42.5 mA is the tightest ceiling; below 1 mA only zero (the EMS unit guard).
    assert approved["amplitude_ranges"] == {
        "1": {"zero_allowed": True, "min_ua": 1000, "max_ua": 42_500, "step_ua": 1}
    }
    assert refused["approved"] is False
    assert refused["amplitude_ranges"] is None


def test_dry_run_applies_the_clients_prescription_and_screening(api: TestClient) -> None:
    client = created(
        api,
        "/clients",
        {
            "code": "C-9",
            "contraindications": ["epilepsy"],
            "prescription": {"max_amplitude_ma": 20},
        },
    )
    verdict = api.post(
        "/api/v1/limits/check", json={"plan": ems_plan(), "client_id": client["id"]}
    ).json()
    assert verdict["approved"] is False
    fields = {(v["layer"], v["field"]) for v in verdict["violations"]}
    assert ("prescription", "channels[0].amplitude_ua") in fields
    assert any(v["code"] == "contraindication" for v in verdict["violations"])


def test_an_authorised_override_is_applied_and_reported(api: TestClient) -> None:
    client = created(api, "/clients", {"code": "C-10", "contraindications": ["epilepsy"]})
    override = {
        "contraindication": "epilepsy",
        "authorised_by": "Dr. Weber",
        "reason": "seizure-free 5 years",
    }
    verdict = api.post(
        "/api/v1/limits/check",
        json={"plan": ems_plan(), "client_id": client["id"], "overrides": [override]},
    ).json()
    assert verdict["approved"] is True
    assert verdict["overrides_applied"] == [override]


def test_dry_run_with_unknown_client_is_422_naming_it(api: TestClient) -> None:
    assert_problem(
        api.post("/api/v1/limits/check", json={"plan": ems_plan(), "client_id": 999}),
        422,
        "client_id",
    )


def test_unknown_warning_code_is_422(api: TestClient) -> None:
    body = {"plan": ems_plan(), "acknowledged_warnings": ["whatever"]}
    assert_problem(api.post("/api/v1/limits/check", json=body), 422, "acknowledged_warnings")


# ---------------------------------------------------------------------------- the device layer


def test_dry_run_for_a_connected_device_runs_the_device_layer(api: TestClient) -> None:
    device_id = connect(api, "channels=1&seed=1")

    within = api.post("/api/v1/limits/check", json={"plan": ems_plan(), "device_id": device_id})
    assert within.status_code == 200, within.text
    assert within.json()["approved"] is True
    assert "device" in within.json()["layers"]

    second_channel = {"channel": 2, "amplitude_ma": 30, "pulse_width_us": 300, "frequency_hz": 35}
    beyond = api.post(
        "/api/v1/limits/check",
        json={"plan": ems_plan(channels=[second_channel]), "device_id": device_id},
    )
    assert beyond.status_code == 200, beyond.text
    verdict = beyond.json()
    assert verdict["approved"] is False
    assert "device" in verdict["layers"]
    assert [
        (v["layer"], v["code"], v["field"], v["value"], v["bound"]) for v in verdict["violations"]
    ] == [("device", "channel_unavailable", "channels[0].channel", 2, 1)]


def test_dry_run_keeps_the_device_layer_after_the_device_is_disconnected(api: TestClient) -> None:
    """The capabilities a driver reported stay on the device's record for later dry runs."""
    device_id = connect(api, "channels=1&seed=1")
    assert api.delete(f"/api/v1/connections/{device_id}").status_code == 204

    verdict = api.post(
        "/api/v1/limits/check", json={"plan": ems_plan(), "device_id": device_id}
    ).json()
    assert verdict["approved"] is True
    assert "device" in verdict["layers"]


def test_dry_run_for_a_device_that_never_reported_capabilities_is_422_naming_device_id(
    api: TestClient,
) -> None:
    """A registered but never connected device cannot yield a device-checked approval."""
    device = created(
        api, "/devices", {"driver": "simulated", "serial_number": "SIM-7", "model": "SIM-STIM"}
    )
    assert device["capabilities"] is None

    response = api.post(
        "/api/v1/limits/check", json={"plan": ems_plan(), "device_id": device["id"]}
    )

    problem = assert_problem(response, 422, "device_id")
    [reason] = [e["reason"] for e in problem["errors"] if e["field"] == "device_id"]
    assert "has not reported its capabilities" in reason
    assert "connect it first" in reason
    assert "approved" not in problem
    assert "layers" not in problem


def test_a_device_that_never_reported_capabilities_cannot_start_a_session_either(
    api: TestClient,
) -> None:
    """Session start and dry run answer the same for such a device: 422 naming device_id."""
    practitioner = created(
        api, "/users", {"username": "ben", "display_name": "Ben", "role": "practitioner"}
    )
    client = created(api, "/clients", {"code": "C-11"})
    device = created(
        api, "/devices", {"driver": "simulated", "serial_number": "SIM-8", "model": "SIM-STIM"}
    )
    response = api.post(
        "/api/v1/sessions/live",
        json={
            "client_id": client["id"],
            "practitioner_id": practitioner["id"],
            "device_id": device["id"],
            "plan": ems_plan(),
        },
    )
    assert_problem(response, 422, "device_id")


def test_connecting_a_registered_device_lets_its_dry_run_check_the_device_layer(
    api: TestClient,
) -> None:
    device = created(
        api, "/devices", {"driver": "simulated", "serial_number": "SIM-9", "model": "SIM-STIM"}
    )
    body = {"plan": ems_plan(), "device_id": device["id"]}
    assert_problem(api.post("/api/v1/limits/check", json=body), 422, "device_id")

    assert connect(api, "channels=1&serial_number=SIM-9&seed=1") == device["id"]

    verdict = api.post("/api/v1/limits/check", json=body).json()
    assert verdict["approved"] is True
    assert "device" in verdict["layers"]
