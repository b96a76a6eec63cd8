"""What GET /v1/reports/effect accepts and answers (service/effect/report.py computes it).

Beside the report, not in service/schemas.py (the suggestion and event endpoints' models), with
the same conventions: dates validated as JSON Schema reads them, models for the OpenAPI document.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from eventstore.schema import CHANNELS
from scoring.contract import KINDS
from service.schemas import _RFC3339, _timestamp

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def _report_time(value: Any, end: bool) -> datetime:
    """A date (YYYY-MM-DD, UTC: `from` at its midnight, `to` at the next one, so the period holds
    that whole day) or an RFC 3339 date-time with its offset (exact, `to` exclusive)."""
    match = _DATE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        if isinstance(value, str) and _RFC3339.fullmatch(value):
            try:
                return _timestamp(value).astimezone(timezone.utc)
            except OverflowError:
                raise ValueError("out of range once in UTC") from None
        raise ValueError("must be a date (YYYY-MM-DD) or an RFC 3339 date-time with its offset (2024-05-01T10:00:00Z)")
    try:
        day = datetime(*(int(part) for part in match.groups()), tzinfo=timezone.utc)  # type: ignore[misc]
    except ValueError as error:
        raise ValueError(f"not a real date: {error}") from None
    if not end:
        return day
    return day + timedelta(days=1) if day.date() < date.max else datetime.max.replace(tzinfo=timezone.utc)


_REPORT_TIME_SCHEMA = {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]}
ReportStart = Annotated[datetime, BeforeValidator(lambda v: _report_time(v, end=False)),
                        WithJsonSchema(_REPORT_TIME_SCHEMA)]
ReportEnd = Annotated[datetime, BeforeValidator(lambda v: _report_time(v, end=True)), WithJsonSchema(_REPORT_TIME_SCHEMA)]


class EffectQuery(BaseModel):
    """Query of GET /v1/reports/effect."""

    model_config = ConfigDict(extra="ignore")
    start: ReportStart = Field(alias="from", description="Start of the period: a date (its midnight UTC) or an RFC "
                                                          "3339 date-time.")
    end: ReportEnd = Field(alias="to", description="End of the period: a date (the period includes that whole day) "
                                                   "or an RFC 3339 date-time (exclusive). Before `from`: an empty period (the report says so).")
    kind: Literal[KINDS] | None = Field(  # type: ignore[valid-type]
        None, description="Only this kind: its exposures, the clients they answered, its attributed purchases.")
    channel: Literal[CHANNELS] | None = Field(  # type: ignore[valid-type]
        None, description="Only exposures that went out on this channel.")


class EffectInterval(BaseModel):
    estimate: float | None
    ci_low: float | None
    ci_high: float | None


class VariantFigures(BaseModel):
    model_config = ConfigDict(extra="allow")
    clients: int = Field(description="Clients (or visitors) whose first exposure in the period was of this variant.")
    exposures: int
    shown_items: int
    clicked_items: int
    accepted_items: int
    ctr: float | None = Field(description="clicked items / shown items (null when nothing was shown).")
    acceptance_rate: float | None = Field(description="accepted items / shown items.")
    attributed_purchases: int
    attributed_revenue: float
    revenue: float = Field(description="All purchase revenue of these clients in the period.")
    revenue_per_client: float | None
    revenue_per_client_ci: dict[str, float | None]


class EffectFigures(BaseModel):
    """One comparison: `variant` minus `against`, intention-to-treat."""

    model_config = ConfigDict(extra="allow")
    variant: str
    against: str
    method: Literal["welch"]
    n_treatment: int
    n_control: int
    mean_treatment: float | None
    mean_control: float | None
    per_client: EffectInterval = Field(description="Incremental revenue per client, 95 % Welch interval.")
    total: EffectInterval = Field(description="per_client x the variant's clients.")
    p_value: float | None
    mde_per_client: float | None = Field(description="Minimum detectable effect at 80 % power, alpha 0.05.")
    mde_total: float | None
    bootstrap_per_client: EffectInterval | None = Field(description="Percentile bootstrap over clients, a cross-check.")
    note: str | None


class KindEffect(BaseModel):
    variants: dict[str, dict[str, Any]]
    effects: list[EffectFigures]


class EffectReport(BaseModel):
    """What suggestions earned in a period, per variant against the control group."""

    model_config = ConfigDict(extra="allow")
    tenant: str
    period: dict[str, str]
    filters: dict[str, str | None]
    method: Literal["welch"]
    confidence: float
    power: float
    attribution: dict[str, Any]
    definitions: dict[str, str]
    variants: dict[str, VariantFigures]
    effects: list[EffectFigures] = Field(description="Each variant against control.")
    by_kind: dict[str, KindEffect] = Field(description="The same within the clients each kind answered.")
    between_variants: list[EffectFigures] = Field(description="Each pair of experiment variants (e.g. candidate "
                                                              "against champion).")
    notes: list[str]
