"""What the loop's endpoints accept and answer (reactions, a client's group), as pydantic models."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from eventstore.schema import CHANNELS, REACTION_REASONS, REACTIONS
from service.schemas import Id, JsonInt

#: How long a snooze lasts when the reaction does not say.
DEFAULT_SNOOZE_DAYS = 7


class ReactionRequest(BaseModel):
    """Body of POST /v1/reactions: what a person did with one suggestion of one answer."""

    model_config = ConfigDict(extra="forbid")
    recommendation_id: Id = Field(description="The answer's `recommendation_id`.")
    item_id: Id = Field(description="The suggestion's `item_id` (a bundle's `bundle_id`) in that answer.")
    reaction: Literal[REACTIONS] = Field(  # type: ignore[valid-type]
        description="shown (the block was seen), clicked, accepted, rejected (not offered again for "
                    "REJECT_SUPPRESS_DAYS, with its product group), snoozed (back after snooze_days).")
    snooze_days: JsonInt = Field(DEFAULT_SNOOZE_DAYS, ge=1, le=365,
                                 description="snoozed: for how long, in days (ignored for other reactions).")
    reason: Literal[REACTION_REASONS] | None = Field(None, description="Why, in a short code.")  # type: ignore[valid-type]
    channel: Literal[CHANNELS] | None = Field(None, description="Where the person reacted.")  # type: ignore[valid-type]


class ReactionAccepted(BaseModel):
    recommendation_id: str
    item_id: str
    reaction: str
    duplicate: bool = Field(description="true: the same reaction was already stored; nothing changed.")
    changes_next_answer: bool = Field(description="true: the client's next answer leaves the item (or kind) out.")


class ClientGroup(BaseModel):
    client_id: str
    group: Literal["control", "treatment"]
    variant: str = Field(description="`control`, or the experiment arm (registry alias) the client is in.")
    control_share: float
    experiment: str = Field(description="The EXPERIMENT setting the arms come from (empty: one arm).")
