"""Opening a file to read: a local path, or any `fsspec <https://filesystem-spec.readthedocs.io>`_ URL.

The readers take a path or a URL and open it here, so a shard on S3 is parsed by the same code
as a file on disk. A path without ``://`` is opened directly; a URL needs fsspec (installed with
Dask: ``pip install 'erasable[distributed]'``), with ``storage_options`` for its filesystem.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
>>> _ = path.write_bytes(b"hello")
>>> with opened(path) as handle:
...     handle.read()
b'hello'
>>> is_url("s3://bucket/a.npz"), is_url(path)
(True, False)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["StorageOptions", "is_url", "opened"]

#: Options of an fsspec filesystem (credentials, endpoint, ...), as ``fsspec.open`` takes them.
StorageOptions = Mapping[str, Any] | None


def is_url(source: str | Path) -> bool:
    """Whether ``source`` is a URL (``scheme://...``) rather than a local path."""
    return isinstance(source, str) and "://" in source


@contextmanager
def opened(source: str | Path, storage_options: StorageOptions = None) -> Iterator[IO[bytes]]:
    """``source`` open for reading bytes."""
    if not is_url(source):
        with open(source, "rb") as handle:
            yield handle
        return
    import fsspec

    with fsspec.open(source, "rb", **(storage_options or {})) as handle:
        yield handle
