"""Assembling the limits engine's context from the service's records, for dry runs and live sessions.

The engine itself knows nothing of databases or settings; this module turns a client row into the
prescription layer's context, a device row into the device layer's capabilities, and the settings into
the site layer's policy, so the dry run a practitioner calls and the approval a live session relies
on are built the same way. A layer whose input is configured or named but cannot be had (a site
policy file that cannot be read, a device that never reported its capabilities) is an error here,
never a layer silently left out of the verdict.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session

from sessionlog.errors import InvalidFieldError, InvalidFieldsError
from sessionlog.field_errors import field_errors
from sessionlog.safety import (
    ClientContext,
    Contraindication,
    ContraindicationOverride,
    DeviceCapabilities,
    LimitsEngine,
    Prescription,
    SitePolicy,
    SitePolicyError,
    StimulationPlan,
    Verdict,
    load_site_policy,
)
from sessionlog.settings import Settings
from sessionlog.store import repository
from sessionlog.store.models import Client, Device

ENGINE = LimitsEngine()


@lru_cache(maxsize=8)
def _cached_policy(path: Path, modified_ns: int) -> SitePolicy:
    return load_site_policy(path)


def site_policy(settings: Settings) -> SitePolicy | None:
    """The site policy file named by the settings, re-read whenever the file changes.

    ``None`` only when no policy is configured. A configured file that is missing, unreadable or
    invalid raises SitePolicyError naming the file and the reason (the service checks this at
    start-up, and an approval asked for after the file broke is refused rather than approved
    without the site layer).
    """
    path = settings.site_policy_path
    if path is None:
        return None
    try:
        modified_ns = path.stat().st_mtime_ns
    except OSError as exc:
        raise SitePolicyError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return _cached_policy(path, modified_ns)


def client_context(
    client: Client, overrides: Sequence[ContraindicationOverride] = ()
) -> ClientContext:
    prescription = Prescription.model_validate(client.prescription) if client.prescription else None
    return ClientContext(
        prescription=prescription,
        contraindications=frozenset(Contraindication(c) for c in client.contraindications),
        overrides=tuple(overrides),
    )


def device_capabilities(device: Device) -> DeviceCapabilities:
    """The capabilities a driver reported when the device was last connected.

    A device registered by hand (``POST /devices``) has none until it is first connected; a check
    "for this device" without them would be an approval the device layer never saw, so that is an
    error naming ``device_id``, as starting a session on a device that is not connected is.
    """
    if device.capabilities is None:
        raise InvalidFieldError(
            "device_id",
            f"device {device.id} ({device.driver} {device.serial_number}) has not reported its "
            "capabilities, so the device layer cannot check the plan; connect it first",
        )
    try:
        return DeviceCapabilities.model_validate(device.capabilities)
    except ValidationError as exc:
        raise InvalidFieldError(
            "device_id",
            f"the capabilities stored for device {device.id} are not valid "
            f"({exc.error_count()} errors); connect it again so its driver reports them afresh",
        ) from exc


def dry_run(
    db: Session,
    settings: Settings,
    plan: StimulationPlan,
    *,
    client_id: int | None = None,
    device_id: int | None = None,
    overrides: Sequence[ContraindicationOverride] = (),
    acknowledged_warnings: frozenset[str] = frozenset(),
) -> Verdict:
    """The verdict a session with this plan would get, without touching any device.

    Every layer the caller names runs or the call fails: an unknown client or device, or a device
    whose capabilities are unknown, raises InvalidFieldError; an unusable site policy raises
    SitePolicyError.
    """
    client = None
    if client_id is not None:
        row = repository.get(db, Client, client_id)
        if row is None:
            raise InvalidFieldError("client_id", f"no client with id {client_id}")
        client = client_context(row, overrides)
    capabilities = None
    if device_id is not None:
        device = repository.get(db, Device, device_id)
        if device is None:
            raise InvalidFieldError("device_id", f"no device with id {device_id}")
        capabilities = device_capabilities(device)
    return ENGINE.approve(
        plan,
        capabilities=capabilities,
        site_policy=site_policy(settings),
        client=client,
        acknowledged_warnings=acknowledged_warnings,
    )


_PROGRAM_FIELD = re.compile(r"^dose\.channels\[(\d+)\]\..*$")
"""A dose figure of a channel, which a program does not hold: the channel it is computed from."""


def check_program(values: Mapping[str, Any], changed: Collection[str]) -> None:
    """Refuse a program no session could run: a channel the standard profile of its modality
    refuses whatever the electrode (a microcurrent amplitude of 20 mA, a pulse wider than the
    profile allows). Judged by the limits engine itself, on the program's parameters placed where
    they are least restricted (a large electrode on the thigh, a site open to every modality), so
    that only limits no placement lifts can refuse; the session that uses the program is judged on
    its own electrode. Only a change of what the engine reads (``changed``) is judged, so a
    program stored before a limit was tightened can still be described or renamed."""
    if not {"modality", "duration_s", "channels"} & set(changed):
        return
    try:
        plan = StimulationPlan.model_validate(
            {
                "modality": values["modality"],
                "duration_s": values["duration_s"],
                "electrode": {"body_site": "thigh_anterior", "area_cm2": 1000},
                "channels": values["channels"],
            }
        )
    except ValidationError as error:  # what a plan asks beyond a program (channels unique)
        field, reason = field_errors(error)[0]
        raise InvalidFieldError(field or "channels", reason) from None
    found = ENGINE.approve(plan).violations
    if found:
        raise InvalidFieldsError(
            [
                (
                    _PROGRAM_FIELD.sub(r"channels[\1]", v.field),
                    f"{v.message} (the standard profile refuses this whatever the electrode, so "
                    "no session could run the program)",
                )
                for v in found
            ]
        )
