"""The driver base class: the one place that owns locking, timeouts, heartbeat and fail-safe handling.

A driver author implements small ``_underscore`` methods that turn a request into bytes and bytes
into ``Reply``/``TelemetryReading``/``DeviceFaultReport``; the public methods here do everything
else once, for every driver: they accept only plans the limits engine approved against this very
device, serialise commands, match replies to requests, keep the device's watchdog fed, watch the
incoming stream, and on any exception, timeout, refusal, lost heartbeat, garbage burst or disconnect
they stop output (best effort on the wire), enter the FAULTED state and report the reason. Nothing is
retried silently and nothing is clamped: a driver never decides what is allowed.

One thread at a time reads the port (it "owns the input"): the reader thread while no request waits
for a reply, otherwise a requesting thread itself, which reads and dispatches every frame it meets,
telemetry and device faults included, until its reply is in. A request thus costs no thread switch
(a reply handed from a reader thread to the waiting caller cost two), and still every byte is read
by exactly one thread and every frame dispatched the same way whichever thread read it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType, TracebackType
from typing import ClassVar, Self, TypeVar

from sessionlog.hal.errors import (
    DeviceFaultError,
    DeviceRefusedError,
    DuplicateReplyKeyError,
    HalError,
    InvalidStateError,
    PlanNotApprovedError,
    ReplyTimeoutError,
)
from sessionlog.hal.transport import SerialSettings, SerialTransport
from sessionlog.safety.capabilities import DeviceCapabilities
from sessionlog.safety.plan import Modality, StimulationPlan
from sessionlog.safety.verdict import ApprovedPlan

logger = logging.getLogger(__name__)

T = TypeVar("T")


class DriverState(StrEnum):
    DISCONNECTED = "disconnected"
    READY = "ready"
    CONFIGURED = "configured"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FAULTED = "faulted"
    CLOSED = "closed"


OUTPUT_STATES = frozenset({DriverState.RUNNING, DriverState.PAUSED})
CONNECTED_STATES = frozenset(
    {
        DriverState.READY,
        DriverState.CONFIGURED,
        DriverState.RUNNING,
        DriverState.PAUSED,
        DriverState.STOPPED,
    }
)


@dataclass(frozen=True)
class DeviceIdentity:
    driver: str
    model: str
    serial_number: str
    firmware_version: str


@dataclass(frozen=True)
class Reply:
    """A device's answer to one request, matched to it by ``key`` (e.g. a sequence number)."""

    key: Hashable
    accepted: bool
    code: int = 0
    reason: str = ""
    payload: object = None


@dataclass(frozen=True)
class TelemetryReading:
    channel: int
    current_ua: int
    impedance_ohm: int
    device_time_ms: int | None = None
    received_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class DeviceStatus:
    """The device's own account of its output, read from it: what flows, not what the host
    believes. Fields a device does not report are left at their defaults."""

    output_active: bool
    channels_active: frozenset[int] = frozenset()
    """1-based channels delivering output now."""
    channels_paused: frozenset[int] = frozenset()
    """1-based channels the device holds paused by itself while the host runs them (one whose
    electrode came off stays paused after it is back, until the host resumes it)."""
    amplitudes_ua: Mapping[int, int] | None = None
    """Per 1-based channel, the amplitude the output stage delivers now, if the device says."""
    conditions: tuple[str, ...] = ()
    """Conditions the device reports (``electrode_off``, ``watchdog_expired``, ...)."""
    read_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class DeviceFaultReport:
    """Something the device reported on its own (emergency switch, electrode off, watchdog)."""

    code: str
    reason: str
    stops_output: bool = True


Inbound = Reply | TelemetryReading | DeviceFaultReport
Listener = Callable[[TelemetryReading | DeviceFaultReport], None]


@dataclass
class LinkCounters:
    """What went wrong on the link, kept for the session record."""

    malformed_frames: int = 0
    reply_timeouts: int = 0
    refusals: int = 0
    unmatched_replies: int = 0
    retried_requests: int = 0
    telemetry_readings: int = 0


class _Waiter:
    """The slot a request's reply is put in (under the driver's input lock) by whoever reads it."""

    __slots__ = ("reply",)

    def __init__(self) -> None:
        self.reply: Reply | None = None


@dataclass(frozen=True)
class _StopConfirmation:
    """An emergency stop written and not yet acknowledged: its reply slot and the deadline."""

    key: Hashable
    waiter: _Waiter
    deadline: float


class _OvertakenByEmergencyStopError(Exception):
    """Raised by ``_request`` instead of writing a frame of a command an emergency stop overtook:
    a command of several frames must not carry on past the stop (it might start output again)."""


class _DeviceCheckFailedError(Exception):
    """A periodic device check failed: the device contradicts the driver, or did not answer."""


def _void_by_close(operation: str) -> InvalidStateError:
    return InvalidStateError(f"{operation} is void: the driver was closed while it was in progress")


def _void_by_emergency_stop(operation: str) -> InvalidStateError:
    return InvalidStateError(
        f"{operation} is void: an emergency stop was made while it was in progress, and output "
        "stays stopped"
    )


def _same(new: object, old: object) -> bool:
    return new is old or new == old


def _check_same_context(change: ApprovedPlan, running: ApprovedPlan) -> None:
    """Refuse a live change approved against other layers, site policy or client than the
    running plan (capabilities are checked against the driver's own for every plan)."""
    if (
        change.layers is running.layers
        and change.site_policy is running.site_policy
        and change.client is running.client
    ):
        return  # the limits engine hands a live change the running plan's very context
    differing = [
        name
        for name, new, old in (
            ("layers", change.layers, running.layers),
            ("site policy", change.site_policy, running.site_policy),
            ("client", change.client, running.client),
        )
        if not _same(new, old)
    ]
    if differing:
        raise PlanNotApprovedError(
            f"the change was approved with another {', '.join(differing)} than the running plan "
            f"(layers {', '.join(running.layers)}); approve it with LimitsEngine.approve_change "
            "on the running plan"
        )


def _alters_more_than_amplitude(new: StimulationPlan, old: StimulationPlan, channel: int) -> bool:
    """Whether ``new`` differs from ``old`` in anything but the amplitude of ``channel``.

    Compares the models' field dictionaries with the channels (or the amplitude) masked, since
    this runs on every live change: the limits engine shares unchanged parts between a plan and
    its live changes, so most values are the very same objects, and a dictionary comparison
    tries identity first, in C."""
    if new is old:
        return False
    if {**vars(new), "channels": None} != {**vars(old), "channels": None}:
        return True
    if len(new.channels) != len(old.channels):
        return True
    for new_channel, old_channel in zip(new.channels, old.channels, strict=True):
        if new_channel is old_channel:
            continue
        if new_channel.channel != channel:
            if new_channel != old_channel:
                return True
        elif {**vars(new_channel), "amplitude_ua": None} != {
            **vars(old_channel),
            "amplitude_ua": None,
        }:
            return True
    return False


def _commanded_ua(approved: ApprovedPlan, channel: int) -> int:
    """The amplitude ``approved`` commands on 1-based ``channel``; 0 for a channel not in it."""
    return next((c.amplitude_ua for c in approved.plan.channels if c.channel == channel), 0)


class Driver(ABC):
    """Base class of every stimulator driver. Subclasses implement the ``_underscore`` methods."""

    name: ClassVar[str]
    """The entry-point name the driver is registered under."""
    serial_settings: ClassVar[SerialSettings] = SerialSettings()
    usb_ids: ClassVar[frozenset[tuple[int, int]]] = frozenset()
    """USB (vendor id, product id) pairs of the adapters this driver's devices use, for discovery."""
    url_handler_package: ClassVar[str | None] = None
    """A package holding pyserial ``protocol_<scheme>`` handlers for the driver's emulator."""
    emulator_url: ClassVar[str | None] = None
    """The URL of the driver's emulator, where the conformance suite runs by default."""
    heartbeat_interval_s: ClassVar[float] = 0.25
    reply_timeout_s: ClassVar[float] = 0.5
    malformed_burst_limit: ClassVar[int] = 20
    """More malformed frames than this within ``malformed_burst_window_s`` is a garbage stream."""
    malformed_burst_window_s: ClassVar[float] = 1.0
    device_check_every: ClassVar[int] = 0
    """Every n-th heartbeat checks the device against the driver's state (``_check_device``)
    instead of only feeding its watchdog; 0 never does."""
    overcurrent_tolerance: ClassVar[float] = 0.10
    """A measured current above the commanded amplitude by more than this share (and more than
    ``overcurrent_floor_ua``) is output nobody approved: a fault, whatever its cause."""
    overcurrent_floor_ua: ClassVar[Mapping[Modality, int]] = MappingProxyType(
        {Modality.EMS: 100, Modality.MICROCURRENT: 10}
    )
    """Per modality of the plan the device holds (the smallest when it holds none): a fixed
    margin fit for EMS would hide a fivefold excess on a 20 µA microcurrent channel."""
    stopped_conditions: ClassVar[frozenset[str]] = frozenset(
        {"hardware_fault", "watchdog_expired", "emergency_stopped"}
    )
    """``DeviceStatus.conditions`` that say the device stopped its output by itself."""
    parked_recheck_s: ClassVar[float] = 0.005
    """How long the reader thread stays parked after the last waiting request is done before it
    reads again. Requests do not wake it: under a stream of commands that would cost a thread
    switch per command, the very cost this design removes. Frames that arrive in between wait
    in the port's buffer, never lost, for at most this long plus one read."""

    def __init__(self, transport: SerialTransport) -> None:
        self._transport = transport
        self._state = DriverState.DISCONNECTED
        self._state_lock = threading.RLock()
        self._command_lock = threading.Lock()
        # The input lock guards who reads the port, the requests waiting for a reply and their
        # reply slots; it is never held while reading, writing or calling out.
        self._input = threading.Lock()
        self._input_released = threading.Condition(self._input)
        """Notified when the thread reading the port stops, having perhaps filled reply slots."""
        self._reader_parked = threading.Condition(self._input)
        """Where the reader thread waits while requests wait; ``close`` notifies it."""
        self._input_owner: int | None = None
        self._requests_waiting = 0
        self._waiting_for_input = 0
        """Requests waiting on ``_input_released``; with none, a release need notify nobody."""
        self._waiters: dict[Hashable, _Waiter] = {}
        self._listeners: list[Listener] = []
        self._fault_reason: str | None = None
        self._emergency_stops = 0
        """Emergency stops made, counted under the state lock, so a command sees one that
        overtook it."""
        self._voidable_command: tuple[int, int] | None = None
        """(thread, emergency stops when it began) of the command in progress that an emergency
        stop would undo; ``_request`` writes no further frame of it once a stop overtook it."""
        self._identity: DeviceIdentity | None = None
        self._capabilities: DeviceCapabilities | None = None
        self._approved: ApprovedPlan | None = None
        self._plan_in_progress: ApprovedPlan | None = None
        """The plan a command in progress puts on the device (a live change's), so that the
        readings met meanwhile are judged against it as well as against the plan held."""
        self._stop_confirmation: _StopConfirmation | None = None
        self._latest_telemetry: dict[int, TelemetryReading] = {}
        self._heartbeats = 0
        self._last_emergency_stop = -float("inf")
        """When the last emergency stop was written (monotonic seconds)."""
        self._shutdown = threading.Event()
        self._reader: threading.Thread | None = None
        self._heartbeat: threading.Thread | None = None
        self._heartbeat_ident: int | None = None
        self._heartbeat_reply_timeout_s = self.reply_timeout_s
        self._heartbeat_longest_wait_s = self.reply_timeout_s
        self._slowest_reply_s = 0.0
        """How long the device took to answer, at most, lately (see ``_request``)."""
        self._reply_times: deque[float] = deque(maxlen=32)
        """When the latest replies were dispatched, matched or not (see ``_beat``)."""
        self._malformed_times: deque[float] = deque()
        self.counters = LinkCounters()

    # ------------------------------------------------------------------ what a driver implements

    @abstractmethod
    def _identify(self) -> DeviceIdentity:
        """Handshake with the device and say what it is. Runs with the reader already started."""

    @abstractmethod
    def _device_capabilities(self, identity: DeviceIdentity) -> DeviceCapabilities:
        """The ranges this device can deliver; the limits engine's device layer."""

    @abstractmethod
    def _decode(self, data: bytes) -> list[Inbound]:
        """Turn received bytes into messages; keep partial frames for the next call; never raise
        on garbage, count it in ``self.counters.malformed_frames`` instead."""

    def _check_encodable(self, plan: StimulationPlan) -> None:
        """Raise ``PlanNotEncodableError`` if the wire format cannot carry ``plan`` exactly.

        Called before anything is written, so a plan the device cannot express is a refusal, not
        a fault. Ramps and on/off duty cycles are never a reason: the session runner drives them
        through ``set_amplitude``, so a driver ignores those fields. Most wire formats carry every
        approved plan: the default accepts it."""
        return

    @abstractmethod
    def _apply(self, plan: StimulationPlan) -> None:
        """Send the (approved) parameters of every channel to the device, output off."""

    @abstractmethod
    def _start(self, plan: StimulationPlan) -> None: ...

    @abstractmethod
    def _set_amplitude(self, plan: StimulationPlan, channel: int, amplitude_ua: int) -> None: ...

    @abstractmethod
    def _pause(self) -> None: ...

    @abstractmethod
    def _resume(self) -> None: ...

    @abstractmethod
    def _stop(self) -> None: ...

    @abstractmethod
    def _emergency_stop_frame(self) -> bytes:
        """The bytes that stop all output at once; written without waiting for any lock."""

    def _check_device(self, state: DriverState) -> None:
        """Raise if what the device reports contradicts ``state``; called on the heartbeat
        thread every ``device_check_every`` beats, under the command lock, and feeding the
        watchdog itself. By default the device's status (``_read_status``) must show:

        - no output while the driver believes it off;
        - while output is on or paused, none of ``stopped_conditions``: the device stopped by
          itself, and the report of it (a fault frame) was lost on the line;
        - while the driver runs, every channel of the plan it holds delivering, at the amplitude
          held, if the device reports amplitudes; a channel the device paused by itself (an
          electrode that came off: ``channels_paused``, or the ``electrode_off`` condition) is
          allowed, as the device reports that by itself.
        """
        status = self._read_status()
        if self.state is not state:
            return  # changed under the check (an emergency stop needs no command lock)
        if state is not DriverState.RUNNING and status.output_active:
            channels = ", ".join(str(c) for c in sorted(status.channels_active))
            raise RuntimeError(
                f"the device delivers output on channel(s) {channels} while the driver is {state}"
            )
        if state not in OUTPUT_STATES:
            return
        stopped = [c for c in status.conditions if c in self.stopped_conditions]
        if stopped:
            raise RuntimeError(
                f"the device reports {', '.join(stopped)} while the driver is {state}"
            )
        held = self._approved
        if state is not DriverState.RUNNING or held is None:
            return
        for channel in held.plan.channels:
            if not channel.amplitude_ua:
                continue
            if channel.channel not in status.channels_active:
                if channel.channel in status.channels_paused or (
                    "electrode_off" in status.conditions
                ):
                    self._report_held_channel(channel.channel, status)
                    continue
                raise RuntimeError(
                    f"the device delivers no output on channel {channel.channel} while the "
                    "driver is running"
                )
            delivered = (status.amplitudes_ua or {}).get(channel.channel)
            if delivered is not None and delivered != channel.amplitude_ua:
                raise RuntimeError(
                    f"the device delivers {delivered} µA on channel {channel.channel} where "
                    f"{channel.amplitude_ua} µA was commanded"
                )

    def _report_held_channel(self, channel: int, status: DeviceStatus) -> None:
        """Tell listeners that the device holds ``channel`` paused by itself while the driver
        runs it. The device reports that on its own (an electrode off), but the report may have
        been lost on the line, and the channel stays paused after the electrode is back until
        the host resumes it: without this, a session would go on recording output the device
        does not deliver. A listener such as the session runner pauses and lets the practitioner
        resume; the device keeps no output on, so it is no fault."""
        electrode_off = "electrode_off" in status.conditions
        self._notify(
            DeviceFaultReport(
                code="electrode_off" if electrode_off else "channel_paused_by_device",
                reason=f"the device holds channel {channel} paused"
                + (" (an electrode is off)" if electrode_off else " by itself"),
                stops_output=False,
            )
        )

    def _heartbeat_interval_s(self) -> float:
        """How often the heartbeat thread beats; asked once, after the handshake, so a driver
        can fit it to the watchdog time its device reported (default: ``heartbeat_interval_s``)."""
        return self.heartbeat_interval_s

    def _watchdog_timeout_s(self) -> float | None:
        """How long the device keeps its output without hearing from the host, if the driver
        knows: a heartbeat waits for its reply only as long as leaves time to send again before
        that (default None: the full ``reply_timeout_s``)."""
        return None

    def _read_status(self) -> DeviceStatus:
        """Ask the device for its status (with ``_request``). Optional: without it,
        ``read_status`` says the driver cannot, and nothing is sent."""
        raise NotImplementedError

    def _emergency_stop_reply_key(self) -> Hashable | None:
        """The key of the device's acknowledgement of ``_emergency_stop_frame``, or None if the
        device does not acknowledge it. With a key, an emergency stop that is not acknowledged
        within ``reply_timeout_s`` (lost on the line, or refused) faults the driver, which ends
        the heartbeat, so that the device's watchdog stops the output. Without one, a stop lost
        on the line goes unnoticed until the next device check, so the conformance suite fails
        a driver that returns None."""
        return None

    @abstractmethod
    def _send_heartbeat(self) -> None:
        """Keep the device's watchdog fed (called every ``heartbeat_interval_s``)."""

    # ------------------------------------------------------------------ services for a driver

    def _request(self, frame: bytes, key: Hashable, operation: str) -> Reply:
        """Write ``frame`` and wait for the reply with ``key``; a refusal or timeout raises.

        Nothing is written once the driver has faulted or closed, or once an emergency stop
        overtook the command this frame belongs to: a command that was split over several frames
        stops there instead of carrying on as if nothing happened. That is judged under the
        transport's write lock, which the stop's own write takes too, so a frame is never written
        after the stop: it goes first, or not at all. While waiting, the calling thread reads the
        port itself whenever no other thread does (see the module docstring), so listeners may be
        called on it.
        """
        me = threading.get_ident()
        self._refuse_write(operation, me)
        self._refuse_on_reading_thread(operation, me)
        timeout_s = self.reply_timeout_s
        if me == self._heartbeat_ident:
            # The device's watchdog must hear from the host within its time even when a reply
            # is lost (see ``_watchdog_timeout_s``), yet a slow link's reply is not lost: the
            # wait is twice the slowest recent reply if that is longer, but never so long that
            # the next frame would come after the watchdog ran out.
            timeout_s = min(
                self._heartbeat_longest_wait_s,
                max(self._heartbeat_reply_timeout_s, 2 * self._slowest_reply_s),
            )
        waiter = _Waiter()
        with self._input:
            if key in self._waiters:
                # Two requests in flight under one key would each take the other's reply: a
                # driver defect, refused before anything is written (inside a command or a
                # heartbeat, the refusal faults the driver and stops the output).
                raise DuplicateReplyKeyError(operation, key)
            self._waiters[key] = waiter
            self._requests_waiting += 1
        try:
            # Written before taking the input, so that a reader in the middle of a read gets the
            # reply at once instead of making this request wait out its poll interval.
            self._transport.write(frame, unless=lambda: self._refuse_write(operation, me))
            sent_at = time.monotonic()
            reply = self._await_reply(waiter, sent_at + timeout_s, me)
            if reply is not None:
                # A maximum that fades (by a twentieth per reply), so one slow reply long ago
                # does not hold the heartbeat's wait up for good. Threads may race here and lose
                # a sample: it only sizes a wait, which the watchdog bounds anyway.
                self._slowest_reply_s = max(
                    time.monotonic() - sent_at, self._slowest_reply_s * 0.95
                )
        finally:
            with self._input:
                self._waiters.pop(key, None)
                self._requests_waiting -= 1
        if reply is None:
            self.counters.reply_timeouts += 1
            raise ReplyTimeoutError(
                f"no acknowledgement of {operation} within {timeout_s * 1000:.0f} ms"
            )
        if not reply.accepted:
            self.counters.refusals += 1
            raise DeviceRefusedError(operation, reply.code, reply.reason or "refused")
        return reply

    def _refuse_write(self, operation: str, me: int) -> None:
        """Raise if a frame of ``operation``, sent by thread ``me``, must not be written now."""
        state = self._state
        if state is DriverState.FAULTED or state is DriverState.CLOSED:
            raise DeviceFaultError(self._fault_reason or f"driver is {state}")
        voidable = self._voidable_command
        if voidable is not None and voidable[0] == me and voidable[1] != self._emergency_stops:
            raise _OvertakenByEmergencyStopError(operation)

    def _await_reply(self, waiter: _Waiter, deadline: float, me: int) -> Reply | None:
        """The reply for ``waiter``, or None at ``deadline``: read the port whenever no other
        thread reads it, else wait until that thread stops (it may have read this reply).
        ``me`` is the calling thread's identity."""
        while True:
            with self._input:
                while waiter.reply is None and self._input_owner is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    self._waiting_for_input += 1
                    try:
                        self._input_released.wait(remaining)
                    finally:
                        self._waiting_for_input -= 1
                if waiter.reply is not None:
                    return waiter.reply
                if time.monotonic() >= deadline:
                    return None
                self._input_owner = me
            try:
                self._read_port()
            except Exception as error:
                self._link_lost(error)
                raise
            finally:
                self._release_input()
            # Set by this very thread's dispatch, if the read brought it: no need to look again
            # under the lock.
            if waiter.reply is not None:
                return waiter.reply

    def _refuse_on_reading_thread(self, operation: str, me: int | None = None) -> None:
        """A listener runs on the thread that reads the port, and a command it issued would wait
        for a reply that only this thread could read (or for the command lock it holds). ``me``
        is the calling thread's identity, if the caller has it already."""
        if self._input_owner == (threading.get_ident() if me is None else me):
            raise InvalidStateError(
                f"{operation} was called from a driver listener; listeners must not issue "
                "commands (hand the work to another thread)"
            )

    def _request_idempotent(
        self, build: Callable[[], tuple[bytes, Hashable]], operation: str, *, retries: int = 2
    ) -> Reply:
        """``_request`` for commands whose repetition has the effect of doing them once
        (heartbeat, configure, set amplitude, pause, stop): when the reply is lost or damaged on
        the line, the command is sent again, as a new frame with a new key, so that a late reply to
        an earlier attempt never counts as a timely answer. ``build`` makes one attempt's frame."""
        for attempt in range(retries + 1):
            frame, key = build()
            try:
                return self._request(frame, key, operation)
            except ReplyTimeoutError:
                if attempt == retries:
                    raise
                self.counters.retried_requests += 1
                logger.warning(
                    "%s: no reply to %s, sending it again", self._transport.url, operation
                )
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ public interface

    @property
    def transport(self) -> SerialTransport:
        return self._transport

    @property
    def state(self) -> DriverState:
        return self._state

    @property
    def fault_reason(self) -> str | None:
        return self._fault_reason

    @property
    def identity(self) -> DeviceIdentity:
        if self._identity is None:
            raise InvalidStateError("connect() first")
        return self._identity

    @property
    def capabilities(self) -> DeviceCapabilities:
        if self._capabilities is None:
            raise InvalidStateError("connect() first")
        return self._capabilities

    @property
    def output_active(self) -> bool:
        return self._state in OUTPUT_STATES

    def add_listener(self, listener: Listener) -> None:
        """Be told of every telemetry reading and device fault.

        A listener is called on the thread that read the event: the reader thread, or a thread
        waiting in a command for its reply. It must return quickly and must not issue driver
        commands (they raise ``InvalidStateError`` there); ``emergency_stop`` is allowed."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener`` (a no-op if it is not registered). An event already being
        dispatched may still reach it once."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def connect(self) -> DeviceIdentity:
        if self._state is not DriverState.DISCONNECTED:
            raise InvalidStateError(f"connect() in state {self._state}")
        self._reader = threading.Thread(
            target=self._read_loop, name=f"{self.name}-reader", daemon=True
        )
        self._reader.start()
        try:
            identity = self._identify()
            capabilities = self._device_capabilities(identity)
        except Exception as error:
            self.close()
            if isinstance(error, HalError):
                raise
            raise HalError(f"handshake with {self._transport.url} failed: {error}") from error
        self._identity, self._capabilities = identity, capabilities
        with self._state_lock:
            if self._state is DriverState.DISCONNECTED:
                self._state = DriverState.READY
            reason = self._fault_reason
        if reason is not None:
            # The reader dispatched a device fault or garbage during the handshake: the device
            # answered, yet it is not one to use.
            self.close()
            raise DeviceFaultError(f"handshake with {self._transport.url} failed: {reason}")
        self._heartbeat = threading.Thread(
            target=self._heartbeat_loop, name=f"{self.name}-heartbeat", daemon=True
        )
        self._heartbeat.start()
        logger.info(
            "connected to %s %s on %s", identity.model, identity.serial_number, self._transport.url
        )
        return identity

    @property
    def applied_plan(self) -> ApprovedPlan | None:
        """The approved plan the device holds: the last one applied, with the live changes that
        took effect since; None before the first ``apply``."""
        return self._approved

    @property
    def can_read_status(self) -> bool:
        """Whether ``read_status`` is implemented for this driver's device."""
        return type(self)._read_status is not Driver._read_status

    def read_status(self) -> DeviceStatus:
        """Ask the device what it delivers now. A command like any other: a status the device
        does not give (no reply, a refusal) faults the driver."""
        if not self.can_read_status:
            raise HalError(f"the {self.name} driver cannot read its device's status")
        statuses: list[DeviceStatus] = []
        self._command(
            "read status",
            CONNECTED_STATES,
            lambda: statuses.append(self._read_status()),
            None,
            concerns_output=False,
        )
        return statuses[0]

    def latest_telemetry(self) -> dict[int, TelemetryReading]:
        """The most recent telemetry reading of each channel (by 1-based number) since connect."""
        return dict(self._latest_telemetry)

    def apply(self, approved: ApprovedPlan) -> None:
        """Load an approved plan's parameters; output stays off until ``start``."""
        self._check_approval(approved)
        self._check_encodable(approved.plan)
        allowed = {DriverState.READY, DriverState.CONFIGURED, DriverState.STOPPED}
        self._command(
            "apply plan",
            allowed,
            lambda: self._apply(approved.plan),
            DriverState.CONFIGURED,
            on_success=lambda: self._hold(approved),
        )

    def start(self) -> None:
        self._command(
            "start",
            {DriverState.CONFIGURED},
            lambda: self._start(self._held_plan().plan),
            DriverState.RUNNING,
            check=self._held_plan,
        )

    def _held_plan(self) -> ApprovedPlan:
        """The plan the device holds; read under the command lock, so that a command uses the
        plan of the last command before it, not one an ``apply`` in progress is replacing."""
        held = self._approved
        if held is None:
            raise InvalidStateError("no plan applied: apply an approved plan first")
        return held

    def set_amplitude(self, approved: ApprovedPlan, channel: int) -> None:
        """Change one channel's amplitude to the value in ``approved`` (a re-approved live change).

        The change must have been approved in the running plan's context (the same layers, site
        policy and client, as ``LimitsEngine.approve_change`` keeps them): an approval that left
        out the site policy or the prescription would otherwise let a change past the limits the
        running plan was held to."""
        self._check_approval(approved)
        try:
            amplitude_ua = approved.plan.channel(channel).amplitude_ua
        except KeyError:
            raise PlanNotApprovedError(f"channel {channel} is not in the approved plan") from None
        self._check_encodable(approved.plan)

        def check() -> None:
            # Against the plan the device holds when the command runs: two changes approved
            # against the same plan on different channels were each approved, never together.
            running = self._held_plan()
            _check_same_context(approved, running)
            if _alters_more_than_amplitude(approved.plan, running.plan, channel):
                raise PlanNotApprovedError(
                    f"the approved change alters more than channel {channel}'s amplitude of the "
                    "plan the device holds; approve it on driver.applied_plan"
                )

        self._command(
            f"set channel {channel} to {amplitude_ua} µA",
            OUTPUT_STATES,
            lambda: self._set_amplitude(approved.plan, channel, amplitude_ua),
            None,
            on_success=lambda: self._hold(approved),
            check=check,
            plan=approved,
        )

    def _hold(self, approved: ApprovedPlan) -> None:
        """Record the plan the device now holds (under the command lock, so that a status check
        never compares the device with a plan one command behind it)."""
        self._approved = approved

    def pause(self) -> None:
        self._command("pause", {DriverState.RUNNING}, self._pause, DriverState.PAUSED)

    def resume(self) -> None:
        self._command("resume", {DriverState.PAUSED}, self._resume, DriverState.RUNNING)

    def stop(self) -> None:
        self._command(
            "stop", OUTPUT_STATES | {DriverState.CONFIGURED}, self._stop, DriverState.STOPPED
        )

    def emergency_stop(self) -> None:
        """Stop all output now: written at once, bypassing any command in progress. Never raises
        for a dead link (the device's watchdog is the last line then); the state becomes STOPPED
        unless the driver had already faulted.

        The call does not wait for the device; where the device acknowledges the stop
        (``_emergency_stop_reply_key``), the heartbeat thread checks that it did within
        ``reply_timeout_s``, and faults the driver if not: a stop lost on the line must not
        leave the host believing output is off while its heartbeat keeps the device going."""
        self._expect_stop_acknowledgement()
        # Counted, and STOPPED entered, before the write and together: a command whose refusal
        # or acknowledgement comes back the moment the stop is on the line must already see that
        # a stop overtook it, and a command beginning now must see both or neither (seeing only
        # the count, it would take the stop for an older one and undo it).
        with self._state_lock:
            self._emergency_stops += 1
            self._last_emergency_stop = time.monotonic()
            if self._state not in (DriverState.FAULTED, DriverState.CLOSED):
                self._state = DriverState.STOPPED
        try:
            self._transport.write(self._emergency_stop_frame())
        except Exception as error:
            logger.error(
                "emergency stop could not be written to %s: %s", self._transport.url, error
            )
            self._fail(f"emergency stop could not be written: {error}", write_stop=False)

    def close(self) -> None:
        """Stop output if it is on, stop the threads and release the port. Safe to call twice."""
        with self._state_lock:
            if self._state is DriverState.CLOSED:
                return
            # A command in progress may be one (start, resume) whose frame is on the line and
            # whose reply is not in yet: output may be on although the state does not say so.
            was_active = self._state in OUTPUT_STATES or self._command_lock.locked()
            self._state = DriverState.CLOSED
        self._shutdown.set()
        with self._input:
            self._reader_parked.notify_all()
        if was_active:
            try:
                self._transport.write(self._emergency_stop_frame())
            except Exception as error:
                logger.warning("stop on close failed for %s: %s", self._transport.url, error)
        current = threading.current_thread()
        for thread in (self._heartbeat, self._reader):
            if thread is not None and thread is not current:
                thread.join(timeout=2)
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ the fail-safe core

    def _check_approval(self, approved: object) -> None:
        if type(approved) is not ApprovedPlan:
            raise PlanNotApprovedError(
                f"drivers accept only plans approved by the limits engine, not {type(approved).__name__}"
            )
        if not _same(approved.capabilities, self.capabilities):
            raise PlanNotApprovedError(
                "the plan was not approved against this device's capabilities; approve it with "
                "capabilities=driver.capabilities"
            )

    def _command(
        self,
        operation: str,
        allowed: set[DriverState] | frozenset[DriverState],
        action: Callable[[], None],
        new_state: DriverState | None,
        *,
        on_success: Callable[[], None] | None = None,
        check: Callable[[], object] | None = None,
        concerns_output: bool = True,
        plan: ApprovedPlan | None = None,
    ) -> None:
        """Do ``operation`` by running ``action``; enter ``new_state`` and call ``on_success``
        only if it took effect. ``check`` runs first, under the command lock, and what it raises
        reaches the caller as it is (a refusal before anything is written is no fault).
        ``concerns_output=False`` is for a command, such as a status read, that an emergency
        stop does not undo. ``plan`` is the plan the command puts on the device, if it changes
        what a running output delivers: the overcurrent check allows for it until the outcome
        is recorded.

        Returning normally means that the operation took effect and that the driver is still in
        charge of the output, so a caller may record it (``apply`` and ``set_amplitude`` keep the
        plan only then). A reply alone does not say that: while the command waited for it, the
        waiting thread may have dispatched a device fault or a garbage burst, or another thread a
        lost heartbeat, and the driver then wrote the emergency stop and faulted; or ``close``
        was called; or an emergency stop was written past the command lock. The device's
        acknowledgement may still arrive after that and match the request, yet what it
        acknowledges was undone by the stop (which also clears a device's configuration), so the
        operation raises then instead, and a command of several frames writes none after the
        stop. Only a stop is not voided by an emergency stop: it has what it asked for. The
        state and the count of emergency stops are read together under the state lock, where an
        emergency stop changes both, and ``new_state`` is entered there too, so no fault, close
        or emergency stop falls between the check and the change of state.
        """
        self._refuse_on_reading_thread(operation)
        with self._command_lock:
            with self._state_lock:
                state = self._state
                emergency_stops = self._emergency_stops
            if state is DriverState.FAULTED:
                raise DeviceFaultError(self._fault_reason or "unknown")
            if state not in allowed:
                raise InvalidStateError(f"{operation} is not possible in state {state}")
            if check is not None:
                check()
            voidable = concerns_output and new_state is not DriverState.STOPPED
            if voidable:
                self._voidable_command = (threading.get_ident(), emergency_stops)
            self._plan_in_progress = plan
            try:
                action()
            except Exception as error:
                if self._state is DriverState.CLOSED:
                    # ``close`` stopped the output and released the port under the request: the
                    # failure is the close, not a fault of the device or the link.
                    raise _void_by_close(operation) from error
                if isinstance(error, _OvertakenByEmergencyStopError):
                    raise _void_by_emergency_stop(operation) from None
                if (
                    voidable
                    and isinstance(error, DeviceRefusedError)
                    and self._emergency_stops != emergency_stops
                ):
                    # The device refused a command that an emergency stop overtook on the line
                    # (it is stopped, so "wrong state"): the stop's doing, not a fault. A lost
                    # reply or a dead link still faults, and the stop's own acknowledgement is
                    # checked apart.
                    raise InvalidStateError(
                        f"{operation} is void: an emergency stop was made while it was in "
                        f"progress, and the device refused it ({error})"
                    ) from error
                reason = f"{operation} failed: {error}"
                self._fail(reason)
                raise DeviceFaultError(reason) from error
            else:
                with self._state_lock:
                    if self._state is DriverState.FAULTED:
                        raise DeviceFaultError(
                            f"{operation} is void: the driver faulted while it was in progress "
                            f"({self._fault_reason or 'unknown'})"
                        )
                    if self._state is DriverState.CLOSED:
                        raise _void_by_close(operation)
                    if voidable and self._emergency_stops != emergency_stops:
                        raise _void_by_emergency_stop(operation)
                    if new_state is not None:
                        self._state = new_state
                    if on_success is not None:
                        on_success()
            finally:
                self._voidable_command = None
                self._plan_in_progress = None
            logger.info("%s: %s", self._transport.url, operation)

    def _fail(self, reason: str, *, write_stop: bool = True) -> None:
        """Enter FAULTED once: stop output on the wire (best effort), record why, tell listeners."""
        with self._state_lock:
            if self._state in (DriverState.FAULTED, DriverState.CLOSED):
                return
            self._state = DriverState.FAULTED
            self._fault_reason = reason
        logger.error("%s: fault, stopping output: %s", self._transport.url, reason)
        if write_stop:
            try:
                self._transport.write(self._emergency_stop_frame())
            except Exception as error:
                logger.error("stop after fault could not be written: %s", error)
        self._notify(DeviceFaultReport(code="host_fault", reason=reason))

    def _notify(self, event: TelemetryReading | DeviceFaultReport) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                logger.exception("a driver listener raised; it is not called again")
                # Another thread may have removed it already (the same event on two threads).
                with contextlib.suppress(ValueError):
                    self._listeners.remove(listener)

    def _read_loop(self) -> None:
        """The reader thread: reads the port whenever no request waits for a reply (a waiting
        request reads for itself), so telemetry, device faults and garbage are seen between
        commands too. It parks while requests wait, looking again every ``parked_recheck_s``."""
        me = threading.get_ident()
        while True:
            with self._input:
                # A thread that owns the input is a waiting request or this one, so no request
                # waiting means nobody reads.
                while self._requests_waiting and not self._shutdown.is_set():
                    self._reader_parked.wait(self.parked_recheck_s)
                if self._shutdown.is_set():
                    return
                self._input_owner = me
            try:
                self._read_port()
            except Exception as error:
                self._link_lost(error)
                return
            finally:
                self._release_input()

    def _release_input(self) -> None:
        """Stop reading the port and wake the requests waiting to read it or for a reply."""
        with self._input:
            self._input_owner = None
            if self._waiting_for_input:
                self._input_released.notify_all()

    def _read_port(self) -> None:
        """One read (whatever arrives within the transport's poll interval) and the dispatch of
        every message in it. Called only by the thread that owns the input."""
        data = self._transport.read_some()
        if not data:
            return
        before = self.counters.malformed_frames
        for message in self._decode(data):
            self._dispatch(message)
        if self.counters.malformed_frames > before:
            self._note_malformed(self.counters.malformed_frames - before)

    def _link_lost(self, error: Exception) -> None:
        """Reading the port (or decoding, or dispatching what was read) failed: fail safe, unless
        the driver is shutting down and closed the port under the read itself."""
        if not self._shutdown.is_set():
            # The stop is tried even when reading failed: the line towards the device may still
            # carry it (a half-closed socket, a receive error), and a failed write costs nothing.
            self._fail(f"link lost: {error}")

    def _note_malformed(self, count: int) -> None:
        now = time.monotonic()
        self._malformed_times.extend([now] * count)
        while (
            self._malformed_times and now - self._malformed_times[0] > self.malformed_burst_window_s
        ):
            self._malformed_times.popleft()
        if len(self._malformed_times) > self.malformed_burst_limit:
            self._fail(
                f"garbage on the link: more than {self.malformed_burst_limit} malformed frames "
                f"within {self.malformed_burst_window_s} s"
            )

    def _dispatch(self, message: Inbound) -> None:
        if isinstance(message, Reply):
            self._reply_times.append(time.monotonic())
            with self._input:
                waiter = self._waiters.get(message.key)
                if waiter is not None:
                    waiter.reply = message
            if waiter is None:
                self.counters.unmatched_replies += 1
        elif isinstance(message, TelemetryReading):
            self.counters.telemetry_readings += 1
            self._latest_telemetry[message.channel] = message
            self._check_measured_current(message)
            self._notify(message)
        else:
            if message.stops_output:
                self._fail(f"device reported {message.code}: {message.reason}", write_stop=True)
            self._notify(message)

    def _check_measured_current(self, reading: TelemetryReading) -> None:
        """Fault if a channel measures more current than the driver commanded: a device or
        driver defect the limits engine cannot see, since it only ever judged what was sent.

        While a command is in progress, the device may already have done what it asks before
        the driver records the outcome: the reading is judged against the most that either the
        plan held or the one the command puts on the device commands on that channel, whatever
        the state. The check is skipped only while an emergency stop is on its way (readings
        sent before the device took it may still come).
        """
        if self._stop_confirmation is not None:
            return
        if time.monotonic() - self._last_emergency_stop < self.reply_timeout_s:
            return
        state, running = self._state, self._approved
        if self._command_lock.locked():
            if state not in CONNECTED_STATES:
                return
            plans = [p for p in (running, self._plan_in_progress) if p is not None]
            commanded = max((_commanded_ua(p, reading.channel) for p in plans), default=0)
        elif state is DriverState.RUNNING and running is not None:
            plans = [running]
            commanded = _commanded_ua(running, reading.channel)
        elif state in CONNECTED_STATES:
            plans = [running] if running is not None else []
            commanded = 0
        else:
            return
        floors = self.overcurrent_floor_ua
        floor = floors[plans[0].plan.modality] if plans else min(floors.values())
        bound = commanded * (1 + self.overcurrent_tolerance) + floor
        if reading.current_ua > bound:
            self._fail(
                f"channel {reading.channel} measures {reading.current_ua} µA where "
                f"{commanded} µA was commanded (driver {state})"
            )

    def _beat(self) -> None:
        """One heartbeat: feed the watchdog or, every ``device_check_every`` beats, check the
        device, which also feeds it. The check is skipped while a command is in progress (the
        command feeds the watchdog, and the state is about to change) and judged against the
        state read before it, so a change of state during the check is not a contradiction."""
        self._heartbeats += 1
        began = time.monotonic()
        try:
            self._beat_or_check()
        except ReplyTimeoutError:
            answered_in_time = began + self.reply_timeout_s
            if not any(began < at <= answered_in_time for at in tuple(self._reply_times)):
                raise
            # The device answered within the reply timeout of this beat's first frame, only
            # later than the beat waited for (a wait kept short for the watchdog; the replies
            # were counted as unmatched): the link is alive and every frame the beat wrote fed
            # the watchdog. The next beat goes out on time.
            logger.warning("%s: heartbeat replies are slow", self._transport.url)

    def _beat_or_check(self) -> None:
        every = self.device_check_every
        if not every or self._heartbeats % every or not self._command_lock.acquire(blocking=False):
            self._send_heartbeat()
            return
        try:
            self._check_device(self.state)
        except ReplyTimeoutError:
            raise
        except Exception as error:
            raise _DeviceCheckFailedError(f"device check: {error}") from error
        finally:
            self._command_lock.release()

    def _expect_stop_acknowledgement(self) -> None:
        """Before an emergency stop is written: wait (on the heartbeat thread) for its reply.

        One confirmation is pending at a time. A further stop before the reply shares it: the
        device answers in order, so no command can have started output again between the two,
        and the reply shows that the device stopped. A stop after the reply came (and before the
        heartbeat looked at it) gets a confirmation of its own, once the earlier reply is judged:
        the device may have been started again since, and this stop may be the one lost."""
        key = self._emergency_stop_reply_key()
        if key is None:
            return
        with self._input:
            answered = self._stop_confirmation
            if answered is not None and answered.waiter.reply is None:
                return
            waiter = _Waiter()
            self._waiters[key] = waiter
            self._stop_confirmation = _StopConfirmation(
                key, waiter, time.monotonic() + self.reply_timeout_s
            )
        if answered is not None:
            self._judge_stop_reply(answered.waiter.reply)

    def _check_stop_acknowledgement(self) -> None:
        """Fault the driver if the pending emergency stop was refused or not acknowledged in time."""
        with self._input:
            pending = self._stop_confirmation
            if pending is None:
                return
            reply = pending.waiter.reply
            if reply is None and time.monotonic() < pending.deadline:
                return
            self._stop_confirmation = None
            if self._waiters.get(pending.key) is pending.waiter:
                del self._waiters[pending.key]
        self._judge_stop_reply(reply)

    def _judge_stop_reply(self, reply: Reply | None) -> None:
        """Fault on an emergency stop's missing (``None``, past its deadline) or refused reply."""
        if reply is None:
            self.counters.reply_timeouts += 1
            self._fail(
                f"emergency stop not acknowledged within {self.reply_timeout_s * 1000:.0f} ms"
            )
        elif not reply.accepted:
            self.counters.refusals += 1
            self._fail(f"emergency stop refused by the device: {reply.reason or reply.code}")

    def _heartbeat_loop(self) -> None:
        interval_s = self._heartbeat_interval_s()
        watchdog_s = self._watchdog_timeout_s()
        if watchdog_s is not None:
            # Beat, wait, and send again (a retry, or the next beat) before the watchdog runs
            # out, with one interval to spare for the frame to get there.
            self._heartbeat_reply_timeout_s = max(
                interval_s, min(self.reply_timeout_s, watchdog_s - 2 * interval_s)
            )
            self._heartbeat_longest_wait_s = max(
                self._heartbeat_reply_timeout_s, min(self.reply_timeout_s, watchdog_s - interval_s)
            )
        self._heartbeat_ident = threading.get_ident()
        # Beats keep their rate from when each began: a beat that waited for a slow or lost
        # reply is followed by the next at once, not a whole interval after its last frame.
        next_beat = time.monotonic() + interval_s
        while not self._shutdown.wait(max(0.0, next_beat - time.monotonic())):
            next_beat = time.monotonic() + interval_s
            self._check_stop_acknowledgement()
            if self._state in (DriverState.FAULTED, DriverState.CLOSED):
                return
            try:
                self._beat()
            except _DeviceCheckFailedError as error:
                if not self._shutdown.is_set():
                    self._fail(str(error))
                return
            except Exception as error:
                if not self._shutdown.is_set():
                    self._fail(f"heartbeat lost: {error}")
                return
