"""The driver skeleton generator behind ``sessionlog driver new NAME``.

It writes a complete driver package from the templates shipped in ``templates/``: a driver on the
HAL base class speaking a small framed protocol, an emulator of the device's firmware that the
conformance contract can probe, the pyserial URL handler that opens it, the ``sessionlog.drivers``
entry point, and tests that run the contract, so an integrator starts from something that passes
and changes it into their device. It never overwrites anything.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

import sessionlog
from sessionlog.hal.registry import available_drivers

NAME_PATTERN = re.compile(r"[a-z][a-z0-9]{1,30}")
"""Lower-case letters and digits: one word that is at once the entry-point name, the URL scheme
(schemes may not contain ``_``) and a part of the package name."""

_FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "package/__init__.py.tmpl": "{package}/__init__.py",
    "package/py.typed.tmpl": "{package}/py.typed",
    "package/protocol.py.tmpl": "{package}/protocol.py",
    "package/driver.py.tmpl": "{package}/driver.py",
    "package/emulator.py.tmpl": "{package}/emulator.py",
    "package/protocol_scheme.py.tmpl": "{package}/protocol_{name}.py",
    "tests/test_conformance.py.tmpl": "tests/test_conformance.py",
    "tests/test_protocol.py.tmpl": "tests/test_protocol.py",
}
"""Template → path in the generated project."""


class SkeletonError(ValueError):
    """The skeleton cannot be written as asked (a bad name, a taken name, an existing folder)."""


@dataclass(frozen=True)
class SkeletonNames:
    """Every name the templates derive from the driver name ``acme``."""

    name: str
    """``acme``: the entry-point name and the URL scheme."""
    package: str
    """``sessionlog_acme``: prefixed so that a driver named like a module (``serial``, ``json``)
    cannot shadow it."""
    distribution: str
    """``sessionlog-acme``: the project name and the folder written."""
    class_prefix: str
    """``Acme``."""
    class_name: str
    """``AcmeDriver``."""
    title: str
    """``Acme``: how docs name the device."""

    @classmethod
    def for_name(cls, name: str) -> SkeletonNames:
        if not NAME_PATTERN.fullmatch(name) or keyword.iskeyword(name):
            raise SkeletonError(
                f"{name!r} is not a driver name: use 2-31 lower-case letters and digits, "
                "starting with a letter (it is also the URL scheme, e.g. acme://)"
            )
        prefix = name[0].upper() + name[1:]
        return cls(
            name=name,
            package=f"sessionlog_{name}",
            distribution=f"sessionlog-{name}",
            class_prefix=prefix,
            class_name=f"{prefix}Driver",
            title=prefix,
        )


def write_skeleton(name: str, parent: Path) -> list[Path]:
    """Write the package for driver ``name`` into ``parent / "sessionlog-<name>"``; the files.

    Refuses a name an installed driver already has (two entry points with one name would make
    ``open_device`` pick one silently) and a folder that exists (nothing is overwritten)."""
    names = SkeletonNames.for_name(name)
    if name in available_drivers():
        raise SkeletonError(
            f"a driver named {name!r} is already registered in the 'sessionlog.drivers' "
            "entry-point group; choose another name"
        )
    root = parent / names.distribution
    if root.exists():
        raise SkeletonError(f"{root} already exists; nothing was written")
    values = {
        "name": names.name,
        "package": names.package,
        "distribution": names.distribution,
        "class_prefix": names.class_prefix,
        "class_name": names.class_name,
        "title": names.title,
        "sessionlog_version": sessionlog.__version__,
    }
    templates = resources.files("sessionlog.conformance") / "templates"
    rendered: dict[Path, str] = {}
    for template, target in _FILES.items():
        source = templates.joinpath(*template.split("/")).read_text(encoding="utf-8")
        path = root / target.format(package=names.package, name=names.name)
        rendered[path] = Template(source).substitute(values)
    written = []
    for path, text in rendered.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
