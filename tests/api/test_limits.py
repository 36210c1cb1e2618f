"""The limits dry run over HTTP: the verdict, its layers and the dose, with nothing stored."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem, created, ems_plan


def test_dry_run_approves_a_plan_within_limits_and_returns_the_dose(api: TestClient) -> None:
    response = api.post("/api/v1/limits/check", json={"plan": ems_plan()})
    assert response.status_code == 200, response.text
    verdict = response.json()
    assert verdict["approved"] is True
    assert verdict["layers"] == ["standard"]
    assert verdict["dose"]["channels"][0]["phase_charge_uc"] == 9.0


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
