"""One BLAS for every large product: SciPy's, the library erasable's LAPACK calls use.

NumPy and SciPy wheels each ship their own OpenBLAS, each with its own pool of threads.
After a call, a pool's threads spin for a while before they sleep; a call into the other
library meanwhile finds the cores taken. On 2 cores, a 49 x 77 ``dormqr`` of GCV (0.1 ms
alone) took 52 ms right after NumPy's product of the test set's features; with every large
product on SciPy's pool, fitting 100 BANKING77 samples and predicting its test set took
0.14 s instead of 0.25 s, and a fit of all of it with a first prediction 2.9 s instead of
3.4 s (medians of five alternated runs on a busy machine). So every product
that may be large goes through :func:`matmul`, on SciPy's pool, the one the factorizations
need; NumPy's ``@`` is left to small arrays, which OpenBLAS runs on the calling thread.

>>> import numpy as np
>>> matmul(np.array([[1.0, 2.0]]), np.array([[3.0], [4.0]]))
array([[11.]])
>>> matmul(np.ones((2, 3), dtype=np.float32), np.ones((3, 1), dtype=np.float32)).dtype
dtype('float32')
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import blas

__all__ = ["matmul"]


def matmul(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.floating]:
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
    gemm = blas.sgemm if single else blas.dgemm
    (left, trans_left), (right, trans_right) = _transposed(b, single), _transposed(a, single)
    return np.asarray(gemm(1.0, left, right, trans_a=trans_left, trans_b=trans_right).T)


def _transposed(m: NDArray[np.floating], single: bool) -> tuple[NDArray[np.floating], int]:
    """A Fortran-ordered array and the flag that makes BLAS read it as ``m.T``."""
    m = m if single else m.astype(np.float64, copy=False)
    if m.flags.c_contiguous:
        return m.T, 0
    if m.flags.f_contiguous:
        return m, 1
    return np.ascontiguousarray(m).T, 0
