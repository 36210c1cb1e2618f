"""Site policy files (TOML or JSON) load into the site layer, and a bad file names file and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sessionlog.safety import (
    BodySite,
    Modality,
    SitePolicyError,
    load_site_policy,
)

EXAMPLE_TOML = """\
name = "Clinic A, room 2"
warnings_acknowledgeable = false
forbidden_body_sites = ["abdomen"]

[ems]
max_amplitude_ma = 80
max_frequency_hz = 100.0
max_pulse_width_us = 400
max_duration_s = 1800
max_current_density_ma_per_cm2 = 1.5
forbidden_body_sites = ["lower_back"]

[microcurrent]
max_amplitude_ua = 600
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_toml_policy_loads_every_field_with_amplitudes_in_microamperes(tmp_path: Path) -> None:
    policy = load_site_policy(_write(tmp_path, "site.toml", EXAMPLE_TOML))

    assert policy.name == "Clinic A, room 2"
    assert policy.warnings_acknowledgeable is False
    assert policy.ems.max_amplitude_ua == 80_000
    assert policy.ems.max_frequency_hz == 100.0
    assert policy.ems.max_pulse_width_us == 400
    assert policy.ems.max_duration_s == 1800
    assert policy.ems.max_current_density_ma_per_cm2 == 1.5
    assert policy.microcurrent.max_amplitude_ua == 600
    assert policy.forbidden_sites_for(Modality.EMS) == {BodySite.ABDOMEN, BodySite.LOWER_BACK}
    assert policy.forbidden_sites_for(Modality.MICROCURRENT) == {BodySite.ABDOMEN}


def test_json_policy_loads_the_same_as_toml(tmp_path: Path) -> None:
    data = {"ems": {"max_amplitude_ua": 80_000}, "forbidden_body_sites": ["abdomen"]}
    policy = load_site_policy(_write(tmp_path, "site.json", json.dumps(data)))

    assert policy.ems.max_amplitude_ua == 80_000
    assert policy.forbidden_body_sites == {BodySite.ABDOMEN}
    assert policy.warnings_acknowledgeable is True


def test_empty_policy_restricts_nothing_beyond_the_defaults(tmp_path: Path) -> None:
    policy = load_site_policy(_write(tmp_path, "site.toml", ""))
    assert policy.ems.max_amplitude_ua is None
    assert policy.forbidden_body_sites == frozenset()


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[ems]\nmax_amplitude = 80\n", "ems.max_amplitude"),
        ("[ems]\nmax_amplitude_ma = 80\nmax_amplitude_ua = 80000\n", "ems"),
        ("[microcurrent]\nmax_frequency_hz = -1\n", "microcurrent.max_frequency_hz"),
        ('forbidden_body_sites = ["elbow"]\n', "forbidden_body_sites"),
        ("[tens]\nmax_amplitude_ma = 1\n", "tens"),
        # A value in µA given in mA: it would restrict nothing, so it is refused as a mix-up.
        ("[microcurrent]\nmax_amplitude_ma = 600\n", "microcurrent: Value error, a microcurrent"),
        # Too large for any current (and for the float conversion): an error, not a traceback.
        ("[ems]\nmax_amplitude_ma = 1e306\n", "ems: Value error, max_amplitude_ma must be at most"),
        ('{"ems": {"max_amplitude_ma": 1' + "0" * 400 + "}}", "ems: Value error"),
        ("[ems]\nmax_amplitude_ua = 2000000\n", "ems.max_amplitude_ua"),
    ],
)
def test_bad_field_error_names_the_file_and_the_field(
    tmp_path: Path, text: str, field: str
) -> None:
    path = _write(tmp_path, "site.json" if text.startswith("{") else "site.toml", text)
    with pytest.raises(SitePolicyError) as raised:
        load_site_policy(path)
    message = str(raised.value)
    assert str(path) in message
    assert field in message


def test_syntax_error_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "site.toml", "name = 'ok'\n[ems\n")
    with pytest.raises(SitePolicyError, match=r"site\.toml: not valid TOML.*line 2"):
        load_site_policy(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SitePolicyError, match="cannot read"):
        load_site_policy(tmp_path / "absent.toml")


def test_unknown_file_type_is_refused_rather_than_guessed(tmp_path: Path) -> None:
    with pytest.raises(SitePolicyError, match=r"\.toml or \.json"):
        load_site_policy(_write(tmp_path, "site.yaml", "ems: {}\n"))


def test_the_site_policy_example_in_the_docs_loads(tmp_path: Path) -> None:
    docs = Path(__file__).parents[2] / "docs" / "safety.md"
    example = docs.read_text(encoding="utf-8").split("```toml\n", 1)[1].split("```", 1)[0]

    policy = load_site_policy(_write(tmp_path, "site.toml", example))

    assert policy.ems.max_amplitude_ua == 80_000
    assert policy.microcurrent.max_amplitude_ua == 600
