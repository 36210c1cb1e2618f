"""Which serial URLs a caller of ``POST /connections`` may have the service open.

pyserial opens whatever it is given: any file (``/etc/passwd`` answers "could not configure
port", which tells the caller the file exists) and any host (``socket://``, ``rfc2217://``), so a
practitioner's request could probe the server's files or reach into its network. The service
therefore opens, for a remote caller, only what a stimulator can be: a serial device whose path
matches a pattern the site lists (``device_paths``: USB serial adapters by default) and that is a
character device, a COM port on Windows, an emulator in the service's own process, or a network
serial port on a host the site lists (``device_hosts``, loopback by default). pyserial's own URL
schemes take no options here: theirs reach past the port (``?logging=`` reconfigures the
service's logging, ``?timeout=inf`` makes a connect wait for ever). The command line, run by the
operator on the machine itself, is not limited.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
import stat
from collections.abc import Collection
from urllib.parse import urlsplit

EMULATOR_SCHEMES = frozenset({"sim", "rehastim2"})
"""The emulators of the built-in drivers, which open nothing outside the service; their query
string configures the emulated device."""
IN_PROCESS_SCHEMES = EMULATOR_SCHEMES | {"loop"}
"""What opens nothing outside the service: the emulators and pyserial's loopback."""
NETWORK_SCHEMES = frozenset({"socket", "rfc2217"})
"""pyserial's network serial ports; their host must be one the site lists."""

_COM_PORT = re.compile(r"^COM[1-9][0-9]{0,2}$", re.IGNORECASE)


def refusal(url: str, allowed_hosts: Collection[str], allowed_paths: Collection[str]) -> str | None:
    """Why ``url`` may not be opened for a caller of the API, or None if it may."""
    if "://" not in url:
        return _path_refusal(url, allowed_paths)
    scheme = url.split("://", 1)[0].lower()
    if scheme not in EMULATOR_SCHEMES and any(mark in url for mark in "?#"):
        return f"{scheme}:// takes no options here (they reach past the port)"
    if scheme in IN_PROCESS_SCHEMES:
        return None
    if scheme not in NETWORK_SCHEMES:
        known = ", ".join(f"{s}://" for s in sorted(IN_PROCESS_SCHEMES | NETWORK_SCHEMES))
        return f"{scheme}:// is not a serial URL this service opens (it opens {known})"
    try:
        host = urlsplit(url).hostname
    except ValueError as error:
        return f"cannot be read as a {scheme}:// URL: {error}"
    listed = {h.lower() for h in allowed_hosts}
    if host is None or host.lower() not in listed:
        hosts = ", ".join(sorted(listed)) or "none"
        return (
            f"host {host or '(none)'} is not one this site lets the service reach "
            f"(SESSIONLOG_DEVICE_HOSTS: {hosts})"
        )
    return None


def _path_refusal(path: str, allowed_paths: Collection[str]) -> str | None:
    """A device path must match a listed pattern, as given and once its links are resolved, and
    be a character device: nothing else under ``/dev/`` (a file in ``/dev/shm``, the service's
    own descriptors in ``/dev/fd``, the terminal) is a serial port."""
    if os.name == "nt" and _COM_PORT.match(path):
        return None
    patterns = ", ".join(allowed_paths) or "none"
    if posixpath.normpath(path) != path:
        return "give the device path without '.', '..' or repeated '/' parts"
    resolved = os.path.realpath(path)
    if not all(
        any(fnmatch.fnmatchcase(candidate, pattern) for pattern in allowed_paths)
        for candidate in (path, resolved)
    ):
        return f"not a serial port path this site allows (SESSIONLOG_DEVICE_PATHS: {patterns})"
    try:
        mode = os.stat(resolved).st_mode
    except OSError:
        return None  # opening it says that the device is missing
    if not stat.S_ISCHR(mode):
        return "not a serial port: the path names no character device"
    return None
