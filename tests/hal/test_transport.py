"""The serial transport over real pyserial URL handlers: exact reads, timeouts, idempotent close."""

from __future__ import annotations

import socket
import threading
import time

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


def test_read_some_takes_everything_already_received_at_once() -> None:
    with SerialTransport("loop://") as transport:
        for chunk in (b"\xf0\x01", b"\x02\x03", b"\x0f"):
            transport.write(chunk)
        assert transport.read_some() == b"\xf0\x01\x02\x03\x0f"
        assert transport.read_some() == b""


def test_read_some_over_a_socket_takes_a_whole_burst_not_a_byte_at_a_time() -> None:
    # pyserial's socket:// handler says only whether bytes wait, not how many; read_some must
    # still return the whole burst, and still wait when nothing comes.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    burst = bytes(range(40))

    def accept_then_send() -> None:
        connection, _ = server.accept()
        assert connection.recv(1) == b"?"
        connection.sendall(burst)
        connection.recv(1)  # until the host closes
        connection.close()

    thread = threading.Thread(target=accept_then_send)
    thread.start()
    try:
        with SerialTransport(f"socket://127.0.0.1:{port}", poll_interval_s=0.05) as transport:
            transport.write(b"?")
            time.sleep(0.2)  # the whole burst is in the socket's buffer by now

            assert transport.read_some() == burst

            started = time.monotonic()
            assert transport.read_some() == b""
            assert time.monotonic() - started >= 0.04, "an idle read must wait a poll interval"
    finally:
        thread.join(timeout=2)
        server.close()
