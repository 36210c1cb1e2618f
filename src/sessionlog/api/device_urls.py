"""Which serial URLs a caller of ``POST /connections`` may have the service open.

pyserial opens whatever it is given: any file (``/etc/passwd`` answers "could not configure
port", which tells the caller the file exists) and any host (``socket://``, ``rfc2217://``), so a
practitioner's request could probe the server's files or reach into its network. The service
therefore opens, for a remote caller, only what a stimulator can be: a serial device under
``/dev/`` (no ``.`` or ``..`` parts), a Windows COM port, an emulator in the service's own process,
or a network serial port on a host the site lists (``device_hosts``, loopback by default). The
command line, run by the operator on the machine itself, is not limited.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection
from urllib.parse import urlsplit

IN_PROCESS_SCHEMES = frozenset({"sim", "rehastim2", "loop"})
"""Emulators and pyserial's loopback, which open nothing outside the service."""
NETWORK_SCHEMES = frozenset({"socket", "rfc2217"})
"""pyserial's network serial ports; their host must be one the site lists."""

_COM_PORT = re.compile(r"^COM[1-9][0-9]{0,2}$", re.IGNORECASE)


def refusal(url: str, allowed_hosts: Collection[str]) -> str | None:
    """Why ``url`` may not be opened for a caller of the API, or None if it may."""
    if "://" not in url:
        if _COM_PORT.match(url):
            return None
        if not url.startswith("/dev/"):
            return "a device path must lie under /dev/ (or be a COM port)"
        if posixpath.normpath(url) != url:
            return "give the device path without '.', '..' or repeated '/' parts"
        return None
    scheme = url.split("://", 1)[0].lower()
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
