"""The part of an emulated device that does not depend on its protocol: the lock every public method
holds, the clock-driven event loop, the device-to-host byte path with the link faults every scheme
can inject (dropped, corrupted and delayed frames) and the unplugged state in which nothing more is
read or sent, plus the constructor and command log every emulator offers. A firmware emulator
subclasses `EmulatedDevice` and supplies only what its protocol decides: its own state, how host
bytes are consumed, which events are scheduled and what unplugging does to its outputs. Keeping
this in one place is what lets the serial port and runner treat every emulator the same way.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import ClassVar, Generic, Protocol, TypeVar

from sessionlog_drivers.emulation.clock import Clock

EventHandler = Callable[[float], None]
"""Runs a scheduled event; takes the time it fell due (never later than now)."""

ScheduledEvent = tuple[float, int, EventHandler]
"""(due time, priority among events due at the same time: lower first, handler)."""

TIME_TOLERANCE_S = 1e-9
"""An event due within this of the clock is due now, so float rounding cannot postpone it."""


class LinkFaults(Protocol):
    """The fault switches every emulated link honours; a device's fault settings have more."""

    @property
    def unplug_after_s(self) -> float | None: ...

    @property
    def corrupt_rate(self) -> float: ...

    @property
    def drop_rate(self) -> float: ...

    @property
    def latency_ms(self) -> float: ...


CodeT = TypeVar("CodeT", bound=Enum)
ConfigT = TypeVar("ConfigT")
FaultsT = TypeVar("FaultsT", bound=LinkFaults)
LoggedT = TypeVar("LoggedT")
CountersT = TypeVar("CountersT")
CountersT_co = TypeVar("CountersT_co", covariant=True)


class CountingDecoder(Protocol[CountersT_co]):
    """A decoder of host bytes that keeps running totals of what it received and rejected."""

    @property
    def counters(self) -> CountersT_co: ...


class LinkOutcome(Enum):
    """What the injected link faults did to one outgoing frame, for the device's counters."""

    SENT = "sent"
    CORRUPTED = "corrupted"
    DROPPED = "dropped"


class CommandRefusedError(Exception, Generic[CodeT]):
    """Raised in a command handler to answer with the protocol's refusal `code` instead, so the
    handler can stop half-way and the device is left as it was before the command.
    """

    def __init__(self, code: CodeT) -> None:
        super().__init__(code.name)
        self.code = code


class EmulatedDevice(ABC, Generic[ConfigT, FaultsT, LoggedT, CountersT]):
    """A device whose bytes are read and written in process, with time driven by `clock`.

    Settings left out are the defaults of the subclass's `_config_type` and `_faults_type`. All
    public methods are thread-safe: the serial port calls them from the driver's thread while a
    runner ticks from another.
    """

    RELEASE_TOLERANCE_S: ClassVar[float] = 0.0
    """How early a delayed frame may be released; a protocol with exact timing leaves it 0."""

    _config_type: Callable[[], ConfigT]
    """Builds the fixed settings of a device created without any."""
    _faults_type: Callable[[], FaultsT]
    """Builds the fault switches of a device created without any (no faults)."""
    _decoder: CountingDecoder[CountersT]
    """Decodes host bytes; created by `_power_up`, which may declare a narrower type."""

    def __init__(
        self,
        config: ConfigT | None = None,
        faults: FaultsT | None = None,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        self.config = self._config_type() if config is None else config
        self.faults = self._faults_type() if faults is None else faults
        """Live fault switches: assign fields at any time; they apply at the next step."""
        self._clock = clock
        self._lock = threading.RLock()
        self._output_ready = threading.Condition(self._lock)
        self._power_on_s = clock()
        self._unplugged = False
        self._pending: deque[tuple[float, bytes]] = deque()
        self._last_due_s = self._power_on_s
        self._tx = bytearray()
        self._command_log: list[LoggedT] = []
        self._power_up()
        with self._lock:
            self._advance(self._power_on_s)

    @property
    def command_log(self) -> tuple[LoggedT, ...]:
        """Every host command as the device decoded it, so tests assert what reached the wire."""
        with self._lock:
            return tuple(self._command_log)

    @property
    def decoder_counters(self) -> CountersT:
        """Malformed-frame counts of what the host sent, as a copy later input cannot change."""
        with self._lock:
            return copy.copy(self._decoder.counters)

    @property
    def unplugged(self) -> bool:
        with self._lock:
            return self._unplugged

    # --- byte interface ---------------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """Consume bytes from the host, act on every complete frame and queue the replies.

        Time-driven events that fell due before these bytes arrived are processed first, so a
        frame that arrives after the watchdog deadline does not revive a stopped output.
        """
        with self._lock:
            now = self._clock()
            self._advance(now)
            if self._unplugged:
                return
            self._consume(data, now)
            self._release_due(now)

    def tick(self) -> None:
        """Process everything that became due by the clock's current time."""
        with self._lock:
            self._advance(self._clock())

    def read_output(self, max_bytes: int | None = None) -> bytes:
        """Take up to `max_bytes` (all if None) of the bytes the device has sent so far."""
        with self._lock:
            self._advance(self._clock())
            count = len(self._tx) if max_bytes is None else min(max_bytes, len(self._tx))
            data = bytes(self._tx[:count])
            del self._tx[:count]
            return data

    @property
    def output_waiting(self) -> int:
        with self._lock:
            self._advance(self._clock())
            return len(self._tx)

    def discard_output(self) -> None:
        """Forget bytes sent but not yet read (replies still delayed by latency stay queued)."""
        with self._lock:
            self._tx.clear()

    def wait_for_output(self, timeout_s: float) -> bool:
        """Block until output is readable or the device is unplugged; True if either happened.

        Delayed replies appear only when something advances the emulator (a `tick` from a runner
        thread or a read), so a waiter relies on a runner for latency injection in real time.
        """
        with self._output_ready:
            if not self._tx and not self._unplugged:
                self._output_ready.wait(timeout_s)
            return bool(self._tx) or self._unplugged

    def unplug(self) -> None:
        """Disconnect now: output stops, nothing more is read or sent."""
        with self._lock:
            if not self._unplugged:
                self._unplug(self._clock())

    # --- what the protocol decides ----------------------------------------------------------------

    @abstractmethod
    def _power_up(self) -> None:
        """Create the protocol's own state, before the first step at power-on.

        Called by the shared constructor once the clock, lock and byte path exist, so an emulator
        needs no constructor of its own and every one is created with the same arguments.
        """

    @abstractmethod
    def _consume(self, data: bytes, now: float) -> None:
        """Decode host bytes received at `now` and act on them (the lock is held)."""

    @abstractmethod
    def _scheduled_events(self) -> list[ScheduledEvent]:
        """The device's own pending events besides the scheduled unplug, in any order."""

    @abstractmethod
    def _apply_fault_switches(self, now: float) -> None:
        """Bring the device in line with fault switches changed since the last step."""

    @abstractmethod
    def _on_unplug(self, at_s: float) -> None:
        """Switch outputs off and record the disconnection; the byte path is cleared after."""

    # --- time-driven behaviour ---------------------------------------------------------------------

    def _advance(self, now: float) -> None:
        """Run scheduled events in time order up to `now`, then apply switched faults."""
        while not self._unplugged:
            due = self._next_event()
            if due is None or due[0] > now + TIME_TOLERANCE_S:
                break
            when, handler = due
            handler(min(when, now))
        if self._unplugged:
            return
        self._apply_fault_switches(now)
        self._release_due(now)

    def _next_event(self) -> tuple[float, EventHandler] | None:
        candidates = self._scheduled_events()
        if self.faults.unplug_after_s is not None:
            candidates.append((self._power_on_s + self.faults.unplug_after_s, 0, self._unplug))
        if not candidates:
            return None
        when, _, handler = min(candidates, key=lambda c: (c[0], c[1]))
        return when, handler

    def _unplug(self, at_s: float) -> None:
        self._on_unplug(at_s)
        self._unplugged = True
        self._pending.clear()
        self._tx.clear()
        self._output_ready.notify_all()

    # --- output path with injected faults ------------------------------------------------------

    def _transmit(self, frame: bytes, at_s: float, rng: random.Random) -> LinkOutcome:
        """Queue an encoded frame sent at `at_s`, as the link faults drop, corrupt or delay it.

        Frames leave in the order they were sent even when latency changes in between, as on a
        serial line; `rng` is the device's fault generator so a seed reproduces every fault.
        """
        data = bytearray(frame)
        faults = self.faults
        if faults.drop_rate > 0 and rng.random() < faults.drop_rate:
            return LinkOutcome.DROPPED
        outcome = LinkOutcome.SENT
        if faults.corrupt_rate > 0 and rng.random() < faults.corrupt_rate:
            data[rng.randrange(len(data))] ^= rng.randrange(1, 256)
            outcome = LinkOutcome.CORRUPTED
        due_s = max(at_s + faults.latency_ms / 1000, self._last_due_s)
        self._last_due_s = due_s
        self._pending.append((due_s, bytes(data)))
        return outcome

    def _release_due(self, now: float) -> None:
        released = False
        while self._pending and self._pending[0][0] <= now + self.RELEASE_TOLERANCE_S:
            self._tx += self._pending.popleft()[1]
            released = True
        if released:
            self._output_ready.notify_all()
