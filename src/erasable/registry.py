"""The sample registry: which samples are live, with their ids, subjects, labels and e_q.

The registry is what makes forgetting by id or subject possible (and what a certificate
can be re-derived from): it keeps the quantized embedding of every live sample and nothing
of forgotten ones. The embeddings live in a buffer that grows by doubling (appends cost
O(batch)); a removed row is filled with the last live row and the vacated tail is zeroed
(removals cost O(removed)), so no forgotten vector lingers even in spare capacity. Row
order is therefore not insertion order; nothing depends on it (the statistics are sums,
model files sort by id).

>>> import numpy as np
>>> reg = SampleRegistry(dim=2)
>>> reg.append(["a", "b"], [None, "alice"], [0, 1], np.array([[1, 2], [3, 4]], dtype=np.int16))
>>> reg.rows_for_subjects(["alice"]).tolist()
[1]
>>> reg.remove_rows(reg.rows_for_ids(["a"]))
>>> reg.ids
['b']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

from erasable.moments import Label

__all__ = ["SampleRegistry", "UnknownSampleError"]


class UnknownSampleError(KeyError):
    """A forget request names a sample (or subject) that is not live."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly instead
        return str(self.args[0]) if self.args else ""


class SampleRegistry:
    """Live samples with an index from id to row."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.ids: list[str] = []
        self.subjects: list[str | None] = []
        self.labels: list[Label] = []
        self._buffer = np.zeros((0, dim), dtype=np.int16)  # rows beyond len(self) are zero
        self._row_of: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, sample_id: str) -> bool:
        return sample_id in self._row_of

    @property
    def embeddings(self) -> NDArray[np.int16]:
        """The quantized embeddings of the live samples (read-only view)."""
        view = self._buffer[: len(self.ids)]
        view.setflags(write=False)
        return view

    def check_new_ids(self, ids: Sequence[str]) -> None:
        """Raise ``ValueError`` if ``ids`` repeat or collide with live samples."""
        repeated = sorted(i for i, count in Counter(ids).items() if count > 1)
        if repeated:
            raise ValueError(f"Duplicate ids within the batch: {repeated[:5]}.")
        clashes = [i for i in ids if i in self._row_of]
        if clashes:
            raise ValueError(f"Ids already learned (forget them first to replace them): {clashes[:5]}.")

    def append(
        self,
        ids: Sequence[str],
        subjects: Sequence[str | None],
        labels: Sequence[Label],
        embeddings: NDArray[np.int16],
    ) -> None:
        """Add samples; the caller has validated them (see :meth:`check_new_ids`)."""
        if not len(ids) == len(subjects) == len(labels) == embeddings.shape[0]:
            raise ValueError("ids, subjects, labels and embeddings must have the same length.")
        start, stop = len(self.ids), len(self.ids) + len(ids)
        if stop > self._buffer.shape[0]:
            grown = np.zeros((max(stop, 2 * self._buffer.shape[0]), self.dim), dtype=np.int16)
            grown[:start] = self._buffer[:start]
            self._buffer.fill(0)  # the old buffer is garbage now: leave nothing in it
            self._buffer = grown
        self._buffer[start:stop] = embeddings
        self.ids.extend(ids)
        self.subjects.extend(subjects)
        self.labels.extend(labels)
        self._row_of.update((sample_id, start + i) for i, sample_id in enumerate(ids))

    def rows_for_ids(self, ids: Iterable[str]) -> NDArray[np.intp]:
        """Row numbers of ``ids``; unknown or repeated ids raise."""
        ids = list(ids)
        unknown = [i for i in ids if i not in self._row_of]
        if unknown:
            raise UnknownSampleError(f"Unknown sample ids (never learned or already forgotten): {unknown[:5]}.")
        if len(set(ids)) != len(ids):
            raise ValueError("The same id is named twice in one forget request.")
        return np.array([self._row_of[i] for i in ids], dtype=np.intp)

    def rows_for_subjects(self, subjects: Iterable[str]) -> NDArray[np.intp]:
        """Rows of every live sample of the given subjects; a subject with none raises."""
        wanted = set(subjects)
        rows = [row for row, subject in enumerate(self.subjects) if subject in wanted]
        found = {self.subjects[row] for row in rows}
        missing = sorted(s for s in wanted if s not in found)
        if missing:
            raise UnknownSampleError(f"No live samples for subjects {missing[:5]}.")
        return np.array(rows, dtype=np.intp)

    def rows_for_labels(self, labels: Iterable[Label]) -> NDArray[np.intp]:
        """Rows of every live sample of the given classes; a class with none raises."""
        wanted = set(labels)
        rows = [row for row, label in enumerate(self.labels) if label in wanted]
        missing = sorted(map(str, wanted - {self.labels[row] for row in rows}))
        if missing:
            raise UnknownSampleError(f"No live samples of classes {missing[:5]}.")
        return np.array(rows, dtype=np.intp)

    def rows_for_samples(self, embeddings: NDArray[np.int16], labels: Sequence[Label]) -> NDArray[np.intp]:
        """Rows matching each (embedding, label) pair, one live sample per pair (multiset)."""
        wanted: dict[tuple[bytes, Label], int] = {}
        for row, label in zip(embeddings, labels, strict=True):
            key = (row.tobytes(), label)
            wanted[key] = wanted.get(key, 0) + 1
        rows = []
        for row, (vector, label) in enumerate(zip(self.embeddings, self.labels, strict=True)):
            key = (vector.tobytes(), label)
            if wanted.get(key, 0) > 0:
                wanted[key] -= 1
                rows.append(row)
        missing = sum(wanted.values())
        if missing:
            raise UnknownSampleError(f"{missing} of the given samples are not live in the model.")
        return np.array(sorted(rows), dtype=np.intp)

    def remove_rows(self, rows: NDArray[np.intp]) -> None:
        """Remove rows physically: each hole takes the last live row; the vacated rows are zeroed."""
        for row in sorted(set(rows.tolist()), reverse=True):
            last = len(self.ids) - 1
            del self._row_of[self.ids[row]]
            if row != last:
                self.ids[row], self.subjects[row], self.labels[row] = (
                    self.ids[last],
                    self.subjects[last],
                    self.labels[last],
                )
                self._buffer[row] = self._buffer[last]
                self._row_of[self.ids[row]] = row
            self._buffer[last] = 0
            self.ids.pop()
            self.subjects.pop()
            self.labels.pop()
