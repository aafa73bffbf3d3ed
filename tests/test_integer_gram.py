"""erasable.integer_gram: exact int32 Gram matrices of 7-bit rows by ONNX Runtime's integer kernels."""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import runpy
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from erasable.exact import GramAccumulator
from erasable.integer_gram import BAND, MAX_LEVEL, MAX_ROWS, _threads, available, integer_gram, limit_threads

ROOT = Path(__file__).resolve().parents[1]


@given(st.integers(0, 300), st.integers(1, 70), st.integers(0, MAX_LEVEL), st.integers(0, 2**32 - 1))
@settings(max_examples=80, deadline=None)
def test_integer_gram_is_the_upper_triangle_of_the_exact_product(n: int, dim: int, top: int, seed: int) -> None:
    rows = np.random.default_rng(seed).integers(0, top + 1, size=(n, dim)).astype(np.int8)
    gram = integer_gram(rows)
    assert gram.dtype == np.int32 and gram.shape == (dim, dim) and gram.flags.c_contiguous
    assert np.array_equal(gram, np.triu(rows.astype(np.int64).T @ rows.astype(np.int64)))


@pytest.mark.parametrize("dim", [BAND, BAND + 1, 2 * BAND + 76])
def test_a_gram_of_several_bands_is_the_upper_triangle_of_the_exact_product(dim: int) -> None:
    rows = np.random.default_rng(dim).integers(0, MAX_LEVEL + 1, size=(300, dim)).astype(np.int8)
    exact = rows.astype(np.int64).T @ rows.astype(np.int64)
    assert np.array_equal(integer_gram(rows), np.triu(exact))


def test_the_most_rows_at_the_top_level_stay_exact_in_int32() -> None:
    rows = np.full((MAX_ROWS, 2), MAX_LEVEL, dtype=np.int8)
    assert integer_gram(rows)[0, 1] == MAX_ROWS * MAX_LEVEL**2 <= 2**31 - 1
    with pytest.raises(ValueError, match="At most"):
        integer_gram(np.zeros((MAX_ROWS + 1, 1), dtype=np.int8))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (np.array([[1, -1]], dtype=np.int8), "non-negative"),
        (np.array([[1, 2]], dtype=np.int16), "int8"),
        (np.array([1, 2], dtype=np.int8), "2-D"),
    ],
)
def test_integer_gram_refuses_what_it_cannot_sum_exactly(rows: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        integer_gram(rows)


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="needs the onnx package (the dev extra)")
def test_the_shipped_graph_is_what_its_script_writes() -> None:
    import onnx

    script = runpy.run_path(str(ROOT / "scripts" / "make_integer_gram_model.py"))
    shipped = onnx.load_from_string((ROOT / "src" / "erasable" / "integer_gram.onnx").read_bytes())
    onnx.checker.check_model(shipped)
    assert shipped == onnx.load_from_string(script["integer_gram_model"]())


def test_a_thread_limit_gives_the_same_gram_and_refuses_nonsense() -> None:
    rows = np.random.default_rng(1).integers(0, MAX_LEVEL + 1, size=(500, 40)).astype(np.int8)
    expected = integer_gram(rows)
    try:
        limit_threads(1)
        assert np.array_equal(integer_gram(rows), expected)
        with pytest.raises(ValueError, match="positive"):
            limit_threads(0)
    finally:
        limit_threads(None)


def test_a_child_forked_after_the_first_gram_sums_the_same_integers_without_onnx_runtime() -> None:
    """ONNX Runtime is not fork-safe: a child forked after its parent used it (a multiprocessing pool, a
    preloading server) refuses it with a clear error, and its Grams take the float path: the same integers."""
    rows = np.random.default_rng(2).integers(0, MAX_LEVEL + 1, size=(3000, 200)).astype(np.int8)
    expected = integer_gram(rows)
    context = multiprocessing.get_context("fork")
    answers = context.Queue()
    child = context.Process(target=_in_child, args=(rows, answers))
    child.start()
    try:
        usable, refusal, gram = answers.get(timeout=120)  # before join: the child exits once its answer is read
    finally:
        child.join(timeout=30)
        if child.exitcode is None:
            child.kill()
    assert child.exitcode == 0, "the forked child hung or failed"
    assert not usable and "forked" in refusal
    assert np.array_equal(gram, np.triu(expected))


def _in_child(rows: np.ndarray, answers: multiprocessing.Queue) -> None:
    try:
        integer_gram(rows)
        refusal = ""
    except RuntimeError as error:
        refusal = str(error)
    accumulator = GramAccumulator(rows.shape[1])
    accumulator.add(rows.astype(np.float32))
    answers.put((available(), refusal, accumulator.result()))


def test_threads_follow_the_limit_then_omp_num_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as Dask sets it for its workers
    assert _threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert _threads() == len(os.sched_getaffinity(0))
    try:
        limit_threads(3)
        assert _threads() == 3
    finally:
        limit_threads(None)


def test_switched_off_by_the_environment_the_grams_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = np.random.default_rng(3).integers(0, 64, size=(400, 50)).astype(np.float32)
    on = GramAccumulator(50)
    on.add(rows)
    expected = on.result()
    monkeypatch.setenv("ERASABLE_INTEGER_GRAM", "0")
    assert not available()
    with pytest.raises(RuntimeError, match="switched off"):
        integer_gram(rows.astype(np.int8))
    switched_off = GramAccumulator(50)
    switched_off.add(rows)
    assert switched_off._staged is None  # summed on the float path
    assert np.array_equal(switched_off.result(), expected)
