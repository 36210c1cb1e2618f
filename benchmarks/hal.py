"""HAL benchmarks: live parameter updates through the driver, and emergency-stop latency.

Run from the repository root: ``python -m benchmarks.hal``. Each figure is measured in this run,
against a baseline measured in the same run on the same emulator, and printed as a ratio:

- updates: limits re-approval + encode + write + acknowledgement through ``Driver.set_amplitude``,
  versus raw pyserial writes of the same pre-encoded frames, each waiting for its ACK frame
  (target: driver ≥ 0.8× the raw rate). Raw and driver rounds alternate (after one warm-up round
  of each) and the medians are compared; the time per update of each, and of the limits
  re-approval on its own, are printed beside the ratio to show where the difference goes, with
  the floor of any driver: the raw loop with only the re-approval and the encoding added;
- emergency stop: from the call to the emulator decoding the stop, while telemetry streams at the
  emulator's full rate, and again while live changes stream from another thread (target: p99 <
  5 ms).
"""

from __future__ import annotations

import argparse
import itertools
import select
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import serial
from serial.urlhandler import protocol_socket

from sessionlog.hal import Driver, HalError, open_device
from sessionlog.safety import ApprovedPlan, DeviceCapabilities, LimitsEngine, StimulationPlan
from sessionlog_drivers.simulated import protocol as wire
from sessionlog_drivers.simulated import register_url_handler

ENGINE = LimitsEngine()
REPLY_TIMEOUT_S = 0.5
URL = "sim://?channels=2&seed=11&telemetry_hz=50"
PLAN = StimulationPlan.model_validate(
    {
        "modality": "ems",
        "duration_s": 1800,
        "electrode": {"body_site": "thigh_anterior", "area_cm2": 50},
        "channels": [
            {"channel": c, "amplitude_ma": 20, "pulse_width_us": 300, "frequency_hz": 40}
            for c in (1, 2)
        ],
    }
)


def _amplitudes(count: int) -> list[int]:
    return [20_000 + (i % 20) * 1000 for i in range(count)]


@dataclass(frozen=True)
class DriverRound:
    updates_per_s: float
    approval_s: float
    """Mean time of one re-approval inside the loop, between the device's replies."""


def driver_updates(count: int, url: str = URL) -> DriverRound:
    with open_device(url, driver="simulated") as device:
        verdict = ENGINE.approve(PLAN, capabilities=device.capabilities)
        approved = verdict.approved_plan
        assert approved is not None, verdict.reasons
        device.apply(approved)
        device.start()
        clock = time.perf_counter
        approving = 0.0
        started = clock()
        for amplitude_ua in _amplitudes(count):
            before = clock()
            change = ENGINE.approve_change(approved, channel=1, amplitude_ua=amplitude_ua)
            approving += clock() - before
            assert change.approved_plan is not None
            device.set_amplitude(change.approved_plan, channel=1)
        elapsed = clock() - started
        device.stop()
    return DriverRound(count / elapsed, approving / count)


def _reply_reader(port: serial.Serial) -> Callable[[], bytes]:
    """How a careful raw pyserial client reads: whatever has arrived, a whole frame per call.

    On a socket:// port pyserial's ``in_waiting`` is only 0 or 1, so ``read(in_waiting)`` would
    take one byte per call; the client waits for readability itself and takes what one read gives.
    """
    if isinstance(port, protocol_socket.Serial):
        port.timeout = 0

        def read_socket() -> bytes:
            ready, _, _ = select.select([port.fileno()], [], [], REPLY_TIMEOUT_S)
            data: bytes = port.read(4096) if ready else b""
            return data

        return read_socket

    def read_port() -> bytes:
        data: bytes = port.read(port.in_waiting or 1)
        return data

    return read_port


def raw_updates_per_s(
    count: int, url: str = URL, *, floor_with: DeviceCapabilities | None = None
) -> float:
    """The baseline: the same frames, encoded before the clock starts, written with pyserial, each
    waiting for its ACK (decoded with the protocol's decoder, since telemetry interleaves).

    With ``floor_with`` (the device's capabilities), the floor of any driver instead: each update
    is re-approved by the limits engine and its frame encoded inside the loop, as the target's
    "limits + encode + write + ack" requires, with nothing else (no locks, no state, no waiter)."""
    register_url_handler()
    port = serial.serial_for_url(url, timeout=REPLY_TIMEOUT_S)
    read = _reply_reader(port)
    decoder = wire.FrameDecoder(accepted=wire.DEVICE_COMMANDS)

    def exchange(seq: int, frame: bytes) -> None:
        port.write(frame)
        while True:
            data = read()
            if not data:
                raise TimeoutError("no reply")
            for reply in decoder.feed(data):
                if reply.seq == seq and isinstance(reply.message, wire.Ack | wire.Identity):
                    return

    def encoded(seq: int, message: wire.Message) -> tuple[int, bytes]:
        return seq, wire.encode_frame(wire.Frame(seq, message))

    try:
        exchange(*encoded(1, wire.Identify()))
        for channel in (0, 1):
            exchange(
                *encoded(
                    2 + channel,
                    wire.ConfigureChannel(channel, wire.Modality.EMS, 20_000, 300, 40_000),
                )
            )
        exchange(*encoded(4, wire.Start(wire.channel_mask([0, 1]))))
        frames = [
            encoded(seq % 250, wire.SetAmplitude(0, amplitude))
            for seq, amplitude in enumerate(_amplitudes(count), start=5)
        ]
        approved = None
        if floor_with is not None:
            approved = ENGINE.approve(PLAN, capabilities=floor_with).approved_plan
        started = time.perf_counter()
        if approved is not None:
            for (seq, _), amplitude_ua in zip(frames, _amplitudes(count), strict=True):
                change = ENGINE.approve_change(approved, channel=1, amplitude_ua=amplitude_ua)
                assert change.approved_plan is not None
                exchange(
                    seq, wire.encode_frame(wire.Frame(seq, wire.SetAmplitude(0, amplitude_ua)))
                )
        else:
            for seq, frame in frames:
                exchange(seq, frame)
        elapsed = time.perf_counter() - started
        exchange(*encoded(0, wire.Stop()))
    finally:
        port.close()
    return count / elapsed


def _stream_updates(device: Driver, approved: ApprovedPlan, stop: threading.Event) -> None:
    """Live changes back to back, as a practitioner turning a knob, until ``stop`` or until an
    emergency stop voids one (which ends the stream)."""
    for amplitude_ua in itertools.cycle(_amplitudes(20)):
        if stop.is_set():
            return
        change = ENGINE.approve_change(approved, channel=1, amplitude_ua=amplitude_ua)
        assert change.approved_plan is not None
        try:
            device.set_amplitude(change.approved_plan, channel=1)
        except HalError:
            return


def emergency_stop_latencies_ms(rounds: int, *, during_updates: bool = False) -> list[float]:
    """From the call to the emulator decoding the stop, with telemetry streaming and, if
    ``during_updates``, live changes streaming from another thread."""
    latencies = []
    for _ in range(rounds):
        with open_device(URL, driver="simulated") as device:
            verdict = ENGINE.approve(PLAN, capabilities=device.capabilities)
            assert verdict.approved_plan is not None
            device.apply(verdict.approved_plan)
            device.start()
            stop_updates = threading.Event()
            updater = threading.Thread(
                target=_stream_updates, args=(device, verdict.approved_plan, stop_updates)
            )
            if during_updates:
                updater.start()
            time.sleep(0.05)  # let telemetry (and the updates) stream
            emulator = device.transport.port.emulator  # type: ignore[attr-defined]
            called = time.monotonic()
            device.emergency_stop()
            stop_updates.set()
            if during_updates:
                updater.join()
            stops = [e for e in emulator.command_log if e.command is wire.Command.EMERGENCY_STOP]
            latencies.append((stops[0].timestamp_s - called) * 1000)
    return latencies


_servers: list[subprocess.Popen[str]] = []


def _simulator_process(*link: str) -> str:
    """The same emulator in its own process, as real hardware would be; ``link`` is ``--pty`` or
    ``--tcp HOST:PORT``. Returns the address it prints (a pty path or a socket:// URL).

    Started as ``python -m sessionlog_drivers.simulated``, the module ``sessionlog simulate``
    runs, so the benchmark does not depend on everything the full CLI imports.
    """
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sessionlog_drivers.simulated",
            *link,
            "--options",
            URL.split("?", 1)[1],
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    _servers.append(process)
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url:
        raise RuntimeError(f"the simulator process printed no URL (exit code {process.poll()})")
    return url


def approvals_per_s(count: int, capabilities: DeviceCapabilities) -> float:
    """The limits re-approval of the driver loop on its own, without any I/O."""
    verdict = ENGINE.approve(PLAN, capabilities=capabilities)
    approved = verdict.approved_plan
    assert approved is not None, verdict.reasons
    started = time.perf_counter()
    for amplitude_ua in _amplitudes(count):
        ENGINE.approve_change(approved, channel=1, amplitude_ua=amplitude_ua)
    return count / (time.perf_counter() - started)


def compare_updates(label: str, url: str, count: int, rounds: int) -> None:
    """Alternate raw and driver rounds on ``url`` and print the medians and their ratio."""
    with open_device(url, driver="simulated") as device:
        capabilities = device.capabilities
    raw_updates_per_s(count // 10, url)  # warm-up of both paths, not counted
    driver_updates(count // 10, url)
    raw_rates, driver_rounds, approval_rates, floor_rates = [], [], [], []
    for _ in range(rounds):
        raw_rates.append(raw_updates_per_s(count, url))
        driver_rounds.append(driver_updates(count, url))
        floor_rates.append(raw_updates_per_s(count, url, floor_with=capabilities))
        approval_rates.append(approvals_per_s(count, capabilities))
    raw = statistics.median(raw_rates)
    through_driver = statistics.median(r.updates_per_s for r in driver_rounds)
    approval_in_loop_s = statistics.median(r.approval_s for r in driver_rounds)
    approvals = statistics.median(approval_rates)
    ratio = through_driver / raw
    verdict = "OK" if ratio >= 0.8 else "BELOW TARGET"
    print(
        f"parameter updates, {label}: driver {through_driver:,.0f}/s, raw pyserial {raw:,.0f}/s "
        f"(medians of {rounds} alternated rounds)"
    )
    print(f"  ratio driver/raw = {ratio:.2f}x (target >= 0.8x) {verdict}")
    host_s = 1 / through_driver - 1 / raw
    print(
        f"  per update: raw exchange {1e6 / raw:.1f} µs, through the driver "
        f"{1e6 / through_driver:.1f} µs, of which the limits re-approval "
        f"{approval_in_loop_s * 1e6:.1f} µs ({1e6 / approvals:.1f} µs in a loop of its own)"
    )
    print(
        f"  the host's share beyond the raw exchange: {host_s * 1e6:.1f} µs, of which the driver "
        f"path {(host_s - approval_in_loop_s) * 1e6:.1f} µs; 0.8x leaves "
        f"{0.25e6 / raw:.1f} µs for all of it"
    )
    floor = statistics.median(floor_rates)
    print(
        f"  floor of any driver (the raw loop with only the re-approval and the encoding added): "
        f"{floor / raw:.2f}x, {1e6 / floor:.1f} µs per update"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stops", type=int, default=200)
    args = parser.parse_args()

    links: tuple[tuple[str, Callable[[], str]], ...] = (
        ("emulator in process (sim://)", lambda: URL),
        ("emulator in its own process on a pty", lambda: _simulator_process("--pty")),
        (
            "emulator in its own process over TCP",
            lambda: _simulator_process("--tcp", "127.0.0.1:0"),
        ),
    )
    for label, start in links:
        compare_updates(label, start(), args.updates, args.rounds)

    for label, during_updates in (("telemetry", False), ("telemetry and live changes", True)):
        latencies = sorted(emergency_stop_latencies_ms(args.stops, during_updates=during_updates))
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
        print(
            f"emergency stop, call -> decoded by the emulator, {len(latencies)} rounds with "
            f"{label} streaming:"
        )
        print(
            f"  p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {latencies[-1]:.3f} ms "
            f"(target p99 < 5 ms) {'OK' if p99 < 5 else 'ABOVE TARGET'}"
        )


if __name__ == "__main__":
    try:
        main()
    finally:
        for server in _servers:
            server.terminate()
