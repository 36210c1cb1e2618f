"""A problem names the field it is about: a model-level check of a current names the current's field,
not the object holding it, and malformed JSON names the body with the line and column."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem, ems_plan

CHANNEL = {"channel": 1, "pulse_width_us": 300, "frequency_hz": 35}


def fields_of(problem: dict[str, Any]) -> list[str]:
    return [e["field"] for e in problem["errors"]]


@pytest.mark.parametrize(
    ("current", "field"),
    [
        ({"amplitude_ma": 1.0005}, "plan.channels[0].amplitude_ma"),
        ({"amplitude_ma": "thirty"}, "plan.channels[0].amplitude_ma"),
        ({"amplitude_ma": -1}, "plan.channels[0].amplitude_ma"),
        ({}, "plan.channels[0].amplitude_ua"),
        ({"amplitude_ua": 1, "amplitude_ma": 1}, "plan.channels[0].amplitude_ua"),
        ({"amplitude_ua": True}, "plan.channels[0].amplitude_ua"),
        # The field that is missing, beside the one given.
        ({"amplitude_ua": 1, "on_time_s": 5}, "plan.channels[0].off_time_s"),
        ({"amplitude_ua": 1, "off_time_s": 5}, "plan.channels[0].on_time_s"),
    ],
)
def test_a_channel_check_names_the_field(
    api: TestClient, current: dict[str, Any], field: str
) -> None:
    plan = ems_plan(channels=[{**CHANNEL, **current}])
    problem = assert_problem(api.post("/api/v1/limits/check", json={"plan": plan}), 422)
    assert fields_of(problem) == [field]
    assert problem["detail"].startswith(f"{field}: ")


def test_a_prescription_check_names_the_field_sent(api: TestClient) -> None:
    body = {"code": "C-1", "prescription": {"modalities": ["microcurrent"], "max_amplitude_ma": 5}}
    problem = assert_problem(api.post("/api/v1/clients", json=body), 422)
    assert fields_of(problem) == ["prescription.max_amplitude_ma"]
    both = {"code": "C-1", "prescription": {"max_amplitude_ua": 5, "max_amplitude_ma": 5}}
    problem = assert_problem(api.post("/api/v1/clients", json=both), 422)
    assert fields_of(problem) == ["prescription.max_amplitude_ua"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": 1, "amplitude_ma": 1.0005}, "amplitude_ma"),
        ({"channel": 1, "amplitude_ma": "x"}, "amplitude_ma"),
        ({"channel": 1}, "amplitude_ua"),
        ({"channel": 1, "amplitude_ua": 5, "amplitude_ma": 5}, "amplitude_ua"),
    ],
)
def test_an_intensity_change_names_the_current_not_the_body(
    api: TestClient, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(api.post("/api/v1/sessions/1/intensity", json=body), 422)
    assert fields_of(problem) == [field]
    assert problem["errors"][0]["location"] == "body"


def test_a_check_across_the_channels_names_the_channels(api: TestClient) -> None:
    channel = {**CHANNEL, "amplitude_ma": 5}
    plan = ems_plan(channels=[channel, channel])
    problem = assert_problem(api.post("/api/v1/limits/check", json={"plan": plan}), 422)
    assert fields_of(problem) == ["plan.channels"]
    assert "only once" in problem["errors"][0]["reason"]


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (b"{not json", "line 1 column 2"),
        (b'{"code": "C-1",\n  "notes": }', "line 2 column 12"),
        (b'{"code": "C-1"} trailing', "line 1 column 17"),
    ],
)
def test_malformed_json_names_the_body_with_line_and_column(
    api: TestClient, content: bytes, where: str
) -> None:
    response = api.post(
        "/api/v1/clients", content=content, headers={"content-type": "application/json"}
    )
    problem = assert_problem(response, 422)
    assert problem["errors"] == [
        {"field": "body", "reason": problem["errors"][0]["reason"], "location": "body"}
    ]
    reason = problem["errors"][0]["reason"]
    assert reason.startswith(f"malformed JSON at {where}: "), reason
    assert "JSON decode error" not in reason
    assert problem["detail"] == f"body: {reason}"
    assert api.get("/api/v1/clients").json()["items"] == []
