"""Query strings are read strictly on every GET route: an unknown parameter, or a single-value one
given twice, is a 422 naming it, never silently ignored or resolved to the last value."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

import sessionlog.api.routes
from sessionlog.api.query import strict_query
from tests.api.conftest import assert_problem, created, session_body


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/clients",
        "/api/v1/users",
        "/api/v1/devices",
        "/api/v1/programs",
        "/api/v1/keys",
        "/api/v1/audit",
        "/api/v1/audit/verify",
        "/api/v1/connections",
        "/api/v1/auth/me",
        "/api/v1/sessions",
        "/api/v1/analytics/summary",
        "/api/v1/analytics/export",
        "/api/v1/sessions/{id}",
        "/api/v1/sessions/{id}/events",
        "/api/v1/sessions/{id}/telemetry",
        "/api/v1/clients/{client}",
    ],
)
def test_an_unknown_query_parameter_is_a_422_naming_it(
    api: TestClient, refs: dict[str, int], path: str
) -> None:
    session = created(api, "/sessions", session_body(refs))
    url = path.format(id=session["id"], client=refs["client_id"])
    problem = assert_problem(api.get(url, params={"foo": "1"}), 422, "foo")
    error = next(e for e in problem["errors"] if e["field"] == "foo")
    assert error["location"] == "query"
    assert "unknown query parameter" in error["reason"]


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/api/v1/sessions", "sort=id&sort=-id", "sort"),
        ("/api/v1/sessions", "limit=1&limit=2", "limit"),
        ("/api/v1/sessions", "since=2026-01-01&since=2026-02-01", "since"),
        ("/api/v1/analytics/export", "format=csv&format=fhir", "format"),
        ("/api/v1/analytics/summary", "out_of_limits=true&out_of_limits=false", "out_of_limits"),
        ("/api/v1/clients", "limit=1&limit=2", "limit"),
        ("/api/v1/audit", "cursor=a&cursor=b", "cursor"),
        ("/api/v1/sessions/{id}/telemetry", "max_points=10&max_points=20", "max_points"),
    ],
)
def test_a_repeated_single_value_parameter_is_a_422_naming_it(
    api: TestClient, refs: dict[str, int], path: str, query: str, field: str
) -> None:
    session = created(api, "/sessions", session_body(refs))
    url = path.format(id=session["id"])
    problem = assert_problem(api.get(f"{url}?{query}"), 422, field)
    assert "given 2 times" in problem["errors"][0]["reason"]


def test_list_filters_still_take_several_values(api: TestClient, refs: dict[str, int]) -> None:
    created(api, "/sessions", session_body(refs))
    response = api.get("/api/v1/sessions?modality=ems&modality=microcurrent&status=completed")
    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == 1
    summary = api.get("/api/v1/analytics/summary?group_by=month&group_by=modality")
    assert summary.status_code == 200, summary.text


def test_credentials_are_checked_before_the_query(anonymous: TestClient) -> None:
    assert_problem(anonymous.get("/api/v1/clients?foo=1"), 401)
    assert_problem(anonymous.get("/api/v1/sessions?sort=id&sort=-id"), 401)


def test_every_get_route_reads_its_query_strictly(api: TestClient) -> None:
    """A new GET route that forgets ``StrictQuery`` fails here (only /health is left lenient)."""

    def uses_strict_query(route: APIRoute) -> bool:
        pending = [route.dependant]
        while pending:
            current = pending.pop()
            if current.call is strict_query:
                return True
            pending.extend(current.dependencies)
        return False

    routes = [
        route
        for module in pkgutil.iter_modules(sessionlog.api.routes.__path__)
        for route in getattr(
            importlib.import_module(f"sessionlog.api.routes.{module.name}"), "router", APIRouter()
        ).routes
        if isinstance(route, APIRoute) and "GET" in route.methods and route.path != "/health"
    ]
    # The routers walked here are all the API has: as many GET operations as the API documents.
    documented = [
        path
        for path, operations in api.get("/api/v1/openapi.json").json()["paths"].items()
        if "get" in operations and path != "/api/v1/health"
    ]
    assert sorted(f"/api/v1{r.path}" for r in routes) == sorted(documented)
    assert [r.path for r in routes if not uses_strict_query(r)] == []
