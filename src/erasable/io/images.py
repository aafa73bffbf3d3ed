"""Image folders: one subfolder per class, each image checked once.

Items are :class:`~pathlib.Path` objects (an image encoder opens them), labels the class folder
names, ids the paths relative to the folder. A stray file, an empty class or an image that
does not decode is an error naming the file, now rather than halfway through encoding.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> (root / "cat").mkdir()
>>> _ = (root / "cat" / "notes.txt").write_text("x")
>>> read_image_folder(root)
Traceback (most recent call last):
...
erasable.io.errors.InputError: .../cat/notes.txt: not an image file (expected one of ('.png', ...)).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from erasable.io.dataset import Dataset
from erasable.io.errors import InputError

__all__ = ["IMAGE_SUFFIXES", "read_image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def read_image_folder(root: str | Path, *, verify: bool = True) -> Dataset[list[Path]]:
    """Images under ``root/<class>/...``: items are paths, labels the class folder names.

    Hidden files and folders (names starting with ".") are ignored; any other file that
    is not an image, a file outside the class folders, or an empty class folder is an
    error. With ``verify`` each image is decoded once, so a corrupt one is named now
    rather than halfway through encoding.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError("not a folder.", path=root)
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    stray = [p for p in entries if not p.is_dir()]
    if stray:
        raise InputError(f"a file outside the class folders (expected {root}/<class>/<image>).", path=stray[0])
    if not entries:
        raise InputError("no class folders.", path=root)
    items: list[Path] = []
    labels: list[str] = []
    for class_dir in entries:
        files = sorted(
            p
            for p in class_dir.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
        if not files:
            raise InputError("the class folder holds no images.", path=class_dir)
        for path in files:
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise InputError(f"not an image file (expected one of {IMAGE_SUFFIXES}).", path=path)
            if verify:
                _check_image(path)
        items.extend(files)
        labels.extend([class_dir.name] * len(files))
    ids = [p.relative_to(root).as_posix() for p in items]
    return Dataset(items=items, labels=np.array(labels, dtype=str), ids=ids)


def _check_image(path: Path) -> None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"unreadable image: {exc}", path=path) from exc
