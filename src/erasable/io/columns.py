"""The one column spec: where a file keeps its items, labels, ids and subjects.

The same four names serve every format: the columns of a CSV, TSV, JSONL or Parquet table, the
arrays of an NPZ file, and the siblings ``<stem>.<key>.npy`` of an NPY shard. A name set to
``None`` means the file has no such field: no labels (data to predict), ids generated or
given by the model, no subjects.

>>> columns = Columns(labels="category", ids="id")
>>> columns.named()
['X', 'category', 'id']
>>> columns.suffixed("_test").named()
['X_test', 'category_test', 'id_test']
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Columns"]


@dataclass(frozen=True)
class Columns:
    """Names of the items (vectors or raw inputs), labels, ids and subjects in a file.

    In a CSV of vectors every column but the labels, ids and subjects is a vector component, in
    file order, and ``items`` is not used.
    """

    items: str = "X"
    labels: str | None = "y"
    ids: str | None = None
    subjects: str | None = None

    def named(self) -> list[str]:
        """The names given, items first, each once."""
        return list(dict.fromkeys(c for c in (self.items, self.labels, self.ids, self.subjects) if c is not None))

    def siblings(self) -> list[str]:
        """The names other than the items: what an NPY shard keeps beside its vectors."""
        return [c for c in (self.labels, self.ids, self.subjects) if c is not None]

    def suffixed(self, suffix: str) -> Columns:
        """Every name given, with ``suffix`` appended (NPZ splits: ``X_train``, ``y_train``, ...)."""

        def name(column: str | None) -> str | None:
            return None if column is None else column + suffix

        return Columns(self.items + suffix, name(self.labels), name(self.ids), name(self.subjects))
