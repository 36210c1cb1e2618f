"""Query strings are read strictly: an unknown parameter, or a single-value one given twice, is a 422.

A misspelt filter (``modalty=ems``) silently ignored widens the answer, and of ``sort=id&sort=-id``
the framework would quietly keep the last: either way the client gets an answer to a question it
did not ask. ``reject_unknown`` refuses parameters a route does not know, naming each;
``StrictQuery`` applies it to a route from the route's own declared query parameters (its
dependencies' included), and also refuses a repeated parameter that takes one value. Every GET
route of the API declares ``StrictQuery`` after its credentials, so a caller without them still
gets the 401 first (a test checks every GET route has it).
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant

from sessionlog.api.problems import FieldError, ProblemError

_SEQUENCES = (list, tuple, set, frozenset)


def query_problem(errors: Iterable[FieldError]) -> ProblemError:
    """A 422 problem for query parameters, with every refused field named."""
    found = list(errors)
    return ProblemError(
        422,
        "Request validation failed",
        detail="; ".join(f"{e.field}: {e.reason}" for e in found[:5]),
        kind="validation",
        errors=found,
    )


def reject_unknown(request: Request, allowed: Iterable[str]) -> None:
    """Refuse query parameters the route does not know, naming each: a typo must not widen a query."""
    known = set(allowed)
    unknown = sorted({name for name in request.query_params if name not in known})
    if unknown:
        listed = ", ".join(sorted(known)) or "none"
        raise query_problem(
            FieldError(
                field=name, reason=f"unknown query parameter; known: {listed}", location="query"
            )
            for name in unknown
        )


def reject_repeated(request: Request, single: Iterable[str]) -> None:
    """Refuse a parameter that takes one value but was given several times, naming it."""
    repeated = sorted(name for name in set(single) if len(request.query_params.getlist(name)) > 1)
    if repeated:
        raise query_problem(
            FieldError(
                field=name,
                reason=f"given {len(request.query_params.getlist(name))} times; this parameter "
                "takes one value",
                location="query",
            )
            for name in repeated
        )


def _takes_several(annotation: Any) -> bool:
    """Whether a query parameter's type is a list (``modality=ems&modality=microcurrent``)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _takes_several(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return any(_takes_several(arg) for arg in get_args(annotation))
    if origin is not None:
        annotation = origin
    return isinstance(annotation, type) and (
        issubclass(annotation, _SEQUENCES)
        or (annotation.__module__ == "collections.abc" and issubclass(annotation, Sequence))
    )


def declared_query(dependant: Dependant) -> tuple[frozenset[str], frozenset[str]]:
    """The query parameters a route reads (its dependencies' included), and those of one value."""
    names: set[str] = set()
    single: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        for field in current.query_params:
            names.add(field.alias)
            if not _takes_several(field.field_info.annotation):
                single.add(field.alias)
        pending.extend(current.dependencies)
    return frozenset(names), frozenset(single)


_DECLARED = "_sessionlog_declared_query"
"""The attribute each route caches its declared query parameters in (they never change)."""


async def strict_query(request: Request) -> None:
    """Refuse unknown query parameters and repeated single-value ones on the matched route."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:  # pragma: no cover - every API route is an APIRoute
        return
    declared: tuple[frozenset[str], frozenset[str]] | None = getattr(route, _DECLARED, None)
    if declared is None:
        declared = declared_query(dependant)
        setattr(route, _DECLARED, declared)
    names, single = declared
    reject_unknown(request, names)
    reject_repeated(request, single)


StrictQuery = Annotated[None, Depends(strict_query)]
"""Declare it (after the credentials) on a GET route: its query string is then read strictly."""
