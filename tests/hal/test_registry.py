"""Drivers are found through the entry-point group, and a missing or broken one is a clear error.

The third-party cases install a real distribution (a ``.dist-info`` folder on ``sys.path``), so the
lookup runs through ``importlib.metadata`` exactly as it does for an installed package.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sessionlog.hal import DriverLoadError, DriverNotFoundError, available_drivers, load_driver


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    dist = tmp_path / "acme_stim-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-stim\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[sessionlog.drivers]\n"
        "acme-broken = acme_missing_module:AcmeDriver\n"
        "acme-wrong-type = json:JSONDecoder\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_unknown_driver_names_itself_and_the_available_ones(third_party: Path) -> None:
    with pytest.raises(DriverNotFoundError, match="'nope'") as caught:
        load_driver("nope")
    assert "acme-broken" in str(caught.value)


def test_third_party_entry_points_are_listed(third_party: Path) -> None:
    assert {"acme-broken", "acme-wrong-type"} <= set(available_drivers())


def test_a_driver_whose_module_is_missing_is_a_load_error_naming_it(third_party: Path) -> None:
    with pytest.raises(DriverLoadError, match=r"acme-broken.*ModuleNotFoundError"):
        load_driver("acme-broken")


def test_an_entry_point_that_is_not_a_driver_is_refused(third_party: Path) -> None:
    with pytest.raises(DriverLoadError, match="not a subclass"):
        load_driver("acme-wrong-type")
