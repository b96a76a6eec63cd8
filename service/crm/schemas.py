"""What the CRM endpoints accept and answer, as pydantic models (the OpenAPI document is built from them)."""
from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from service.schemas import Id, Segment, Suggestion

#: The triggers `GET /v1/tasks?type=` takes (features/changes.py finds them; this list is the API's).
TRIGGERS = ("moved_down", "lapsing", "lapsed", "frequency_drop", "spend_drop", "won_back", "moved_up",
            "frequency_rise", "spend_rise", "new_category")
ACTIONS = ("retain", "develop", "win_back")
OUTCOMES = ("done", "dismissed")


def _iso_date(value: object) -> object:
    """A query's date: YYYY-MM-DD text only (pydantic would also take epoch numbers)."""
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("must be a date written YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]


class TaskQuery(BaseModel):
    """Query of GET /v1/tasks."""

    model_config = ConfigDict(extra="ignore")
    since: IsoDate | None = Field(None, description="Only tasks raised on or after this date (YYYY-MM-DD).")
    type: Literal[TRIGGERS] | None = Field(None, description="Only this trigger.")  # type: ignore[valid-type]
    abc: Literal["A", "B", "C"] | None = Field(None, description="Only clients of this ABC class now.")
    status: Literal["open", "done", "dismissed", "all"] = Field(
        "open", description="open (the default): tasks with no outcome yet; done, dismissed, or all.")
    limit: int = Field(20, ge=1, le=100, description="How many tasks, 1 to 100 (each carries its offers).")


class TaskOutcomeRequest(BaseModel):
    """Body of POST /v1/tasks/{task_id}."""

    model_config = ConfigDict(extra="forbid")
    status: Literal[OUTCOMES] = Field(description="done (the manager worked it) or dismissed.")  # type: ignore[valid-type]
    by: Id = Field(description="Who: the manager's id in the CRM.")
    note: str | None = Field(None, max_length=1000, description="Free text: what the client said.")

    @field_validator("note")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and any(ord(ch) < 32 and ch not in "\n\t" for ch in value):
            raise ValueError("must not contain control characters")
        return value


class ValueFigures(BaseModel):
    model_config = ConfigDict(extra="allow")
    p_alive: float = Field(description="Probability the client is still a client.")
    p_purchase: float = Field(description="Probability of at least one purchase in the next horizon_days.")
    expected_purchases: float
    expected_revenue: float
    expected_value_per_purchase: float
    clv: float = Field(description="Expected revenue over clv_horizon_days, discounted.")
    horizon_days: float
    clv_horizon_days: float
    as_of: str = Field(description="The date the figures are for.")
    data_end: str = Field(description="The end of the data the model was fitted on.")


class Change(BaseModel):
    model_config = ConfigDict(extra="allow")
    trigger: str
    action: Literal[ACTIONS]  # type: ignore[valid-type]
    severity: float = Field(description="0 to 1: the size of the change times the client's class weight.")
    change: float | None = Field(description="The relative change (-0.62 is -62 %), a class move, or null.")
    detail: str = Field(description="The change with its figures, for a person.")
    as_of: str
    period: int


class Offers(BaseModel):
    recommendation_id: str | None = Field(description="The offers' answer id: reactions and attribution use it.")
    variant: str | None = None
    kind: str
    suggestions: list[Suggestion]


class Task(BaseModel):
    task_id: str = Field(description="Stable across retrains: a hash of client, trigger and period.")
    client_id: str
    segment: Segment
    change: Change
    action: Literal[ACTIONS]  # type: ignore[valid-type]
    value: ValueFigures | None
    value_at_risk: float | None = Field(description="retain and win_back: clv × (1 - p_alive).")
    value_to_gain: float | None = Field(description="develop: expected_revenue (next period) × severity.")
    priority: float = Field(description="What the list is ordered by: value_at_risk or value_to_gain.")
    status: Literal["open", "done", "dismissed"]
    outcome: dict | None = Field(None, description="The latest outcome: status, by, at, note.")
    offers: Offers


class TaskList(BaseModel):
    model_version: str
    as_of: str | None = Field(description="The date the model's transitions are as of (its data end).")
    total: int = Field(description="Tasks matching the filters (the list holds the first `limit`).")
    tasks: list[Task]


class TaskOutcome(BaseModel):
    task_id: str
    known: bool = Field(description="false: the serving model raised no such task (a task of an earlier version, "
                                    "or a mistyped id); the outcome is stored all the same.")
    client_id: str | None
    status: Literal[OUTCOMES]  # type: ignore[valid-type]
    by: str
    at: str


class Replenishment(BaseModel):
    model_config = ConfigDict(extra="allow")
    item_id: str
    name: str | None = None
    due_in_days: float | None = None
    reason: str


class Holding(BaseModel):
    package_id: str
    name: str
    tier: float | None


class ClientProfile(BaseModel):
    client_id: str
    model_version: str
    known: bool = Field(description="False: the model has never seen the client (no history, no figures).")
    segment: Segment = Field(description="Now (as of the model's data end).")
    segment_before: Segment = Field(description="A period (SEGMENT_PERIOD_DAYS) earlier.")
    transitions: list[Change]
    value: ValueFigures | None
    due_replenishments: list[Replenishment]
    holdings: list[Holding] = Field(description="Service packages held: every member item bought.")
    group: Literal["control", "treatment"]
    variant: str
