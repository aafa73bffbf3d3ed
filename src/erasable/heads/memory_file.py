"""The file format of a saved visual memory: ``index.faiss`` (FAISS's own format) and ``memory.json``.

The JSON side file holds the memory's settings and, in the index's row order (sample id
order: the head canonicalizes before saving), the ids, labels and weights of its samples --
never pickle, so nothing in the files is executed when they are read. Both files are
written to temporary names and moved into place, and the files of a memory that forgot
samples equal those of one built without them (flat index).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from erasable.heads.memory_index import IndexKind, faiss
from erasable.heads.voting import Voting
from erasable.moments import Label

__all__ = ["FORMAT", "FORMAT_VERSION", "INDEX_FILE", "SIDE_FILE", "MemoryFileError", "SavedMemory"]

FORMAT = "erasable-memory"
FORMAT_VERSION = 1
INDEX_FILE = "index.faiss"
SIDE_FILE = "memory.json"


class MemoryFileError(ValueError):
    """A saved memory is unreadable or inconsistent."""


@dataclass(frozen=True)
class SavedMemory:
    """What a memory's files hold: its settings, its samples in index order, and the FAISS index of their vectors.

    ``trained_on`` names the rows an IVF index's centroids were computed from (``None`` for a flat index).
    """

    dim: int
    index_kind: IndexKind  # as read: the head's constructor checks it
    nprobe: int
    cv_queries: int
    voting: Voting | None
    ids: list[str]
    labels: list[Label]
    sample_weights: list[float]
    class_weights: dict[Label, float]
    trained_on: list[int] | None
    index: Any

    def write(self, directory: str | Path) -> None:
        """Write ``index.faiss`` and ``memory.json`` into ``directory`` (created if need be)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        index_tmp, side_tmp = directory / f".{INDEX_FILE}.tmp", directory / f".{SIDE_FILE}.tmp"
        faiss.write_index(self.index, str(index_tmp))
        side_tmp.write_text(json.dumps(self._manifest(), separators=(",", ":")))
        os.replace(index_tmp, directory / INDEX_FILE)
        os.replace(side_tmp, directory / SIDE_FILE)

    def _manifest(self) -> dict[str, Any]:
        voting = self.voting
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "dim": self.dim,
            "index": self.index_kind,
            "nprobe": self.nprobe,
            "cv_queries": self.cv_queries,
            "voting": None if voting is None else [voting.aggregation, voting.k, voting.param],
            "ids": self.ids,
            "labels": self.labels,
            "sample_weights": self.sample_weights,
            "class_weights": [[label, w] for label, w in sorted(self.class_weights.items())],
            "trained_on": self.trained_on,
        }

    @classmethod
    def read(cls, directory: str | Path) -> SavedMemory:
        """Read the files :meth:`write` wrote; :class:`MemoryFileError` if they are unreadable or disagree."""
        directory = Path(directory)
        try:
            manifest = json.loads((directory / SIDE_FILE).read_text())
            index = faiss.read_index(str(directory / INDEX_FILE))
        except (OSError, ValueError, RuntimeError) as exc:
            raise MemoryFileError(f"{directory}: cannot read the memory: {exc}") from exc
        if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
            raise MemoryFileError(f"{directory}: not an {FORMAT} v{FORMAT_VERSION} file.")
        n = len(manifest["ids"])
        if index.ntotal != n or index.d != manifest["dim"] or len(manifest["labels"]) != n:
            raise MemoryFileError(f"{directory}: the index and the side file disagree.")
        if not isinstance(index, (faiss.IndexIVFFlat, faiss.IndexFlatIP)):
            raise MemoryFileError(f"{directory}: unexpected index type {type(index).__name__}.")
        voting = manifest["voting"]
        return cls(
            dim=manifest["dim"],
            index_kind=manifest["index"],
            nprobe=manifest["nprobe"],
            cv_queries=manifest["cv_queries"],
            voting=None if voting is None else Voting(*voting),
            ids=[str(i) for i in manifest["ids"]],
            labels=manifest["labels"],
            sample_weights=manifest["sample_weights"],
            class_weights={label: float(w) for label, w in manifest["class_weights"]},
            trained_on=manifest["trained_on"],
            index=index,
        )
