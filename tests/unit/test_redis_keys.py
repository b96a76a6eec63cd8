"""The service's Redis key names (service/redis/core.py `Keys`): unchanged on a single Redis (no migration for a
deployment that does not turn REDIS_CLUSTER on), and on a cluster every key one script touches in one slot."""
from __future__ import annotations

import pytest
from redis.crc import key_slot

from scoring.contract import client_state_key
from service.redis.core import Keys


def _slot(key: str) -> int:
    return key_slot(key.encode())


def test_single_redis_names_are_the_ones_deployed_before_the_cluster() -> None:
    keys = Keys("shop")
    assert [keys.recent("c1"), keys.generation("c1"), keys.answers("c1"), keys.loop("c1"),
            keys.kind_shown("c1", "r9", "upsell"), keys.recommendation("r9"), keys.exposures] == [
        "crm:shop:recent:c1", "crm:shop:gen:c1", "crm:shop:answers:c1", "crm:shop:loop:c1",
        "crm:shop:kshown:r9:upsell", "crm:shop:rec:r9", "crm:shop:exposures"]


@pytest.mark.parametrize("client", ["c1", "1042", "client:with:colons", "v-visitor-7"])
def test_on_a_cluster_a_clients_keys_and_its_state_in_every_version_share_one_slot(client: str) -> None:
    keys = Keys("shop", cluster=True)
    slots = {_slot(key) for key in (keys.recent(client), keys.generation(client), keys.answers(client),
                                    keys.loop(client), keys.kind_shown(client, "r9", "upsell"),
                                    client_state_key("run-a", client), client_state_key("run-b", client))}
    assert slots == {_slot(client)}


def test_on_a_cluster_an_answers_hot_copy_shares_the_exposure_streams_slot() -> None:
    keys = Keys("shop", cluster=True)
    assert keys.exposures == "crm:shop:exposures"  # the stream keeps its name: nothing buffered is stranded
    assert {_slot(keys.recommendation(rec)) for rec in ("r1", "r2", "ffff")} == {_slot(keys.exposures)}
    assert len({_slot(Keys("shop", cluster=True).recent(c)) for c in map(str, range(50))}) > 40  # clients spread
