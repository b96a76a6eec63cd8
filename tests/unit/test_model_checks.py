"""What a model version must pass before it serves (`service.model.checks`, the store's install),
and the local copy of a version (`service.model.local_copy`): in-process, no registry."""
from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from support.service_model_double import CatalogueRecommender

from service.config import Settings
from service.model.checks import check_recommender
from service.model.errors import ModelRejected
from service.model.store import ModelStore


def test_check_rejects_broken_and_non_finite_models(tmp_path: Path) -> None:
    class NaNScores(CatalogueRecommender):
        def suggest(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
            return [{"item_id": "coffee", "score": math.nan}]

    with pytest.raises(ModelRejected, match="smoke check"):
        check_recommender(CatalogueRecommender(broken=True))
    with pytest.raises(ModelRejected, match="invalid suggestion"):
        check_recommender(NaNScores())
    with pytest.raises(ModelRejected, match="lacks"):
        check_recommender(object())
    store = ModelStore(Settings.from_env({"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/none.db",
                                          "MODEL_CACHE_DIR": str(tmp_path / "model-cache"),
                                          "EVENTS_DB_URL": f"sqlite:///{tmp_path}/events.db"}))
    store.install(CatalogueRecommender(), "1")
    with pytest.raises(ModelRejected):
        store.install(CatalogueRecommender(broken=True), "2")
    assert store.current is not None and store.current.version == "1"


def test_a_local_copy_is_reused_while_intact_and_downloaded_again_once_changed(tmp_path: Path) -> None:
    """The digest of a copy ignores the bytecode that loading its code may write, and sees any
    other change; a changed copy is fetched again, an intact one is reused."""
    from service.model.local_copy import LocalCopies, VersionSource, folder_digest

    published = tmp_path / "published"
    (published / "artifacts").mkdir(parents=True)
    (published / "MLmodel").write_text("flavors: {}\n")
    (published / "artifacts" / "a.npy").write_bytes(b"\x93NUMPY" + bytes(range(64)))
    downloads: list[str] = []

    def download(uri: str, into: Path) -> str:
        downloads.append(uri)
        shutil.copytree(published, into / "model")
        return str(into / "model")

    copies = LocalCopies(tmp_path / "cache" / "m")
    source = VersionSource("1", "m-abc", "file:///published")
    first = copies.fetch(source, download)
    assert first.digest == folder_digest(published) and first.identity == f"m-abc.{first.digest[:16]}"
    (first.folder / "__pycache__").mkdir()
    (first.folder / "__pycache__" / "code.cpython-311.pyc").write_bytes(b"bytecode")
    assert copies.fetch(source, download) == first and len(downloads) == 1
    (first.folder / "artifacts" / "a.npy").write_bytes(b"\x93NUMPY" + bytes(63) + b"\x01")
    again = copies.fetch(source, download)
    assert len(downloads) == 2 and again.digest == first.digest
    other = copies.fetch(VersionSource("1", "m-def", "file:///elsewhere"), download)
    assert other.folder != first.folder and len(downloads) == 3
