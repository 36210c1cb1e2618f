"""Device capabilities cannot change once built, since the engine keeps what it derives from them.

A running plan's amplitude ranges are found once from its capabilities; were a modality's
ranges raised in place afterwards, live changes would be judged against the old ones. So every
way of changing the modalities is refused, while serialising, pickling and copying still work.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable

import pytest

from sessionlog.safety import DeviceCapabilities, Modality, ModalityCapabilities

from .plans import rehastim2_capabilities

ROOMIER = ModalityCapabilities(
    amplitude_max_ua=200_000,
    pulse_width_min_us=20,
    pulse_width_max_us=500,
    frequency_min_hz=1,
    frequency_max_hz=100,
)

CHANGES: dict[str, Callable[[dict[Modality, ModalityCapabilities]], object]] = {
    "set an item": lambda m: m.__setitem__(Modality.EMS, ROOMIER),
    "delete an item": lambda m: m.__delitem__(Modality.EMS),
    "update": lambda m: m.update({Modality.EMS: ROOMIER}),
    "merge in place": lambda m: m.__ior__({Modality.EMS: ROOMIER}),
    "setdefault": lambda m: m.setdefault(Modality.MICROCURRENT, ROOMIER),
    "pop": lambda m: m.pop(Modality.EMS),
    "popitem": lambda m: m.popitem(),
    "clear": lambda m: m.clear(),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_the_modalities_of_device_capabilities_cannot_be_changed(
    change: Callable[[dict[Modality, ModalityCapabilities]], object],
) -> None:
    capabilities = rehastim2_capabilities()
    before = dict(capabilities.modalities)
    with pytest.raises(TypeError, match="read-only"):
        change(capabilities.modalities)
    assert capabilities.modalities == before


@pytest.mark.parametrize(
    "duplicate",
    [copy.copy, copy.deepcopy, lambda c: pickle.loads(pickle.dumps(c))],
    ids=["copy", "deepcopy", "pickle"],
)
def test_copies_of_device_capabilities_are_equal_and_as_read_only(
    duplicate: Callable[[DeviceCapabilities], DeviceCapabilities],
) -> None:
    capabilities = rehastim2_capabilities()
    copied = duplicate(capabilities)
    assert copied == capabilities
    with pytest.raises(TypeError, match="read-only"):
        copied.modalities[Modality.EMS] = ROOMIER


def test_device_capabilities_round_trip_through_json_and_are_hashable() -> None:
    capabilities = rehastim2_capabilities()
    again = DeviceCapabilities.model_validate_json(capabilities.model_dump_json())
    assert again == capabilities
    assert hash(again) == hash(capabilities)
    assert {capabilities: "kept"}[again] == "kept"
