"""One BLAS for the default model's large products: SciPy's, the library erasable's LAPACK calls use.

NumPy and SciPy wheels each ship their own OpenBLAS, each with its own pool of threads.
After a call, a pool's threads spin for a while before they sleep; a call into the other
library meanwhile finds the cores taken. On 2 cores, a 49 x 77 ``dormqr`` of GCV (0.1 ms
alone) took 52 ms right after NumPy's product of the test set's features; with every large
product on SciPy's pool, fitting 100 BANKING77 samples and predicting its test set took
0.14 s instead of 0.25 s, and a fit of all of it with a first prediction 2.9 s instead of
3.4 s (medians of five alternated runs on a busy machine). So the large
products of the default model -- the exact products of learning, the features, the ridge
head's solves, updates and scores -- go through :func:`matmul` and :func:`row_gram`, on SciPy's
pool, the one the factorizations need. (The optional Gaussian and prototype heads still use
NumPy's ``@``.)

>>> import numpy as np
>>> matmul(np.array([[1.0, 2.0]]), np.array([[3.0], [4.0]]))
array([[11.]])
>>> matmul(np.ones((2, 3), dtype=np.float32), np.ones((3, 1), dtype=np.float32)).dtype
dtype('float32')
"""

from __future__ import annotations

from typing import Any, overload

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import blas

__all__ = ["matmul", "row_gram"]


@overload
def matmul(a: NDArray[np.float64], b: NDArray[Any]) -> NDArray[np.float64]: ...
@overload
def matmul(a: NDArray[Any], b: NDArray[np.float64]) -> NDArray[np.float64]: ...
@overload
def matmul(a: NDArray[Any], b: NDArray[Any]) -> NDArray[np.floating]: ...


def matmul(a: NDArray[Any], b: NDArray[Any]) -> NDArray[np.floating]:
    """``a @ b`` as a C-ordered array, by SciPy's ``sgemm`` (both float32) or ``dgemm`` (otherwise).

    Formed as the transpose of the Fortran-ordered ``b.T @ a.T``: a C- or Fortran-ordered
    operand (a transposed view, say) is passed as it lies, with BLAS's transpose flag where
    needed; only an operand that is neither is copied.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"Cannot multiply shapes {a.shape} and {b.shape}.")
    single = a.dtype == b.dtype == np.float32
    if 0 in (*a.shape, b.shape[1]):
        return np.zeros((a.shape[0], b.shape[1]), dtype=np.float32 if single else np.float64)
    left, trans_left = _transposed(b, single)
    if a.shape[0] == 1:  # one row (a request's input): gemv, ten times faster than SciPy's gemm at 1 x 384 x 4096
        row = a[0] if single else a[0].astype(np.float64, copy=False)
        return np.asarray((blas.sgemv if single else blas.dgemv)(1.0, left, row, trans=trans_left))[None, :]
    gemm = blas.sgemm if single else blas.dgemm
    right, trans_right = _transposed(a, single)
    return np.asarray(gemm(1.0, left, right, trans_a=trans_left, trans_b=trans_right).T)


def _transposed(m: NDArray[np.floating], single: bool) -> tuple[NDArray[np.floating], int]:
    """A Fortran-ordered array and the flag that makes BLAS read it as ``m.T``."""
    m = m if single else m.astype(np.float64, copy=False)
    if m.flags.c_contiguous:
        return m.T, 0
    if m.flags.f_contiguous:
        return m, 1
    return np.ascontiguousarray(m).T, 0


def row_gram(a: NDArray[np.float64]) -> NDArray[np.float64]:
    """``a @ a.T`` (full, symmetric, C-ordered) by SciPy's ``dsyrk``: half the work of a product.

    >>> row_gram(np.array([[1.0, 2.0], [3.0, 4.0]]))
    array([[ 5., 11.],
           [11., 25.]])
    """
    rows = np.asarray(a, dtype=np.float64)
    if rows.ndim != 2:
        raise ValueError(f"Expected a 2-d array, got shape {rows.shape}.")
    if 0 in rows.shape:
        return np.zeros((rows.shape[0], rows.shape[0]))
    # rows.T is Fortran-ordered when rows is C-ordered: trans=1 forms rows @ rows.T from it without a copy.
    operand, trans = (rows.T, 1) if rows.flags.c_contiguous else (np.asfortranarray(rows), 0)
    lower = blas.dsyrk(1.0, operand, trans=trans, lower=1)  # Fortran-ordered, its upper triangle unset
    full = np.tril(lower)
    full += np.tril(lower, -1).T
    return np.ascontiguousarray(full)
