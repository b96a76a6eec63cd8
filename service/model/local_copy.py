"""Each model version's files on local disk, keyed by what identifies the version, and the last good one.

Layout under MODEL_CACHE_DIR/<model name>/:

    v<version>-<source id>/model/      the version's MLflow model folder, as downloaded
    v<version>-<source id>/copy.json   {"version", "source_id", "digest", "downloaded_at"}
    last_good@<alias>.json             the copy of the last version of that alias that passed its checks

One record per alias: the arms of an experiment (EXPERIMENT) follow several aliases of one model,
which share the copies (a version two aliases point to is downloaded once) but each restarts on
its own last good version. Pruning keeps every copy a record names. A `last_good.json` written
before the records were per alias is still read for its alias.

The source id is the version's MLflow 3 logged-model id (or its run id): another registry's
version 1, or a rebuilt registry's, has another one, so it never reuses this copy. The digest
(sha256 over every file's path and bytes, `__pycache__` left out) is computed when the copy is
downloaded and checked before a copy is used: a copy changed on disk is downloaded again or,
when the registry is unreachable, not served. A version's identity, `<source id>.<digest>`,
also keys the answer cache, so answers of one store's version 1 are never served for another's.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Copies kept besides those a last-good record names (the newest first).
_KEEP_VERSIONS = 3
_LEGACY_RECORD = "last_good.json"
_DIGEST_CHARS = 16


class CopyUnusable(Exception):
    """The last good copy is missing a record, or its files changed since they were downloaded."""


@dataclass(frozen=True)
class VersionSource:
    """What the registry says an alias's version is."""

    version: str
    source_id: str     # logged model id (m-...) or run id: unique across stores
    artifact_uri: str  # where its files are

    @property
    def key(self) -> str:
        """Folder name of its local copy."""
        return f"v{self.version}-{re.sub(r'[^A-Za-z0-9_.-]', '_', self.source_id)}"


@dataclass(frozen=True)
class LocalCopy:
    """A version's files on disk, checked against the digest taken when they were downloaded."""

    folder: Path  # the MLflow model folder
    key: str
    version: str
    source_id: str
    digest: str

    @property
    def identity(self) -> str:
        return version_identity(self.source_id, self.digest)


def version_identity(source_id: str, digest: str) -> str:
    """What identifies a version across registries: its source id and a digest of its files."""
    return f"{source_id}.{digest[:_DIGEST_CHARS]}"


def folder_digest(folder: Path) -> str:
    """sha256 over the relative path, size and bytes of every file under `folder`, in path order.
    `__pycache__` is left out: loading a model's code may write bytecode next to it."""
    digest = hashlib.sha256()
    files = sorted((p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts),
                   key=lambda p: p.relative_to(folder).as_posix())
    for path in files:
        digest.update(f"{path.relative_to(folder).as_posix()}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_json(target: Path, record: dict[str, str]) -> None:
    staging = target.with_name(f".{target.name}-{uuid.uuid4().hex}")
    staging.write_text(json.dumps(record))
    os.replace(staging, target)


class LocalCopies:
    """The local copies of one registered model (shared by the workers of a host: every write
    is a rename, so a worker never sees half a copy)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def fetch(self, source: VersionSource, download: Callable[[str, Path], str]) -> LocalCopy:
        """The version's local copy, downloaded (`download(artifact_uri, into)` returns the model
        folder) unless an intact copy is already there."""
        final = self.root / source.key
        intact = self._checked(final)
        if intact is not None:
            return intact
        self.root.mkdir(parents=True, exist_ok=True)
        if final.exists():  # changed on disk: set it aside (a worker may still be reading it)
            aside = self.root / f".changed-{uuid.uuid4().hex}"
            os.rename(final, aside)
            shutil.rmtree(aside, ignore_errors=True)
        staging = self.root / f".download-{uuid.uuid4().hex}"
        try:
            os.rename(download(source.artifact_uri, staging / "files"), staging / "model")
            digest = folder_digest(staging / "model")
            _write_json(staging / "copy.json", {"version": source.version, "source_id": source.source_id,
                                                "digest": digest, "downloaded_at": _now()})
            try:
                os.rename(staging, final)  # atomic; another worker may have won the race
            except OSError:
                if self._checked(final) is None:
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        copy = self._checked(final)
        if copy is None:
            raise CopyUnusable(f"the copy of version {source.version} changed while it was stored")
        return copy

    def _checked(self, final: Path) -> LocalCopy | None:
        """The copy in `final` if its files still have the digest recorded at download."""
        try:
            record = json.loads((final / "copy.json").read_text())
            copy = LocalCopy(final / "model", final.name, str(record["version"]), str(record["source_id"]),
                             str(record["digest"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not copy.folder.is_dir() or folder_digest(copy.folder) != copy.digest:
            logger.warning("local model copy changed on disk since it was downloaded: not used",
                           extra={"model_version": copy.version})
            return None
        return copy

    def _record_path(self, alias: str) -> Path:
        return self.root / f"last_good@{re.sub(r'[^A-Za-z0-9_.-]', '_', alias)}.json"

    def save_last_good(self, copy: LocalCopy, name: str, alias: str) -> None:
        _write_json(self._record_path(alias), {"name": name, "alias": alias, "version": copy.version,
                                               "key": copy.key, "identity": copy.identity, "saved_at": _now()})
        legacy = self.root / _LEGACY_RECORD
        try:
            if json.loads(legacy.read_text()).get("alias") == alias:
                legacy.unlink(missing_ok=True)  # superseded by this alias's own record
        except (OSError, ValueError, AttributeError):
            pass
        self._prune(keep=copy.key)

    def forget(self, alias: str) -> None:
        """Drop `alias`'s record (its alias is gone: a restart must not serve it from disk)."""
        self._record_path(alias).unlink(missing_ok=True)

    def last_good(self, alias: str) -> LocalCopy | None:
        """The copy of the last good version of `alias`; None when there is none; CopyUnusable
        when there is one that must not be served."""
        record = self._record(self._record_path(alias))
        if record is None:  # written before the records were per alias
            record = self._record(self.root / _LEGACY_RECORD)
        if record is None or record.get("alias") != alias:
            return None
        if "key" not in record:
            raise CopyUnusable("last_good.json predates digests: the copy cannot be checked")
        copy = self._checked(self.root / record["key"])
        if copy is None:
            raise CopyUnusable(f"the local copy of version {record.get('version')} is missing or its files changed "
                               "since they were downloaded")
        return copy

    def _record(self, path: Path) -> dict[str, Any] | None:
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except ValueError as error:
            raise CopyUnusable(f"{path.name} is unreadable: {error}") from error
        if not isinstance(record, dict):
            raise CopyUnusable(f"{path.name} is not a record")
        return record

    def _recorded_keys(self) -> set[str]:
        """The copies a last-good record names (of any alias): never pruned."""
        keys: set[str] = set()
        for path in [*self.root.glob("last_good@*.json"), self.root / _LEGACY_RECORD]:
            try:
                keys.add(str(json.loads(path.read_text())["key"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return keys

    def _prune(self, keep: str) -> None:
        kept = {keep} | self._recorded_keys()
        versions = sorted((p for p in self.root.glob("v*") if p.is_dir() and p.name not in kept),
                          key=lambda p: p.stat().st_mtime, reverse=True)
        for old in versions[_KEEP_VERSIONS - 1:]:
            shutil.rmtree(old, ignore_errors=True)
