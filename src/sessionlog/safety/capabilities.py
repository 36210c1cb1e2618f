"""Device capabilities: what a stimulator can deliver, declared as data by its driver.

A driver states its ranges and steps here instead of checking parameters itself; the limits engine
reads them as the device layer, so a value the hardware cannot produce exactly is refused before it
reaches the wire rather than rounded or clamped by firmware. The HAL imports this model from here.
"""

from __future__ import annotations

from typing import Annotated, Generic, NoReturn, Self, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from sessionlog.safety.plan import Modality, PhaseType, Waveform


class ModalityCapabilities(BaseModel):
    """Ranges for one modality. Amplitudes must be exact multiples of the step: nothing rounds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    amplitude_min_ua: int = Field(default=0, ge=0)
    amplitude_max_ua: int = Field(ge=0)
    amplitude_step_ua: int = Field(default=1, gt=0)
    pulse_width_min_us: int = Field(gt=0)
    pulse_width_max_us: int = Field(gt=0)
    pulse_width_step_us: int = Field(default=1, gt=0)
    frequency_min_hz: float = Field(gt=0, allow_inf_nan=False)
    frequency_max_hz: float = Field(gt=0, allow_inf_nan=False)
    waveforms: frozenset[Waveform] | None = None
    """Waveforms the output stage can produce; None means any."""
    phase_types: frozenset[PhaseType] | None = None
    """Pulse phase types the output stage can produce; None means any."""

    @model_validator(mode="after")
    def _ranges_ordered(self) -> Self:
        for name, low, high in (
            ("amplitude", self.amplitude_min_ua, self.amplitude_max_ua),
            ("pulse_width", self.pulse_width_min_us, self.pulse_width_max_us),
            ("frequency", self.frequency_min_hz, self.frequency_max_hz),
        ):
            if low > high:
                raise ValueError(f"{name} range is empty: minimum {low} > maximum {high}")
        return self


K = TypeVar("K")
V = TypeVar("V")


class ReadOnlyDict(dict[K, V], Generic[K, V]):
    """A dict that refuses every change after it is built.

    Capabilities are frozen because the limits engine keeps what it derives from them (the
    amplitude range of a running plan's channel): a modality's ranges changed in place would
    leave that behind. A dict subclass rather than ``MappingProxyType``, so that pydantic
    serialises it, and pickling and deep copies rebuild it, like any dict.
    """

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("device capabilities are read-only: build new ones instead")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> tuple[type[ReadOnlyDict[K, V]], tuple[dict[K, V]]]:
        return type(self), (dict(self),)

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))


def _read_only(value: dict[K, V]) -> ReadOnlyDict[K, V]:
    return ReadOnlyDict(value)


class DeviceCapabilities(BaseModel):
    """Everything the device layer of the limits engine knows about one stimulator model.

    The density limits are for devices whose instructions for use set stricter values than the
    standard profiles (the RehaStim 2 IFU: power density ≤ 0.1 W/cm², current density ≤ 2 mA/cm²);
    at the device layer they are hard limits, not warnings.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model_name: str = Field(min_length=1)
    channel_count: int = Field(ge=1, le=64)
    modalities: Annotated[dict[Modality, ModalityCapabilities], AfterValidator(_read_only)] = Field(
        min_length=1
    )
    """Supported modalities and their ranges; a modality that is not a key is not supported."""
    max_current_density_ma_per_cm2: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_power_density_w_per_cm2: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    min_main_stimulation_interval_ms: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Shortest time between pulses on a channel (ScienceMode2: 8 ms), i.e. a frequency ceiling."""

    @property
    def supported_modalities(self) -> frozenset[Modality]:
        return frozenset(self.modalities)

    def for_modality(self, modality: Modality) -> ModalityCapabilities | None:
        return self.modalities.get(modality)
