"""Who gets which answer: the persistent control group first, then the experiment's arms.

Pure functions of (tenant, ASSIGNMENT_SALT, client or visitor id), so every worker and replica
assigns alike without sharing state, and a client stays in its group across restarts and model
versions. The control draw and the arm draw hash with different purposes, so the arms split the
non-control clients evenly whatever CONTROL_SHARE is, and changing EXPERIMENT never moves a
client into or out of control.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eventstore.assignment import in_control, unit_draw  # the pure hash, shared with the trainer's campaigns

CONTROL = "control"


@dataclass(frozen=True)
class Arm:
    """One side of an experiment: the registry alias it serves and its weight."""

    alias: str
    weight: float


def parse_experiment(text: str, default_alias: str) -> tuple[Arm, ...]:
    """`champion:90,candidate:10` as arms; empty text is one arm, the serving alias, at 100.

    Raises ValueError naming what is wrong (the settings turn it into a validation error)."""
    text = text.strip()
    if not text:
        return (Arm(default_alias, 100.0),)
    arms: list[Arm] = []
    for part in text.split(","):
        alias, sep, weight = part.strip().partition(":")
        alias = alias.strip()
        if not alias or not sep:
            raise ValueError(f"experiment arm {part.strip()!r} is not alias:weight")
        try:
            value = float(weight)
        except ValueError:
            raise ValueError(f"experiment arm {part.strip()!r}: weight {weight!r} is not a number") from None
        if not value > 0:
            raise ValueError(f"experiment arm {part.strip()!r}: weight must be positive")
        if alias == CONTROL or alias in {arm.alias for arm in arms}:
            raise ValueError(f"experiment arm {alias!r} is reserved or repeated")
        arms.append(Arm(alias, value))
    return tuple(arms)


def arm_of(tenant: str, salt: str, subject: str, arms: Sequence[Arm]) -> str:
    """The arm a non-control subject is in, by the arms' weights."""
    if len(arms) == 1:
        return arms[0].alias
    point = unit_draw(tenant, salt, subject, "experiment") * sum(arm.weight for arm in arms)
    for arm in arms:
        point -= arm.weight
        if point < 0:
            return arm.alias
    return arms[-1].alias


def assign(tenant: str, salt: str, subject: str, control_share: float, arms: Sequence[Arm]) -> str:
    """`control`, or the alias of the subject's arm: control is drawn first, the arms split the rest."""
    if in_control(tenant, salt, subject, control_share):
        return CONTROL
    return arm_of(tenant, salt, subject, arms)


def subject_of(client_id: str | None, visitor_id: str | None) -> str | None:
    """What assignment, fatigue and attribution key on: the client, else the visitor (prefixed, so
    a visitor id can never collide with a client id)."""
    if client_id:
        return client_id
    if visitor_id:
        return f"visitor:{visitor_id}"
    return None
