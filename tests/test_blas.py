"""erasable.blas: products on SciPy's BLAS, for every layout and float type they may be handed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from erasable.blas import matmul, row_gram

LAYOUTS = ("C", "F", "strided")


def laid_out(values: np.ndarray, layout: str) -> np.ndarray:
    if layout == "F":
        return np.asfortranarray(values)
    if layout == "strided":  # neither C- nor Fortran-ordered: every other column of a wider array
        wide = np.zeros((values.shape[0], 2 * values.shape[1]), dtype=values.dtype)
        wide[:, ::2] = values
        return wide[:, ::2]
    return np.ascontiguousarray(values)


@given(
    st.integers(0, 9), st.integers(0, 9), st.integers(0, 9), st.sampled_from(LAYOUTS), st.sampled_from(LAYOUTS),
    st.sampled_from([np.float32, np.float64]), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**32 - 1),
)  # fmt: skip
@settings(max_examples=200, deadline=None)
def test_matmul_is_the_exact_product_in_c_order(
    m: int, k: int, n: int, layout_a: str, layout_b: str, type_a: type, type_b: type, seed: int
) -> None:
    """Integer-valued operands (exact in either type): the result is numpy's product, bit for bit, C-ordered."""
    rng = np.random.default_rng(seed)
    a = laid_out(rng.integers(-64, 64, (m, k)).astype(type_a), layout_a)
    b = laid_out(rng.integers(-64, 64, (k, n)).astype(type_b), layout_b)
    product = matmul(a, b)
    assert product.dtype == np.result_type(a, b) and product.flags.c_contiguous
    assert np.array_equal(product, a.astype(np.float64) @ b.astype(np.float64))


def test_matmul_refuses_shapes_that_do_not_chain() -> None:
    with pytest.raises(ValueError, match=r"Cannot multiply shapes \(2, 3\) and \(2, 3\)"):
        matmul(np.ones((2, 3)), np.ones((2, 3)))


@given(st.integers(0, 9), st.integers(0, 9), st.sampled_from(LAYOUTS), st.integers(0, 2**32 - 1))
@settings(max_examples=100, deadline=None)
def test_row_gram_is_the_full_symmetric_product(n: int, k: int, layout: str, seed: int) -> None:
    rows = laid_out(np.random.default_rng(seed).integers(-64, 64, (n, k)).astype(np.float64), layout)
    gram = row_gram(rows)
    assert gram.flags.c_contiguous and np.array_equal(gram, rows @ rows.T)
