"""The persistent control group's hash: a pure function both the service (answers) and the trainer
(campaign audiences) use, so a client is in control for every channel alike.

It lives here because both sides may import `eventstore` and imports run one way (the service never
imports `training`, the trainer never imports `service`); `service.loop.assignment` builds the arms on it.
"""
from __future__ import annotations

import hashlib


def unit_draw(tenant: str, salt: str, subject: str, purpose: str) -> float:
    """A uniform number in [0, 1) fixed by its inputs (the first 8 bytes of a sha256)."""
    digest = hashlib.sha256(f"{tenant}\x1f{salt}\x1f{purpose}\x1f{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def in_control(tenant: str, salt: str, subject: str, control_share: float) -> bool:
    return unit_draw(tenant, salt, subject, "control") < control_share
