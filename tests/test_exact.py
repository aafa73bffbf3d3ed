"""Integer-exact products through float BLAS, checked against int64 arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from erasable.exact import (
    INT16_MAX,
    GramAccumulator,
    OverflowRiskError,
    check_accumulator_range,
    exact_matmul,
    exact_transpose_matmul,
    gram_plus_rows,
    quantize,
)

int16_matrices = arrays(
    np.int64,
    st.tuples(st.integers(1, 40), st.integers(1, 7)),
    elements=st.integers(-INT16_MAX, INT16_MAX),
)


def test_quantize_rounds_to_fixed_point() -> None:
    assert quantize([[0.5, -0.26, 0.0]], scale_bits=4).tolist() == [[8, -4, 0]]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_quantize_rejects_non_finite(bad: float) -> None:
    with pytest.raises(ValueError, match="NaN or infinity"):
        quantize([[0.1, bad]], scale_bits=8)


@given(
    arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 5)), elements=st.floats(-3.9, 3.9)),
    st.sampled_from(["<f4", "<f8", ">f8", "<f2", "matrix", "list"]),
)
@settings(max_examples=60, deadline=None)
@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_quantize_is_round_of_the_scaled_value_whatever_the_input_type(values: np.ndarray, kind: str) -> None:
    """float32 and float64 arrays are read as they are, other inputs converted first: the same int16 array."""
    if kind == "matrix":
        given_as: object = np.asmatrix(values)
    elif kind == "list":
        given_as = values.tolist()
    else:
        values = values.astype(kind).astype(np.float64)  # the values that type holds
        given_as = values.astype(kind)
    result = quantize(given_as, scale_bits=13)  # type: ignore[arg-type]
    assert type(result) is np.ndarray and result.dtype == np.int16
    assert np.array_equal(result, np.rint(values * 2.0**13).astype(np.int16))


def test_quantize_refuses_overflow_unless_saturating() -> None:
    with pytest.raises(OverflowRiskError, match="scale_bits=13"):
        quantize([[4.5]], scale_bits=13)
    assert quantize([[4.5, -9.0]], scale_bits=13, saturate=True).tolist() == [[INT16_MAX, -INT16_MAX]]


@given(int16_matrices)
@settings(max_examples=60, deadline=None)
def test_gram_is_exact(rows: np.ndarray) -> None:
    accumulator = GramAccumulator(rows.shape[1])
    accumulator.add(rows.astype(np.float64))
    assert np.array_equal(accumulator.result(), np.triu(rows.T @ rows))


def test_gram_flushes_before_losing_exactness(rng: np.random.Generator) -> None:
    rows = rng.integers(-INT16_MAX, INT16_MAX, size=(50, 5))
    accumulator = GramAccumulator(5)
    accumulator._rows_per_flush = 7  # force many flushes, including mid-batch
    for start in range(0, 50, 9):
        accumulator.add(rows[start : start + 9].astype(np.float64))
    assert np.array_equal(accumulator.result(), np.triu(rows.T @ rows))


@given(
    st.sampled_from([1, 9, 257]).flatmap(lambda dim: st.tuples(st.just(dim), st.integers(1, dim + 1))),
    st.lists(
        st.tuples(
            st.integers(1, 700), st.sampled_from([1, 63, 127, 255, 256, INT16_MAX]), st.booleans(), st.booleans()
        ),
        min_size=1,
        max_size=6,
    ),
    st.integers(0, 2**31),
)
@settings(max_examples=40, deadline=None)
def test_gram_is_exact_whichever_kernel_sums_it(
    dim_and_band: tuple[int, int], batches: list[tuple[int, int, bool, bool]], seed: int
) -> None:
    """Non-negative rows up to 127 are gathered as int8 and summed by int8 products in an int32 block, rows up
    to 255 in float32 blocks (of 258 rows at 255, 2**24 // 255**2), larger ones in float64.

    Batches of any kind in any order, signed or not, each as float32 or float64, with results read in between:
    each the int64 sum so far, zeros below the diagonal, never changed by later additions. Every row reaches its
    batch's bound, so each block reaches its limit; the int32 block's limit is lowered to 2**20 (65 rows at 127)
    and the gathering buffer to 4 kB (15 rows at width 257), so that both fill many times, mid-batch too;
    bands (TRIANGLE_BLOCK) smaller than the matrix included.
    """
    dim, band = dim_and_band
    rng = np.random.default_rng(seed)
    expected = np.zeros((dim, dim), dtype=np.int64)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("erasable.exact.TRIANGLE_BLOCK", band)
        patch.setattr("erasable.exact.INT32_MAX", 2**20)
        patch.setattr("erasable.exact.STAGED_BYTES", 2**12)
        accumulator = GramAccumulator(dim)
        earlier: list[tuple[np.ndarray, np.ndarray]] = []
        for n, bound, signed, read in batches:
            rows = rng.integers(-bound if signed else 0, bound + 1, size=(n, dim))
            rows[:, 0] = bound  # the worst case of the block bound
            accumulator.add(rows.astype(np.float32 if rng.integers(2) else np.float64))
            expected += rows.T @ rows
            if read:
                result = accumulator.result()
                earlier.append((result, result.copy()))
                assert np.array_equal(result, np.triu(expected))
        assert np.array_equal(accumulator.result(), np.triu(expected))
        assert all(np.array_equal(result, copy) for result, copy in earlier)


def test_gram_refuses_nan_rows() -> None:
    with pytest.raises(OverflowRiskError):
        GramAccumulator(2).add(np.array([[np.nan, 1.0]]))


def test_gram_near_the_float64_limit_is_exact() -> None:
    """Sums of 2**10 products of ±2**15 reach 2**40: beyond int32 and float32, exact here."""
    rows = np.full((1024, 2), -(2**15), dtype=np.int64)
    rows[::2, 1] = 2**15 - 1
    accumulator = GramAccumulator(2)
    accumulator.add(rows.astype(np.float64))
    assert np.array_equal(accumulator.result(), np.triu(rows.T @ rows))


def test_gram_rejects_values_outside_int16() -> None:
    with pytest.raises(OverflowRiskError):
        GramAccumulator(1).add(np.array([[2.0**20]]))


@given(int16_matrices, st.integers(1, 5), st.integers(0, 2**31))
@settings(max_examples=60, deadline=None)
def test_transpose_matmul_is_exact(a: np.ndarray, k: int, seed: int) -> None:
    b = np.random.default_rng(seed).integers(-INT16_MAX, INT16_MAX, size=(a.shape[0], k))
    assert np.array_equal(exact_transpose_matmul(a.astype(np.float64), b.astype(np.float64)), a.T @ b)


@given(st.integers(1, 3000), st.integers(0, 2**31))
@settings(max_examples=20, deadline=None)
def test_float32_class_sums_are_exact(n: int, seed: int) -> None:
    """float32 rows are summed in blocks of 511 rows, each exact below 2**24."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, INT16_MAX + 1, size=(n, 3))
    one_hot = np.eye(2)[rng.integers(0, 2, n)]
    result = exact_transpose_matmul(one_hot, rows.astype(np.float32))
    assert np.array_equal(result, one_hot.T.astype(np.int64) @ rows)


@given(int16_matrices, st.integers(0, 2**31))
@settings(max_examples=60, deadline=None)
def test_projection_is_exact_in_float32_or_float64(a: np.ndarray, seed: int) -> None:
    signs = np.random.default_rng(seed).choice([-1, 1], size=(a.shape[1], 9))
    assert np.array_equal(exact_matmul(a.astype(np.int16), signs.astype(np.float32)), a @ signs)


def test_matmul_refuses_inexact_products() -> None:
    big = np.full((1, 4), 2.0**30)
    with pytest.raises(OverflowRiskError):
        exact_matmul(big, big.T)


def test_accumulator_range_guard() -> None:
    check_accumulator_range(2**32)
    with pytest.raises(OverflowRiskError):
        check_accumulator_range(2**32 + 1)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 13).flatmap(
        lambda dim: st.tuples(
            arrays(np.int64, (dim, dim), elements=st.integers(-(2**40), 2**40)),
            arrays(np.int64, st.tuples(st.integers(1, 9), st.just(dim)), elements=st.integers(-INT16_MAX, INT16_MAX)),
        )
    ),
    st.sampled_from([1, -1]),
    st.integers(1, 5),
)
def test_gram_plus_rows_equals_int64_arithmetic(
    gram_and_rows: tuple[np.ndarray, np.ndarray], sign: int, block: int
) -> None:
    """Band by band (blocks smaller than the matrix included), the result is the int64 triangle, zeros below."""
    gram, rows = gram_and_rows
    upper = np.triu(gram)
    expected = upper + sign * np.triu(rows.T @ rows)
    assert np.array_equal(gram_plus_rows(upper, rows.astype(np.float64), sign, block=block), expected)
