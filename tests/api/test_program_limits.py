"""A program no session could run is refused when it is written: its parameters pass through the
limits engine's standard profile, with what depends on the electrode left for the session."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from sessionlog.settings import Settings
from sessionlog.store.database import make_engine, session_scope
from sessionlog.store.models import Program
from tests.api.conftest import assert_problem, created


def program(modality: str = "ems", **channel: Any) -> dict[str, Any]:
    return {
        "name": "Preset",
        "modality": modality,
        "duration_s": 900,
        "channels": [{"channel": 1, "pulse_width_us": 300, "frequency_hz": 40, **channel}],
    }


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (program("microcurrent", amplitude_ma=20), "channels[0].amplitude_ua", "microcurrent"),
        (program(amplitude_ma=150), "channels[0].amplitude_ua", "120 mA"),
        (program(amplitude_ua=30), "channels[0].amplitude_ua", "below 1 mA"),
        (program(amplitude_ma=20, pulse_width_us=5000), "channels[0].pulse_width_us", "pulse"),
    ],
)
def test_a_program_the_standard_profile_refuses_is_not_stored(
    api: TestClient, body: dict[str, Any], field: str, words: str
) -> None:
    problem = assert_problem(api.post("/api/v1/programs", json=body), 422, field)
    assert words in problem["errors"][0]["reason"]
    assert api.get("/api/v1/programs").json()["items"] == []


def test_duplicate_channel_numbers_are_a_422_naming_the_channels(api: TestClient) -> None:
    body = program(amplitude_ma=20)
    body["channels"] = body["channels"] * 2
    assert_problem(api.post("/api/v1/programs", json=body), 422, "channels")


def test_a_program_whose_density_depends_on_the_electrode_is_stored(api: TestClient) -> None:
    # 100 mA at 300 µs and 40 Hz is above 2 mA/cm² on a small electrode and fine on a large
    # one: the session that uses the program is judged on its electrode.
    stored = created(api, "/programs", program(amplitude_ma=100))
    assert stored["channels"][0]["amplitude_ua"] == 100_000


def test_an_update_that_would_make_a_program_unrunnable_is_refused(api: TestClient) -> None:
    stored = created(api, "/programs", program(amplitude_ma=20))
    path = f"/api/v1/programs/{stored['id']}"
    etag = api.get(path).headers["ETag"]
    louder = [{**stored["channels"][0], "amplitude_ua": 150_000}]

    response = api.patch(path, json={"channels": louder}, headers={"If-Match": etag})

    assert_problem(response, 422, "channels[0].amplitude_ua")
    assert api.get(path).json()["channels"][0]["amplitude_ua"] == 20_000


def test_every_finding_is_named_and_a_dose_figure_names_its_channel(api: TestClient) -> None:
    body = program(amplitude_ma=120, pulse_width_us=600, frequency_hz=150)
    body["duration_s"] = 4000
    problem = assert_problem(api.post("/api/v1/programs", json=body), 422)
    # The rms current is a figure of the channel, not a field of it: the channel is named.
    assert sorted(e["field"] for e in problem["errors"]) == ["channels[0]", "duration_s"]


def test_a_program_stored_before_a_limit_can_still_be_described(
    api: TestClient, settings: Settings
) -> None:
    """A program stored when a limit was looser (written here past the API) keeps its other
    fields editable; only a change of what the limits engine reads is judged."""
    engine = make_engine(settings.database_url or "")
    with session_scope(engine) as db:
        old = Program(
            name="Legacy",
            modality="microcurrent",
            duration_s=900,
            channels=[
                {"channel": 1, "amplitude_ua": 20_000, "pulse_width_us": 300, "frequency_hz": 40}
            ],
        )
        db.add(old)
        db.flush()
        program_id = old.id
    engine.dispose()
    path = f"/api/v1/programs/{program_id}"
    etag = api.get(path).headers["ETag"]

    described = api.patch(
        path, json={"description": "retired: do not use"}, headers={"If-Match": etag}
    )

    assert described.status_code == 200, described.text
    stale = described.headers["ETag"]
    longer = api.patch(path, json={"duration_s": 1200}, headers={"If-Match": stale})
    assert_problem(longer, 422, "channels[0].amplitude_ua")
