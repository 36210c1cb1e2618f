"""The Jinja2 environment of the pages: templates beside this module, autoescaped HTML.

One ``Jinja2Templates`` instance for the page routes and the error handlers, with the few filters
the pages need to show numbers with their units.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fastapi.templating import Jinja2Templates

TEMPLATE_DIR = Path(__file__).parent / "templates"

templates = Jinja2Templates(directory=TEMPLATE_DIR)


def _when(value: datetime | None) -> str:
    """Server UTC, to the second: the record's own clock, never the browser's guess of a zone."""
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "—"


def _number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


templates.env.filters["when"] = _when
templates.env.filters["number"] = _number
