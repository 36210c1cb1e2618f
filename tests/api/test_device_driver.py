"""A device names a driver that is installed: any other name is a 422 naming `driver` and listing
the drivers of the `sessionlog.drivers` entry-point group."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from sessionlog.hal.registry import available_drivers
from tests.api.conftest import assert_problem


@pytest.mark.parametrize("driver", ["nosuch", "Simulated", "simulated2"])
def test_an_unknown_driver_is_refused_naming_the_available_ones(
    api: TestClient, driver: str
) -> None:
    body = {"driver": driver, "serial_number": "SN-1", "model": "Reference"}
    problem = assert_problem(api.post("/api/v1/devices", json=body), 422, "driver")
    reason = next(e["reason"] for e in problem["errors"] if e["field"] == "driver")
    assert driver in reason
    for installed in available_drivers():
        assert installed in reason
    assert api.get("/api/v1/devices").json()["items"] == []


@pytest.mark.parametrize("driver", available_drivers())
def test_every_installed_driver_is_accepted(api: TestClient, driver: str) -> None:
    body = {"driver": driver, "serial_number": "SN-1", "model": "Reference"}
    assert api.post("/api/v1/devices", json=body).status_code == 201
