"""Assembling the limits engine's context from the service's records, for dry runs and live sessions.

The engine itself knows nothing of databases or settings; this module turns a client row into the
prescription layer's context, a device row into the device layer's capabilities, and the settings into
the site layer's policy, so the dry run a practitioner calls and the approval a live session relies
on are built the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from sqlmodel import Session

from sessionlog.errors import InvalidFieldError
from sessionlog.safety import (
    ClientContext,
    Contraindication,
    ContraindicationOverride,
    DeviceCapabilities,
    LimitsEngine,
    Prescription,
    SitePolicy,
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
    """The site policy file named by the settings, re-read whenever the file changes."""
    path = settings.site_policy_path
    if path is None:
        return None
    return _cached_policy(path, path.stat().st_mtime_ns)


def client_context(
    client: Client, overrides: Sequence[ContraindicationOverride] = ()
) -> ClientContext:
    prescription = Prescription.model_validate(client.prescription) if client.prescription else None
    return ClientContext(
        prescription=prescription,
        contraindications=frozenset(Contraindication(c) for c in client.contraindications),
        overrides=tuple(overrides),
    )


def device_capabilities(device: Device) -> DeviceCapabilities | None:
    """The capabilities a driver reported when the device was last connected, if ever."""
    if device.capabilities is None:
        return None
    return DeviceCapabilities.model_validate(device.capabilities)


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
    """The verdict a session with this plan would get, without touching any device."""
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
