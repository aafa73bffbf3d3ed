"""Dataset readers on small real files written here, each with a malformed row or file that
must be reported with its location, plus Fashion-MNIST from the shared data."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from erasable.io import (
    Dataset,
    InputError,
    read_dataset,
    read_idx,
    read_idx_dataset,
    read_image_folder,
    read_mnist_folder,
    read_npy,
    read_npz,
    read_table,
)
from tests.conftest import SHARED_DATA

FASHION_MNIST = SHARED_DATA / "fashion-mnist"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- CSV / TSV ----------------------------------------------------------------------------------


def test_csv_reads_every_column(tmp_path: Path) -> None:
    path = write(
        tmp_path / "q.csv",
        'id,text,category,user\n1,"lost my card, help",card,alice\n2,"two\nlines",greeting,\n\n3,hi,greeting,bob\n',
    )
    data = read_table(path, label_column="category", id_column="id", subject_column="user")
    assert data.items == ["lost my card, help", "two\nlines", "hi"]
    assert data.labels is not None and data.labels.tolist() == ["card", "greeting", "greeting"]
    assert data.ids == ["1", "2", "3"]
    assert data.subjects == ["alice", None, "bob"]
    assert len(data) == 3


def test_csv_unlabelled_and_tsv(tmp_path: Path) -> None:
    data = read_table(write(tmp_path / "p.tsv", "text\tx\nhello, world\t1\n"), label_column=None)
    assert data.items == ["hello, world"] and data.labels is None and data.ids is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("text,label\na,x\nb,y,extra\n", r"q\.csv, line 3: 3 fields, but the header has 2"),
        ("text,label\na,x\n,y\n", r"line 3: missing value in column 'text'"),
        ("text,label\na,x\nb,\n", r"line 3: missing value in column 'label'"),
        ("text,category\na,x\n", r"no column 'label'; the columns are \['text', 'category'\]"),
        ('text,label\n"a,x\n', r"line \d+: malformed CSV"),
        ("", "empty file"),
        ("text,text\na,b\n", "repeats the columns"),
    ],
)
def test_csv_errors_name_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_table(write(tmp_path / "q.csv", content))


def test_csv_duplicate_id_and_bad_encoding(tmp_path: Path) -> None:
    path = write(tmp_path / "q.csv", "id,text,label\n7,a,x\n8,b,x\n7,c,y\n")
    with pytest.raises(InputError, match=r"line 4: duplicate id '7' \(first at .*line 2\)"):
        read_table(path, id_column="id")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"text,label\ncaf\xe9,x\n")
    with pytest.raises(InputError, match="not valid UTF-8"):
        read_table(latin)


# -- JSONL ------------------------------------------------------------------------------------


def test_jsonl_reads_integer_labels(tmp_path: Path) -> None:
    lines = [{"text": "a", "label": 2, "id": 10}, {"text": "b", "label": 0, "id": 11, "subject": None}]
    path = write(tmp_path / "d.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    data = read_table(path, id_column="id", subject_column="subject")
    assert data.labels is not None and data.labels.dtype == np.int64 and data.labels.tolist() == [2, 0]
    assert data.ids == ["10", "11"] and data.subjects == [None, None]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"text": "a", "label": "x"}', '{"text": "b", "label": '], r"d\.jsonl, line 2: invalid JSON"),
        (['{"text": "a", "label": "x"}', '["b", "x"]'], "line 2: expected a JSON object, got list"),
        (['{"text": "a", "label": "x"}', '{"text": "b", "label": 1}'], "line 2: labels mix integers and strings"),
        (['{"text": 5, "label": "x"}'], "line 1: column 'text' must hold text, got int"),
        (['{"text": "a", "label": 1.5}'], "line 1: column 'label' must hold a string or an integer"),
        (['{"text": "a"}'], "line 1: missing value in column 'label'"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_table(write(tmp_path / "d.jsonl", "\n".join(lines) + "\n"))


# -- Parquet ------------------------------------------------------------------------------------


def test_parquet_reads_and_reports_null_rows(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow", reason="Parquet needs pyarrow (extra 'text')")
    import pyarrow.parquet as pq

    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"text": ["a", "b"], "label": ["x", "y"], "sid": [5, 6]}), good)
    data = read_table(good, id_column="sid")
    assert data.items == ["a", "b"] and data.ids == ["5", "6"]
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"text": ["a", None], "label": ["x", "y"]}), bad)
    with pytest.raises(InputError, match=r"bad\.parquet, row 2: missing value in column 'text'"):
        read_table(bad)
    with pytest.raises(InputError, match="no column 'sid'"):
        read_table(bad, id_column="sid")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 truncated")
    with pytest.raises(InputError, match=r"broken\.parquet: cannot read Parquet"):
        read_table(broken)


@pytest.mark.parametrize(
    "text",
    [
        "a,b,label,id,user\n0.5,-1,cat ,q1,u1\n\n2,3e-2, dog,q2,\n",  # cells stripped, a blank line, no subject
        "x\ty\tlabel\n1\t2\t7\n3\t4\t8\n",  # TSV, integer labels
        "a,b,label,id,user\n0.5,x,cat,q1,u1\n",  # not a number: the row reader's error
        "a,b,label,id,user\n0.5,1,cat,q1,u1\n0.5,nan,cat,q2,u1\n",  # not finite
        "a,b,label,id,user\n0.5,1,cat,q1,u1\n0.5,1,,q2,u1\n",  # a missing label
        "a,b,label,id,user\n0.5,1,cat,q1,u1\n0.5,1,dog,q1,u1\n",  # a repeated id
        "a,label\n0x10,x\n2,y\n",  # not a decimal number (pyarrow's inference reads 16)
        "\na,b,label\n1,2,x\n3,4,y\n",  # a blank first line (pyarrow skips it)
    ],
)
def test_a_csv_of_vectors_parsed_whole_reads_as_row_by_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    """pyarrow parses a regular file whole; the result, or the error, is the row reader's."""
    pytest.importorskip("pyarrow", reason="the whole-file parse needs pyarrow (extra 'text')")
    from erasable.io import Columns, tables

    path = tmp_path / ("v.tsv" if "\t" in text else "v.csv")
    path.write_text(text)
    columns = Columns(labels="label", ids="id" if "id" in text else None, subjects="user" if "user" in text else None)

    def read() -> object:
        try:
            data = tables.table_vectors(path, columns)
        except InputError as error:
            return str(error)
        return data.items.tolist(), data.labels.tolist(), data.ids, data.subjects

    whole = read()
    monkeypatch.setattr(tables, "_csv_vectors", lambda *args: None)
    assert whole == read()


def test_parquet_vectors_are_read_whole_and_bad_rows_still_located(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow", reason="Parquet needs pyarrow (extra 'text')")
    import pyarrow.parquet as pq

    from erasable.io import Columns
    from erasable.io.tables import table_vectors

    vectors = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"v": pa.array(list(vectors)), "label": [1, 2, 1, 2], "id": ["a", "b", "c", "d"]}), good)
    data = table_vectors(good, Columns(items="v", labels="label", ids="id"))
    np.testing.assert_array_equal(data.items, vectors.astype(np.float64))  # float32 values, exactly
    assert data.labels.tolist() == [1, 2, 1, 2] and data.ids == ["a", "b", "c", "d"]
    for name, column, message in (
        ("ragged", [[0.1, 0.2], [0.3]], "differ in length"),
        ("null", [[0.1, 0.2], None], r"row 2: missing value in column 'v'"),
        ("nan", [[0.1, 0.2], [float("nan"), 0.0]], r"row 2.*not finite"),
    ):
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({"v": column, "label": [1, 2]}), path)
        with pytest.raises(InputError, match=message):
            table_vectors(path, Columns(items="v", labels="label"))


# -- image folders ----------------------------------------------------------------------------


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    image_module = pytest.importorskip("PIL.Image", reason="image folders need pillow (extra 'image')")
    root = tmp_path / "images"
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(2):
            pixels = np.full((6, 5, 3), 40 * i, dtype=np.uint8)
            image_module.fromarray(pixels).save(root / label / f"{i}.png")
    (root / "cat" / ".DS_Store").write_bytes(b"ignored")
    return root


def test_image_folder_lists_classes_and_ids(image_folder: Path) -> None:
    data = read_image_folder(image_folder)
    assert data.ids == ["cat/0.png", "cat/1.png", "dog/0.png", "dog/1.png"]
    assert data.labels is not None and data.labels.tolist() == ["cat", "cat", "dog", "dog"]
    assert all(isinstance(item, Path) and item.is_file() for item in data.items)


def test_image_folder_names_corrupt_and_stray_files(image_folder: Path) -> None:
    (image_folder / "dog" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(InputError, match=r"dog/2\.png: unreadable image"):
        read_image_folder(image_folder)
    assert len(read_image_folder(image_folder, verify=False)) == 5
    (image_folder / "dog" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"notes\.txt: not an image file"):
        read_image_folder(image_folder, verify=False)
    (image_folder / "loose.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"loose\.png: a file outside the class folders"):
        read_image_folder(image_folder)


# -- IDX ----------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    big_endian = array.astype(array.dtype.newbyteorder(">"))
    return bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + big_endian.tobytes()


def test_idx_plain_and_gzip(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "x-idx3-ubyte").write_bytes(idx_bytes(images))
    (tmp_path / "y-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.array([1, 0], np.uint8))))
    data = read_idx_dataset(tmp_path / "x-idx3-ubyte", tmp_path / "y-idx1-ubyte.gz")
    np.testing.assert_array_equal(data.items, images)
    assert data.labels is not None and data.labels.tolist() == [1, 0] and data.labels.dtype == np.int64
    floats = np.array([[1.5, -2.0]], dtype=np.float32)
    (tmp_path / "f.idx").write_bytes(idx_bytes(floats, 0x0D))
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx"), floats)


def test_idx_errors_name_the_file(tmp_path: Path) -> None:
    whole = idx_bytes(np.zeros((2, 3, 3), np.uint8))
    (tmp_path / "cut-idx3-ubyte").write_bytes(whole[:-4])
    with pytest.raises(InputError, match=r"cut-idx3-ubyte: 14 data bytes, but shape \(2, 3, 3\) needs 18"):
        read_idx(tmp_path / "cut-idx3-ubyte")
    (tmp_path / "bad-magic").write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(InputError, match="bad-magic: not an IDX file"):
        read_idx(tmp_path / "bad-magic")
    (tmp_path / "bad.gz").write_bytes(gzip.compress(whole)[:-10])
    with pytest.raises(InputError, match=r"bad\.gz: corrupt gzip data"):
        read_idx(tmp_path / "bad.gz")
    (tmp_path / "y-idx1-ubyte").write_bytes(idx_bytes(np.array([1, 2, 3], np.uint8)))
    (tmp_path / "x-idx3-ubyte").write_bytes(whole)
    with pytest.raises(InputError, match=r"holds 2 items but .* holds 3 labels"):
        read_idx_dataset(tmp_path / "x-idx3-ubyte", tmp_path / "y-idx1-ubyte")


@pytest.mark.shared_data
@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason=f"shared data not found at {FASHION_MNIST}")
def test_fashion_mnist_from_shared_data() -> None:
    test = read_mnist_folder(FASHION_MNIST, split="test")
    assert isinstance(test.items, np.ndarray)
    assert test.items.shape == (10_000, 28, 28) and test.items.dtype == np.uint8
    assert test.labels is not None and np.bincount(test.labels).tolist() == [1000] * 10


# -- NPY / NPZ ----------------------------------------------------------------------------------


def test_npz_with_ids_and_subjects(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    x = np.eye(3, dtype=np.float32)
    np.savez(path, X=x, y=np.array(["a", "b", "a"]), ids=np.arange(3), who=np.array(["u1", "", "u2"]))
    data = read_npz(path, ids_key="ids", subjects_key="who")
    np.testing.assert_array_equal(data.items, x)
    assert data.ids == ["0", "1", "2"] and data.subjects == ["u1", None, "u2"]
    assert read_npz(path, labels_key=None).labels is None


def test_npz_errors_name_file_and_array(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, X=np.zeros((3, 2)), y=np.array([0, 1]), obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match=r"d\.npz: 3 items but 2 labels"):
        read_npz(path)
    with pytest.raises(InputError, match=r"no array 'labels'; it holds \['X', 'y', 'obj'\]"):
        read_npz(path, labels_key="labels")
    with pytest.raises(InputError, match=r"d\.npz\['obj'\]: .*never loads"):
        read_npz(path, items_key="obj", labels_key=None)
    np.savez(path, X=np.zeros((2, 2)), y=np.array([0, 1]), ids=np.array(["a", "a"]))
    with pytest.raises(InputError, match=r"\['ids'\]: duplicate id 'a' at positions 0 and 1"):
        read_npz(path, ids_key="ids")
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[:50])
    with pytest.raises(InputError, match=r"cut\.npz: cannot read"):
        read_npz(tmp_path / "cut.npz")


def test_npy_items_and_labels(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.ones((2, 4)))
    np.save(tmp_path / "y.npy", np.array([3, 4]))
    data = read_npy(tmp_path / "x.npy", tmp_path / "y.npy")
    assert data.labels is not None and data.labels.tolist() == [3, 4]
    np.save(tmp_path / "y.npy", np.array([0.5, 1.5]))
    with pytest.raises(InputError, match=r"y\.npy: labels must be integers or strings"):
        read_npy(tmp_path / "x.npy", tmp_path / "y.npy")
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(InputError, match=r"bad\.npy"):
        read_npy(tmp_path / "bad.npy")


# -- dispatch -----------------------------------------------------------------------------------


def test_read_dataset_picks_the_reader(tmp_path: Path) -> None:
    csv_data = read_dataset(write(tmp_path / "a.csv", "body,label\nhi,x\n"), text_column="body")
    assert isinstance(csv_data, Dataset) and csv_data.items == ["hi"]
    np.save(tmp_path / "v.npy", np.zeros((2, 3)))
    assert len(read_dataset(tmp_path / "v.npy")) == 2
    (tmp_path / "t-idx1-ubyte").write_bytes(idx_bytes(np.array([4, 5], np.uint8)))
    assert list(read_dataset(tmp_path / "t-idx1-ubyte").items) == [4, 5]
    with pytest.raises(InputError, match="unknown format"):
        read_dataset(write(tmp_path / "notes.txt", "x"))


def test_dataset_lengths_must_agree() -> None:
    with pytest.raises(InputError, match="2 items but 1 ids"):
        Dataset(items=["a", "b"], ids=["1"])
