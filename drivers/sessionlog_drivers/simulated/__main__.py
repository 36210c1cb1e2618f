"""Command line for running a simulated stimulator in its own process.

`python -m sessionlog_drivers.simulated --tcp 127.0.0.1:0` or `... --pty` prints, as its first line
of output, the address a host opens with `serial.serial_for_url` (a `socket://` URL or a pty path),
then serves until killed. `--options` takes the same query string as a `sim://` URL.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from urllib.parse import parse_qs

from sessionlog_drivers.simulated.config import OPTION_NAMES, options_to_settings
from sessionlog_drivers.simulated.server import serve_pty, serve_tcp


def _host_port(value: str) -> tuple[str, int]:
    """``HOST:PORT`` with a port of 0-65535, refused by argparse before anything listens."""
    host, colon, port = value.rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not HOST:PORT with a port of 0-65535, e.g. 127.0.0.1:0"
        )
    return host or "127.0.0.1", int(port)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sessionlog_drivers.simulated",
        description="Run the simulated reference stimulator on a TCP port or a pseudo-terminal.",
        epilog="options: " + ", ".join(sorted(OPTION_NAMES)),
    )
    link = parser.add_mutually_exclusive_group(required=True)
    link.add_argument(
        "--tcp", metavar="HOST:PORT", type=_host_port, help="listen on HOST:PORT (PORT 0: any free)"
    )
    link.add_argument("--pty", action="store_true", help="serve on a new pseudo-terminal")
    parser.add_argument(
        "--options",
        default="",
        metavar="QUERY",
        help="emulator options as in a sim:// URL, e.g. 'channels=2&watchdog_ms=500&seed=1'",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    parsed = parse_qs(args.options, keep_blank_values=True)
    options = {name: values[-1] for name, values in parsed.items()}
    try:
        options_to_settings(options)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.pty:
            serve_pty(**options)
        else:
            host, port = args.tcp
            serve_tcp(host, port, **options)
    except KeyboardInterrupt:
        return 0
    return 0


def _main_as_a_program() -> int:
    """``main`` for ``python -m``: an address that cannot be bound, or no pseudo-terminal to be
    had, is one error line (``sessionlog simulate`` words it in its own terms)."""
    try:
        return main()
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(_main_as_a_program())
