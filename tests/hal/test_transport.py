"""The serial transport over real pyserial URL handlers: exact reads, timeouts, idempotent close."""

from __future__ import annotations

import socket
import threading

import pytest

from sessionlog.hal import DisconnectedError, SerialTransport, TransportError, TransportTimeoutError


def test_loop_round_trip_reads_exactly_what_was_written() -> None:
    with SerialTransport("loop://") as transport:
        transport.write(b"\xf0\x01\x02\x0f")
        assert transport.read_exact(4, timeout_s=1) == b"\xf0\x01\x02\x0f"


def test_short_read_raises_instead_of_returning_partial_data() -> None:
    with SerialTransport("loop://") as transport:
        transport.write(b"abc")
        with pytest.raises(TransportTimeoutError, match="3 of 5 bytes"):
            transport.read_exact(5, timeout_s=0.1)


def test_close_is_idempotent_and_later_io_is_a_disconnect() -> None:
    transport = SerialTransport("loop://")
    transport.close()
    transport.close()
    assert transport.closed
    with pytest.raises(DisconnectedError):
        transport.write(b"x")
    with pytest.raises(DisconnectedError):
        transport.read_some()


def test_a_port_that_cannot_open_names_the_url() -> None:
    with pytest.raises(TransportError, match="/dev/does-not-exist"):
        SerialTransport("/dev/does-not-exist")


def test_socket_peer_closing_is_a_disconnect() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    greeting_read = threading.Event()

    def accept_then_close() -> None:
        connection, _ = server.accept()
        # Answer only once the host has spoken: pyserial's socket:// open() discards whatever
        # arrived before it finished, as a real port's input buffer reset would.
        assert connection.recv(1) == b"?"
        connection.sendall(b"hi")
        greeting_read.wait(timeout=10)
        connection.close()

    thread = threading.Thread(target=accept_then_close)
    thread.start()
    try:
        with SerialTransport(f"socket://127.0.0.1:{port}") as transport:
            transport.write(b"?")
            assert transport.read_exact(2, timeout_s=10) == b"hi"
            greeting_read.set()
            thread.join(timeout=2)

            def drain() -> None:
                for _ in range(100):
                    transport.read_some()

            with pytest.raises(DisconnectedError):
                drain()
    finally:
        server.close()
