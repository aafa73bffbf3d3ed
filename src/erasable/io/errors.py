"""The one error of the readers: :class:`InputError`, naming the file and, where there is one, the row.

Every reader of :mod:`erasable.io` raises it for a file, a row or a value it cannot use, so a caller
catches one type (a :class:`ValueError`, as the command line and the service expect) and a person
reads where to look. The file, the array key, the row (counted from 1) and the physical line of a
text file are kept as attributes too.

>>> error = InputError("value nan is not finite", path="v.csv", row=2, line=3, column="'b'")
>>> str(error)
"v.csv, row 2 (line 3), column 'b': value nan is not finite"
>>> error.path, error.row
('v.csv', 2)
>>> str(InputError("no array 'y'", path="d.npz", key="labels"))
"d.npz['labels']: no array 'y'"
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["InputError"]


class InputError(ValueError):
    """A file, row or value that cannot be read; the message says where.

    ``row`` counts data rows from 1; ``line`` is the physical line of a text file (the header is
    line 1); ``key`` the array of an NPZ file; ``column`` the column, as it should be printed.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        key: str | None = None,
        row: int | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.key, self.row, self.line, self.column = key, row, line, column
        where = self.where()
        super().__init__(f"{where}: {message}" if where else message)

    def where(self) -> str:
        """The location as printed: ``file['key'], row 2 (line 3), column 'b'``; empty when unknown."""
        parts = [self.path or ""]
        if self.key is not None:
            parts[0] += f"[{self.key!r}]"
        if self.row is not None:
            parts.append(f"row {self.row}" + ("" if self.line is None else f" (line {self.line})"))
        elif self.line is not None:
            parts.append(f"line {self.line}")
        if self.column is not None:
            parts.append(f"column {self.column}")
        return ", ".join(p for p in parts if p)
