"""What a 2xx promises, held under a slow or failing COMMIT and under concurrent writers.

The concurrent tests run the application under a real uvicorn server in this process and send the
requests from threads, so each request is its own transaction on its own connection, as in
production. A COMMIT made slow by an engine event keeps those transactions open long enough to
overlap; that is what lets the old check-then-write code fail these tests, while the fixed code
gives the same answers however the requests interleave, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from pytest_mock import MockerFixture
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import OperationalError

from sessionlog.api import deps
from sessionlog.sessions import records
from tests.api.conftest import PROBLEM_JSON, assert_problem, created, session_body

SLOW_COMMIT_S = 0.4
CONCURRENT = 6


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def served(api: TestClient) -> Iterator[httpx.Client]:
    """The test's application behind uvicorn on a local port, and a client signed in to it."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(api.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start in time"
        time.sleep(0.01)
    headers = {"Authorization": api.headers["Authorization"]}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", headers=headers) as client:
        yield client
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def slow_commits(api: TestClient) -> Iterator[Callable[[bool], None]]:
    """Switch on (and off) a COMMIT that takes ``SLOW_COMMIT_S``, as under a slow fsync."""
    engine: Engine = api.app.state.engine  # type: ignore[attr-defined]
    slow = threading.Event()

    def on_commit(_connection: Any) -> None:
        if slow.is_set():
            time.sleep(SLOW_COMMIT_S)

    event.listen(engine, "commit", on_commit)
    yield lambda on: slow.set() if on else slow.clear()
    # Left listening, switched off: removing it could race a commit of a request still running,
    # and the engine goes with the application at the end of the test.
    slow.clear()


def _count(api: TestClient, sql: str, **params: Any) -> int:
    engine: Engine = api.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as connection:
        return int(connection.execute(text(sql), params).scalar_one())


def _in_parallel(
    send: Callable[[httpx.Client, int], httpx.Response], base: httpx.Client
) -> list[httpx.Response]:
    """Send ``CONCURRENT`` requests at once, each on its own connection; their responses in order."""
    barrier = threading.Barrier(CONCURRENT)
    responses: list[httpx.Response | None] = [None] * CONCURRENT

    def worker(index: int) -> None:
        with httpx.Client(base_url=base.base_url, headers=base.headers, timeout=30) as client:
            barrier.wait()
            responses[index] = send(client, index)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(r is not None for r in responses), "a request did not finish"
    return [r for r in responses if r is not None]


# --- the answer waits for the commit ---------------------------------------------------------------


def test_a_failed_commit_is_a_problem_not_a_201_and_nothing_is_stored(
    api: TestClient, mocker: MockerFixture
) -> None:
    failure = OperationalError("COMMIT", {}, Exception("disk I/O error"))
    commit = mocker.patch.object(deps.Session, "commit", autospec=True, side_effect=failure)
    response = api.post(
        "/api/v1/clients", json={"code": "C-LOST"}, headers={"Idempotency-Key": "lost-1"}
    )
    mocker.stop(commit)

    problem = assert_problem(response, 503)
    assert problem["type"] == "/problems/not-stored"
    assert response.headers["Retry-After"]
    assert _count(api, "SELECT count(*) FROM client WHERE code = 'C-LOST'") == 0
    assert _count(api, "SELECT count(*) FROM idempotency_record") == 0
    # The retry the answer asks for stores the client once, and the database is usable again.
    retried = api.post(
        "/api/v1/clients", json={"code": "C-LOST"}, headers={"Idempotency-Key": "lost-1"}
    )
    assert retried.status_code == 201, retried.text
    assert "Idempotent-Replayed" not in retried.headers
    assert api.get(f"/api/v1/clients/{retried.json()['id']}").status_code == 200


def test_a_created_record_is_readable_as_soon_as_the_201_arrives(
    served: httpx.Client, slow_commits: Callable[[bool], None]
) -> None:
    slow_commits(True)
    response = served.post("/clients", json={"code": "C-SLOW"}, timeout=30)
    assert response.status_code == 201, response.text
    # Right after the answer, on a fresh connection: the row must already be committed.
    with httpx.Client(base_url=served.base_url, headers=served.headers) as reader:
        read = reader.get(f"/clients/{response.json()['id']}", timeout=30)
    slow_commits(False)
    assert read.status_code == 200, read.text
    assert read.json()["code"] == "C-SLOW"


def test_streamed_exports_still_stream_after_the_request_transaction_ended(
    api: TestClient, refs: dict[str, int]
) -> None:
    created(api, "/sessions", session_body(refs))
    response = api.get("/api/v1/analytics/export", params={"format": "csv"})
    assert response.status_code == 200, response.text
    lines = response.text.strip().splitlines()
    assert lines[0].startswith("session_id,")
    assert len(lines) == 2


# --- concurrent writers ----------------------------------------------------------------------------


def test_concurrent_updates_with_one_etag_let_exactly_one_win(
    api: TestClient, served: httpx.Client, slow_commits: Callable[[bool], None]
) -> None:
    client = created(api, "/clients", {"code": "C-RACE"})
    etag = api.get(f"/api/v1/clients/{client['id']}").headers["ETag"]

    slow_commits(True)
    responses = _in_parallel(
        lambda http, i: http.patch(
            f"/clients/{client['id']}", json={"notes": f"writer {i}"}, headers={"If-Match": etag}
        ),
        served,
    )
    slow_commits(False)

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [412] * (CONCURRENT - 1), [r.text for r in responses]
    winner = next(r for r in responses if r.status_code == 200)
    for loser in (r for r in responses if r.status_code == 412):
        assert loser.headers["content-type"].startswith(PROBLEM_JSON)
        assert loser.json()["type"] == "/problems/stale-version"
    stored = api.get(f"/api/v1/clients/{client['id']}")
    assert stored.headers["ETag"] == winner.headers["ETag"] == f'W/"{client["id"]}-2"'
    assert stored.json()["notes"] == winner.json()["notes"]
    updates = _count(
        api,
        "SELECT count(*) FROM audit_event WHERE action = 'update' AND resource = 'client' "
        "AND resource_id = :id",
        id=str(client["id"]),
    )
    assert updates == 1


def test_concurrent_corrections_of_one_version_keep_a_single_chain(
    api: TestClient,
    served: httpx.Client,
    slow_commits: Callable[[bool], None],
    refs: dict[str, int],
) -> None:
    original = created(api, "/sessions", session_body(refs))

    slow_commits(True)
    responses = _in_parallel(
        lambda http, i: http.post(
            f"/sessions/{original['id']}/corrections",
            json={"reason": f"correction {i}", "notes": f"version {i}"},
        ),
        served,
    )
    slow_commits(False)

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (CONCURRENT - 1), [r.text for r in responses]
    winner = next(r for r in responses if r.status_code == 201).json()
    for loser in (r for r in responses if r.status_code == 409):
        problem = loser.json()
        assert [e["field"] for e in problem["errors"]] == ["session_id"]
        assert "superseded" in problem["detail"]
    successors = _count(
        api, "SELECT count(*) FROM session WHERE supersedes_id = :id", id=original["id"]
    )
    assert successors == 1
    assert api.get(f"/api/v1/sessions/{original['id']}").json()["superseded_by_id"] == winner["id"]


def test_a_second_successor_that_got_past_the_checks_is_refused_by_the_database(
    api: TestClient, refs: dict[str, int], mocker: MockerFixture
) -> None:
    original = created(api, "/sessions", session_body(refs))
    first = api.post(
        f"/api/v1/sessions/{original['id']}/corrections", json={"reason": "a", "notes": "a"}
    )
    assert first.status_code == 201, first.text
    # As if the check had run before the first correction committed and no lock had held it.
    mocker.patch.object(records, "latest_version_check")
    mocker.patch.object(records, "lock_chain")
    second = api.post(
        f"/api/v1/sessions/{original['id']}/corrections", json={"reason": "b", "notes": "b"}
    )
    problem = assert_problem(second, 409, "session_id")
    assert "superseded" in problem["detail"]
    assert (
        _count(api, "SELECT count(*) FROM session WHERE supersedes_id = :id", id=original["id"])
        == 1
    )


def test_concurrent_retries_with_one_idempotency_key_get_the_first_answer(
    api: TestClient, served: httpx.Client, slow_commits: Callable[[bool], None]
) -> None:
    slow_commits(True)
    responses = _in_parallel(
        lambda http, i: http.post(
            "/clients", json={"code": "C-RETRY"}, headers={"Idempotency-Key": "retry-1"}
        ),
        served,
    )
    slow_commits(False)

    assert [r.status_code for r in responses] == [201] * CONCURRENT, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    replayed = [r for r in responses if r.headers.get("Idempotent-Replayed") == "true"]
    assert len(replayed) == CONCURRENT - 1
    assert _count(api, "SELECT count(*) FROM client WHERE code = 'C-RETRY'") == 1
