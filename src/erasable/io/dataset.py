"""The one result type of the readers: :class:`Dataset`, items with their labels, ids and subjects.

Items are whatever the file holds -- texts, image paths, an array of images or of embedding
vectors -- and the other fields, when present, have one entry per item; the constructor checks it.

>>> data = Dataset(items=["lost card", "hello"], ids=["1", "2"])
>>> len(data), data.labels is None
(2, True)
>>> data.first(1).items
['lost card']
>>> Dataset(items=["a", "b"], ids=["1"])
Traceback (most recent call last):
...
erasable.io.errors.InputError: 2 items but 1 ids.
"""

from __future__ import annotations

from collections.abc import Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from numpy.typing import NDArray

from erasable.io.errors import InputError

__all__ = ["Dataset", "check_lengths"]

Items = TypeVar("Items", bound=Sized)


@dataclass(frozen=True)
class Dataset(Generic[Items]):
    """Items with optional labels (int64 or str array), ids and subjects, all of one length."""

    items: Items
    labels: NDArray[Any] | None = None
    ids: list[str] | None = None
    subjects: list[str | None] | None = None

    def __post_init__(self) -> None:
        check_lengths(len(self.items), "items", labels=self.labels, ids=self.ids, subjects=self.subjects)

    def __len__(self) -> int:
        return len(self.items)

    def first(self, count: int | None) -> Dataset[Items]:
        """The first ``count`` items and their fields; all of them when ``count`` is ``None``."""
        if count is None:
            return self
        labels = None if self.labels is None else self.labels[:count]
        ids = None if self.ids is None else self.ids[:count]
        subjects = None if self.subjects is None else self.subjects[:count]
        return Dataset(self.items[:count], labels, ids, subjects)  # type: ignore[index]


def check_lengths(count: int, noun: str, path: str | Path | None = None, **fields: Sized | None) -> None:
    """Each of ``fields`` given must have ``count`` entries, one per item (``noun``: what the items are)."""
    for name, values in fields.items():
        if values is not None and len(values) != count:
            raise InputError(f"{count} {noun} but {len(values)} {name}.", path=path)
