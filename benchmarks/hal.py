"""HAL benchmarks: live parameter updates through the driver, and emergency-stop latency.

Run from the repository root: ``python -m benchmarks.hal``. Each figure is measured in this run,
against a baseline measured in the same run on the same emulator, and printed as a ratio:

- updates: limits re-approval + encode + write + acknowledgement through ``Driver.set_amplitude``,
  versus raw pyserial writes of the same pre-encoded frames, each waiting for its ACK frame
  (target: driver ≥ 0.8× the raw rate). Raw and driver rounds alternate (after one warm-up round
  of each) and the medians are compared; the time per update of each, and of the limits
  re-approval on its own, are printed beside the ratio to show where the difference goes;
- emergency stop: from the call to the emulator decoding the stop, while telemetry streams at the
  emulator's full rate (target: p99 < 5 ms).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import serial

from sessionlog.hal import open_device
from sessionlog.safety import DeviceCapabilities, LimitsEngine, StimulationPlan
from sessionlog_drivers.simulated import protocol as wire
from sessionlog_drivers.simulated import register_url_handler

ENGINE = LimitsEngine()
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


def driver_updates_per_s(count: int, url: str = URL) -> float:
    with open_device(url, driver="simulated") as device:
        verdict = ENGINE.approve(PLAN, capabilities=device.capabilities)
        approved = verdict.approved_plan
        assert approved is not None, verdict.reasons
        device.apply(approved)
        device.start()
        started = time.perf_counter()
        for amplitude_ua in _amplitudes(count):
            change = ENGINE.approve_change(approved, channel=1, amplitude_ua=amplitude_ua)
            assert change.approved_plan is not None
            device.set_amplitude(change.approved_plan, channel=1)
        elapsed = time.perf_counter() - started
        device.stop()
    return count / elapsed


def raw_updates_per_s(count: int, url: str = URL) -> float:
    register_url_handler()
    port = serial.serial_for_url(url, timeout=0.5)
    decoder = wire.FrameDecoder(accepted=wire.DEVICE_COMMANDS)

    def exchange(seq: int, message: wire.Message) -> None:
        port.write(wire.encode_frame(wire.Frame(seq, message)))
        while True:
            data = port.read(max(1, port.in_waiting))
            if not data:
                raise TimeoutError("no reply")
            for frame in decoder.feed(data):
                if frame.seq == seq and isinstance(frame.message, wire.Ack | wire.Identity):
                    return

    try:
        exchange(1, wire.Identify())
        for channel in (0, 1):
            exchange(
                2 + channel, wire.ConfigureChannel(channel, wire.Modality.EMS, 20_000, 300, 40_000)
            )
        exchange(4, wire.Start(wire.channel_mask([0, 1])))
        frames = [
            (seq % 250, wire.SetAmplitude(0, amplitude))
            for seq, amplitude in enumerate(_amplitudes(count), start=5)
        ]
        started = time.perf_counter()
        for seq, message in frames:
            exchange(seq, message)
        elapsed = time.perf_counter() - started
        exchange(0, wire.Stop())
    finally:
        port.close()
    return count / elapsed


def emergency_stop_latencies_ms(rounds: int) -> list[float]:
    latencies = []
    for _ in range(rounds):
        with open_device(URL, driver="simulated") as device:
            verdict = ENGINE.approve(PLAN, capabilities=device.capabilities)
            assert verdict.approved_plan is not None
            device.apply(verdict.approved_plan)
            device.start()
            time.sleep(0.05)  # let telemetry stream
            emulator = device.transport.port.emulator  # type: ignore[attr-defined]
            called = time.monotonic()
            device.emergency_stop()
            stops = [e for e in emulator.command_log if e.command is wire.Command.EMERGENCY_STOP]
            latencies.append((stops[0].timestamp_s - called) * 1000)
    return latencies


_servers: list[subprocess.Popen[str]] = []


def _tcp_simulator() -> str:
    """The same emulator in its own process, as real hardware would be.

    Started as ``python -m sessionlog_drivers.simulated``, the module ``sessionlog simulate``
    runs, so the benchmark does not depend on everything the full CLI imports.
    """
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sessionlog_drivers.simulated",
            "--tcp",
            "127.0.0.1:0",
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
    driver_updates_per_s(count // 10, url)
    raw_rates, driver_rates, approval_rates = [], [], []
    for _ in range(rounds):
        raw_rates.append(raw_updates_per_s(count, url))
        driver_rates.append(driver_updates_per_s(count, url))
        approval_rates.append(approvals_per_s(count, capabilities))
    raw = statistics.median(raw_rates)
    through_driver = statistics.median(driver_rates)
    approvals = statistics.median(approval_rates)
    ratio = through_driver / raw
    verdict = "OK" if ratio >= 0.8 else "BELOW TARGET"
    print(
        f"parameter updates, {label}: driver {through_driver:,.0f}/s, raw pyserial {raw:,.0f}/s "
        f"(medians of {rounds} alternated rounds)"
    )
    print(f"  ratio driver/raw = {ratio:.2f}x (target >= 0.8x) {verdict}")
    print(
        f"  per update: raw exchange {1e6 / raw:.1f} µs, through the driver "
        f"{1e6 / through_driver:.1f} µs; limits re-approval on its own {1e6 / approvals:.1f} µs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stops", type=int, default=200)
    args = parser.parse_args()

    for label, url in (("in-process sim://", URL), ("separate process over TCP", _tcp_simulator())):
        compare_updates(label, url, args.updates, args.rounds)

    latencies = sorted(emergency_stop_latencies_ms(args.stops))
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    print(
        f"emergency stop, call -> decoded by the emulator, {len(latencies)} rounds with telemetry:"
    )
    print(
        f"  p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {latencies[-1]:.3f} ms (target p99 < 5 ms) "
        f"{'OK' if p99 < 5 else 'ABOVE TARGET'}"
    )


if __name__ == "__main__":
    try:
        main()
    finally:
        for server in _servers:
            server.terminate()
