"""The driver for the simulated reference stimulator: pure I/O, as every driver should be.

It translates approved plans into the simulated protocol's frames and the device's frames into the
HAL's replies, telemetry and fault reports. Locking, timeouts, the heartbeat thread, approval checks
and stop-on-error all live in ``sessionlog.hal.Driver``; this module only knows bytes.
"""

from __future__ import annotations

import itertools

from sessionlog.hal import (
    DeviceFaultReport,
    DeviceIdentity,
    DeviceStatus,
    Driver,
    Inbound,
    PlanNotEncodableError,
    Reply,
    SerialTransport,
    TelemetryReading,
)
from sessionlog.safety.capabilities import DeviceCapabilities, ModalityCapabilities
from sessionlog.safety.plan import Modality, PhaseType, Polarity, StimulationPlan, Waveform
from sessionlog_drivers.simulated import URL_HANDLER_PACKAGE
from sessionlog_drivers.simulated import protocol as wire

IDEMPOTENT_RETRIES = 2
"""Times an idempotent command is sent again when its reply is lost or damaged on the line."""

EMERGENCY_STOP_SEQ = 0xFF
"""Reserved for the pre-encoded emergency stop, so its late acknowledgement never matches a request."""

_MODALITIES = {Modality.EMS: wire.Modality.EMS, Modality.MICROCURRENT: wire.Modality.MICROCURRENT}
_PHASE_TYPES = {
    PhaseType.BIPHASIC_SYMMETRIC: wire.PhaseType.BIPHASIC_SYMMETRIC,
    PhaseType.BIPHASIC_ASYMMETRIC: wire.PhaseType.BIPHASIC_ASYMMETRIC,
    PhaseType.MONOPHASIC: wire.PhaseType.MONOPHASIC,
}
# The device has no "alternating" setting: a biphasic pulse alternates by construction, and the
# first phase of every pulse is then the positive one.
_POLARITIES = {
    Polarity.POSITIVE: wire.Polarity.POSITIVE_FIRST,
    Polarity.ALTERNATING: wire.Polarity.POSITIVE_FIRST,
    Polarity.NEGATIVE: wire.Polarity.NEGATIVE_FIRST,
}
_OUTPUT_KEEPING_FAULTS = frozenset({wire.ErrorCode.ELECTRODE_OFF})
"""Device faults after which the device keeps its other channels on (it pauses only the one)."""


def millihertz(frequency_hz: float) -> int:
    """The exact mHz value of a frequency; one the wire cannot carry exactly is refused, not rounded."""
    value = frequency_hz * 1000
    nearest = round(value)
    if not abs(value - nearest) <= 1e-6:  # NaN is refused too
        raise ValueError(f"{frequency_hz} Hz is not a whole number of mHz")
    return nearest


class SimulatedDriver(Driver):
    """Driver for the simulated reference stimulator (``sim://`` in process, or a pty/TCP server)."""

    name = "simulated"
    url_handler_package = URL_HANDLER_PACKAGE
    emulator_url = "sim://?channels=2&seed=7"
    heartbeat_interval_s = 0.2
    reply_timeout_s = 0.5
    device_check_every = 4
    """Every fourth heartbeat reads the status: output the driver believes off is a fault."""

    def __init__(self, transport: SerialTransport) -> None:
        super().__init__(transport)
        self._channels_in_plan = 0
        self._decoder = wire.FrameDecoder(accepted=wire.DEVICE_COMMANDS)
        self._sequence = itertools.cycle(range(EMERGENCY_STOP_SEQ))
        self._stop_frame = wire.encode_frame(wire.Frame(EMERGENCY_STOP_SEQ, wire.EmergencyStop()))
        self._device_identity: wire.Identity | None = None

    def _frame(self, message: wire.Message) -> tuple[bytes, int]:
        seq = next(self._sequence)
        return wire.encode_frame(wire.Frame(seq, message)), seq

    def _send(self, message: wire.Message, operation: str, *, idempotent: bool = False) -> Reply:
        if idempotent:
            return self._request_idempotent(
                lambda: self._frame(message), operation, retries=IDEMPOTENT_RETRIES
            )
        return self._request(*self._frame(message), operation)

    # -- handshake and description

    def _identify(self) -> DeviceIdentity:
        reply = self._send(wire.Identify(), "identify", idempotent=True)
        identity = reply.payload
        if not isinstance(identity, wire.Identity):
            raise ValueError(f"identify was answered with {type(identity).__name__}")
        self._device_identity = identity
        return DeviceIdentity(
            driver=self.name,
            model=identity.model,
            serial_number=identity.serial_number,
            firmware_version=identity.firmware_version,
        )

    def _device_capabilities(self, identity: DeviceIdentity) -> DeviceCapabilities:
        device = self._device_identity
        assert device is not None
        modalities = {}
        for plan_modality, wire_modality in _MODALITIES.items():
            if wire_modality not in device.modalities:
                continue
            modalities[plan_modality] = ModalityCapabilities(
                amplitude_max_ua=device.max_amplitude_ua(wire_modality),
                pulse_width_min_us=device.pulse_width_min_us,
                pulse_width_max_us=device.pulse_width_max_us,
                frequency_min_hz=device.frequency_min_millihz / 1000,
                frequency_max_hz=device.frequency_max_millihz / 1000,
                waveforms=frozenset({Waveform.RECTANGULAR}),
            )
        return DeviceCapabilities(
            model_name=identity.model, channel_count=device.channel_count, modalities=modalities
        )

    # -- bytes in

    def _decode(self, data: bytes) -> list[Inbound]:
        inbound: list[Inbound] = []
        for frame in self._decoder.feed(data):
            message = frame.message
            if isinstance(message, wire.Ack | wire.Identity | wire.Status):
                inbound.append(Reply(key=frame.seq, accepted=True, payload=message))
            elif isinstance(message, wire.Nak):
                inbound.append(
                    Reply(
                        key=frame.seq,
                        accepted=False,
                        code=int(message.error),
                        reason=message.error.name.lower(),
                    )
                )
            elif isinstance(message, wire.Telemetry):
                inbound.extend(
                    TelemetryReading(
                        channel=sample.channel + 1,
                        current_ua=sample.measured_current_ua,
                        impedance_ohm=sample.impedance_ohm,
                        device_time_ms=message.device_time_ms,
                    )
                    for sample in message.samples
                )
            elif isinstance(message, wire.Fault):
                where = (
                    ""
                    if message.channel == wire.DEVICE_WIDE_CHANNEL
                    else f" on channel {message.channel + 1}"
                )
                inbound.append(
                    DeviceFaultReport(
                        code=message.error.name.lower(),
                        reason=f"{message.error.name.lower().replace('_', ' ')}{where}",
                        stops_output=message.error not in _OUTPUT_KEEPING_FAULTS,
                    )
                )
        self.counters.malformed_frames = self._decoder.counters.malformed
        return inbound

    # -- commands out

    def _check_encodable(self, plan: StimulationPlan) -> None:
        """The wire carries frequencies in whole mHz: anything finer is refused, not rounded. The
        device has no alternating polarity: a biphasic pulse alternates by construction, but
        monophasic pulses all go one way, so "alternating" monophasic pulses are refused rather
        than delivered as a one-way (net DC) train under a record that says otherwise."""
        problems = []
        for channel in plan.channels:
            try:
                millihertz(channel.frequency_hz)
            except ValueError as error:
                problems.append(f"channel {channel.channel}: {error}")
            if (
                channel.phase_type is PhaseType.MONOPHASIC
                and channel.polarity is Polarity.ALTERNATING
            ):
                problems.append(
                    f"channel {channel.channel}: the device cannot alternate the polarity of "
                    "monophasic pulses (give positive or negative)"
                )
        if problems:
            raise PlanNotEncodableError("; ".join(problems))

    def _apply(self, plan: StimulationPlan) -> None:
        self._channels_in_plan = wire.channel_mask(channel.channel - 1 for channel in plan.channels)
        for channel in plan.channels:
            self._send(
                wire.ConfigureChannel(
                    channel=channel.channel - 1,
                    modality=_MODALITIES[plan.modality],
                    amplitude_ua=channel.amplitude_ua,
                    pulse_width_us=channel.pulse_width_us,
                    frequency_millihz=millihertz(channel.frequency_hz),
                    phase_type=_PHASE_TYPES[channel.phase_type],
                    polarity=_POLARITIES[channel.polarity],
                ),
                f"configure channel {channel.channel}",
                idempotent=True,
            )

    def _start(self, plan: StimulationPlan) -> None:
        self._send(wire.Start(self._channels_in_plan), "start")

    def _set_amplitude(self, plan: StimulationPlan, channel: int, amplitude_ua: int) -> None:
        self._send(
            wire.SetAmplitude(channel - 1, amplitude_ua),
            f"set channel {channel} amplitude",
            idempotent=True,
        )

    def _pause(self) -> None:
        self._send(wire.Pause(self._channels_in_plan), "pause", idempotent=True)

    def _resume(self) -> None:
        self._send(wire.Resume(self._channels_in_plan), "resume")

    def _stop(self) -> None:
        self._send(wire.Stop(), "stop", idempotent=True)

    def _emergency_stop_frame(self) -> bytes:
        return self._stop_frame

    def _emergency_stop_reply_key(self) -> int:
        return EMERGENCY_STOP_SEQ

    def _heartbeat_interval_s(self) -> float:
        """The protocol asks a host to beat at least every third of the watchdog time the device
        reports in IDENTITY; a device set to a short watchdog gets a faster heartbeat."""
        device = self._device_identity
        if device is None:
            return self.heartbeat_interval_s
        return min(self.heartbeat_interval_s, device.watchdog_timeout_ms / 3000)

    def _watchdog_timeout_s(self) -> float | None:
        device = self._device_identity
        return None if device is None else device.watchdog_timeout_ms / 1000

    def _read_status(self) -> DeviceStatus:
        status = self._send(wire.GetStatus(), "read status", idempotent=True).payload
        if not isinstance(status, wire.Status):
            raise ValueError(f"read status was answered with {type(status).__name__}")
        active = frozenset(
            index + 1
            for index, channel in enumerate(status.channels)
            if channel.state is wire.ChannelState.RUNNING
        )
        return DeviceStatus(
            output_active=bool(active),
            channels_active=active,
            channels_paused=frozenset(
                index + 1
                for index, channel in enumerate(status.channels)
                if channel.state is wire.ChannelState.PAUSED
            ),
            amplitudes_ua={
                index + 1: channel.output_amplitude_ua
                for index, channel in enumerate(status.channels)
            },
            conditions=tuple(
                flag.name.lower()
                for flag in wire.DeviceFlags
                if flag and flag.name and flag in status.flags
            ),
        )

    def _send_heartbeat(self) -> None:
        self._send(wire.Heartbeat(), "heartbeat", idempotent=True)
