"""/metrics in multiprocess mode (gunicorn): a worker's file that is still empty (it is created,
then sized) must not fail the scrape; the other workers' values still show."""
from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.mmap_dict import MmapedDict

from service.metrics import CACHE, child, exposition


def test_an_empty_worker_file_does_not_fail_the_scrape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = MmapedDict(str(tmp_path / "counter_101.db"))  # a live worker's counter, as prometheus-client writes it
    written.write_value('["crm_answers_by_variant_total", "crm_answers_by_variant_total", {"variant": "control"}, '
                        '"Answers by variant"]', 3.0, 0.0)
    written.close()
    (tmp_path / "counter_102.db").touch()  # a worker starting (or killed) between creating and sizing its file
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    body, _ = exposition()
    assert 'crm_answers_by_variant_total{variant="control"} 3.0' in body.decode()


def test_a_metrics_child_looked_up_once_counts_where_labels_would() -> None:
    """`child` (the labelled value found once per worker) is the object `labels` finds: counts through it
    show under the same labels, and another label set is another child."""
    before = REGISTRY.get_sample_value("crm_cache_requests_total", {"endpoint": "child_test", "result": "hit"}) or 0.0
    first = child(CACHE, "child_test", "hit")
    assert first is child(CACHE, "child_test", "hit") is CACHE.labels("child_test", "hit")
    assert child(CACHE, "child_test", "miss") is not first
    first.inc()
    CACHE.labels("child_test", "hit").inc()
    assert REGISTRY.get_sample_value("crm_cache_requests_total", {"endpoint": "child_test", "result": "hit"}) == before + 2
