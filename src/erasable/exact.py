"""Integer-exact arithmetic through floating-point BLAS (and, for 7-bit Grams, int8 kernels).

Everything erasable learns is a sum of integer products. Summing them in int64 by hand
would be slow; summing them in floating point is fast but, in general, order dependent.
The way out: when every operand is an integer and every partial sum stays below the
width of the floating-point mantissa (2**53 for float64, 2**24 for float32), the BLAS
result is *exact* -- the same bits on every machine, for every blocking and every order
of summation. This module keeps that promise by bounding the operands (int16 after
quantization), chunking the reductions so partial sums never reach the mantissa limit,
and flushing each chunk into an int64 accumulator.

>>> import numpy as np
>>> q = quantize(np.array([[0.5, -0.25]]), scale_bits=4)
>>> q
array([[ 8, -4]], dtype=int16)
>>> gram = GramAccumulator(2)
>>> gram.add(q.astype(np.float64))
>>> gram.result()
array([[ 64, -32],
       [  0,  16]])
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.linalg import blas

from erasable import integer_gram
from erasable.blas import matmul
from erasable.integer_gram import INT32_MAX

INT16_MAX = 2**15 - 1
FLOAT64_EXACT = 2**53
FLOAT32_EXACT = 2**24
INT64_SAFE = 2**62
#: Fewest rows per float32 block for which exact float32 products beat float64 ones.
MIN_FLOAT32_BLOCK = 256
#: Rows of the bands in which a triangle is copied (only the band's square crosses the diagonal).
TRIANGLE_BLOCK = 256
#: Bytes of 7-bit rows gathered before their Gram is formed in one call (16,384 rows at width 4096): each call
#: writes a whole dim x dim int32 matrix, so fewer, larger calls.
STAGED_BYTES = 2**26

__all__ = [
    "FLOAT64_EXACT",
    "INT16_MAX",
    "GramAccumulator",
    "OverflowRiskError",
    "check_accumulator_range",
    "clipped_rows",
    "clipping_message",
    "exact_matmul",
    "exact_transpose_matmul",
    "gram_plus_rows",
    "max_abs",
    "quantize",
    "single_pass_bound",
]


class OverflowRiskError(ValueError):
    """An exact computation would leave the range where it is exact."""


def quantize(x: ArrayLike, scale_bits: int, *, saturate: bool = False) -> NDArray[np.int16]:
    """Fixed-point quantize ``x`` to int16: ``round(x * 2**scale_bits)``.

    Values that do not fit in int16 raise :class:`OverflowRiskError` (learning from a silently
    clipped embedding would corrupt the statistics), unless ``saturate=True``, which clips them
    to the int16 range -- the right choice at prediction time, where nothing is stored.

    >>> quantize([[1.0, -0.5]], scale_bits=3)
    array([[ 8, -4]], dtype=int16)
    >>> quantize([[9.0]], scale_bits=12, saturate=True)
    array([[32767]], dtype=int16)
    """
    floats = type(x) is np.ndarray and x.dtype in (np.float32, np.float64)  # not a subclass (np.matrix)
    values = x if floats else np.asarray(x, dtype=np.float64)
    # One float64 temporary, worked in place (the scaling is exact: a power of two). NaN and infinity show in
    # its extremes, which the range check reads anyway; only then are the inputs themselves looked at.
    scaled = np.multiply(values, float(2**scale_bits), dtype=np.float64)
    np.rint(scaled, out=scaled)
    low, high = (float(scaled.min()), float(scaled.max())) if scaled.size else (0.0, 0.0)
    if not (math.isfinite(low) and math.isfinite(high)) and not np.isfinite(values).all():
        raise ValueError("Input contains NaN or infinity; embeddings must be finite.")
    if saturate:
        np.clip(scaled, -INT16_MAX, INT16_MAX, out=scaled)
    elif max(-low, high) > INT16_MAX:
        largest = float(np.abs(values).max())
        # Accepted iff |rint(x * 2**s)| <= INT16_MAX, i.e. |x| < (INT16_MAX + 0.5) / 2**s (a tie rounds to even:
        # 32768, refused), a bound a float shows exactly; so the message and the check agree at the edge.
        raise OverflowRiskError(
            f"Input values reach {largest!r} but scale_bits={scale_bits} represents only "
            f"|x| < {(INT16_MAX + 0.5) / 2**scale_bits!r}. Normalize the embeddings or lower scale_bits."
        )
    return scaled.astype(np.int16)


def clipped_rows(x: ArrayLike, scale_bits: int) -> NDArray[np.bool_]:
    """Which rows of ``x`` hold a value that ``quantize(x, scale_bits, saturate=True)`` clips.

    >>> clipped_rows([[1.0, -0.5], [0.0, -9.0]], scale_bits=12).tolist()
    [False, True]
    """
    values = np.asarray(x, dtype=np.float64)
    return np.abs(np.rint(values * float(2**scale_bits))).max(axis=-1, initial=0) > INT16_MAX


def clipping_message(clipped: int, total: int, scale_bits: int) -> str:
    """The warning for ``clipped`` of ``total`` inputs clipped at prediction time (library, CLI and API say this).

    >>> clipping_message(3, 10, 13)  # doctest: +ELLIPSIS
    '3 of 10 inputs exceed the range |x| <= 4 of scale_bits=13 and were clipped: ... the training data was.'
    """
    return (
        f"{clipped} of {total} inputs exceed the range |x| <= {INT16_MAX / 2**scale_bits:.4g} of "
        f"scale_bits={scale_bits} and were clipped: predictions on them are unreliable. Scale the inputs "
        "as the training data was."
    )


def max_abs(a: NDArray[np.number]) -> float:
    """``max |a|`` without the temporary of ``np.abs`` (0 for an empty array)."""
    return max(float(a.max()), -float(a.min())) if a.size else 0.0


def _rows_per_exact_chunk(bound_a: float, bound_b: float) -> int:
    """How many rows of products bounded by ``bound_a * bound_b`` sum exactly in float64."""
    per_row = max(bound_a * bound_b, 1.0)
    return max(1, int((FLOAT64_EXACT - 1) // per_row))


def exact_transpose_matmul(
    a: NDArray[np.floating], b: NDArray[np.floating], bound_b: float | None = None
) -> NDArray[np.int64]:
    """Exact ``a.T @ b`` for integer-valued float arrays, returned as int64.

    The rows are split into chunks whose partial sums provably stay below 2**53.
    ``bound_b``, when the caller already knows ``max |b|``, saves a pass over ``b``.

    >>> a = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> exact_transpose_matmul(a, np.eye(2))
    array([[1, 3],
           [2, 4]])
    """
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"Row counts differ: {a.shape[0]} and {b.shape[0]}.")
    out = np.zeros((a.shape[1], b.shape[1]), dtype=np.int64)
    per_row = max(max_abs(a), 1.0) * max(max_abs(b) if bound_b is None else bound_b, 1.0)
    if b.dtype == np.float32 and (FLOAT32_EXACT - 1) // per_row >= MIN_FLOAT32_BLOCK:
        # b is already float32: blocks small enough to stay exact in float32 cost half the traffic.
        step = int((FLOAT32_EXACT - 1) // per_row)
        a = a.astype(np.float32, copy=False)
    else:
        step = _rows_per_exact_chunk(per_row, 1.0)
        a, b = a.astype(np.float64, copy=False), b.astype(np.float64, copy=False)
    for start in range(0, a.shape[0], step):
        part = matmul(a[start : start + step].T, b[start : start + step])
        out += part.astype(np.int64)
    return out


def exact_matmul(a: NDArray[np.number], b: NDArray[np.number]) -> NDArray[np.floating]:
    """Exact ``a @ b`` for integer-valued arrays whose every dot product fits the mantissa.

    Uses float32 BLAS (twice the float64 speed, half the memory traffic) when
    ``inner * max|a| * max|b| < 2**24``, float64 when it is below 2**53, and raises
    :class:`OverflowRiskError` otherwise. The result holds exact integers, in the float type
    that was used.

    >>> exact_matmul(np.array([[3, -2]], dtype=np.int16), np.array([[1.0], [1.0]]))
    array([[1.]], dtype=float32)
    """
    bound = a.shape[1] * max_abs(a) * max_abs(b)
    if bound < FLOAT32_EXACT:
        return matmul(a.astype(np.float32, copy=False), b.astype(np.float32, copy=False))
    if bound < FLOAT64_EXACT:
        return matmul(a.astype(np.float64, copy=False), b.astype(np.float64, copy=False))
    raise OverflowRiskError(f"Dot products may reach {bound:.3g}, beyond exact float64 (2**53).")


class GramAccumulator:
    """Exact running sum of ``x.T @ x`` over batches of integer-valued rows.

    The sum is kept in buffers updated by exact kernels and moved into an int64 total before
    a buffer could lose exactness, by the smallest values of the rows:

    * non-negative rows of at most 127 (the default model's 6-bit features) are gathered as
      int8, up to ``STAGED_BYTES`` of them, and their Gram is summed into an int32 block by
      int8 products on the CPU's integer units (:mod:`erasable.integer_gram`, unless it is
      switched off or this is a process forked after it started), while every sum stays below
      2**31;
    * other rows of at most 255 (signed, or above 127: at least ``MIN_FLOAT32_BLOCK`` of them
      sum below 2**24) in a float32 block, by ``ssyrk`` (one triangle only, half the work of a GEMM);
    * other rows in a float64 buffer by ``dsyrk``, moved before it could reach 2**53.

    Only the upper triangle of :meth:`result` is filled; the lower triangle is zero. That is
    the canonical layout of every Gram matrix in erasable. Whichever kernels summed them, the
    same rows give the same integers.

    Rows must satisfy ``|x| <= 2**15`` (int16 range), so each product is below 2**30 and
    2**23 rows can be summed in float64 before a flush.

    >>> gram = GramAccumulator(2)
    >>> gram.add(np.array([[63.0, 1.0]], dtype=np.float32))  # small, non-negative: int8 products
    >>> gram.add(np.array([[-200.0, 0.0]], dtype=np.float32))  # small: float32
    >>> gram.add(np.array([[4096.0, 0.0]]))  # large: float64
    >>> gram.result()
    array([[16821185,       63],
           [       0,        1]])
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        # Fortran order: syrk writes it in place. Its lower triangle, in Fortran terms, is
        # the upper triangle of the C-ordered view ``self._buffer.T``. np.zeros is calloc'd:
        # a buffer no row reaches (the float64 one, for 6-bit features) costs no memory.
        self._buffer = np.zeros((dim, dim), dtype=np.float64, order="F")
        self._rows_in_buffer = 0
        self._rows_per_flush = _rows_per_exact_chunk(INT16_MAX + 1, INT16_MAX + 1)
        self._block: NDArray[np.float32] | None = None  # the float32 buffer, made when first used
        self._rows_in_block = 0
        self._block_bound = 0.0  # a bound on every entry of the block
        self._staged: NDArray[np.int8] | None = None  # 7-bit rows waiting for their Gram, made when first used
        self._rows_staged = 0
        self._staged_per_row = 0  # the largest product of a staged row
        self._int32_block: NDArray[np.int32] | None = None  # the upper triangle, made when first used
        self._int32_bound = 0  # a bound on every entry of it
        self._total: NDArray[np.int64] | None = None
        self._total_returned = False  # result() handed the total out: copy it before writing into it

    def add(self, rows: NDArray[np.floating], bound: float | None = None) -> None:
        """Add ``rows.T @ rows``; ``rows`` is (n, dim), integer valued, within int16 range.

        ``bound``, when the caller already knows ``max |rows|``, saves a pass over them.
        """
        if rows.ndim != 2 or rows.shape[1] != self.dim:
            raise ValueError(f"Expected rows of shape (n, {self.dim}), got {rows.shape}.")
        bound = max_abs(rows) if bound is None else bound
        if not bound <= INT16_MAX + 1:  # NaN included
            raise OverflowRiskError("Gram rows must lie in the int16 range to be summed exactly.")
        per_row = max(bound, 1.0) ** 2
        if bound <= integer_gram.MAX_LEVEL and integer_gram.available() and rows.min(initial=0) >= 0:
            self._stage(rows, int(per_row))
            return
        if (FLOAT32_EXACT - 1) // per_row >= MIN_FLOAT32_BLOCK:
            self._add_float32(np.ascontiguousarray(rows, dtype=np.float32), per_row)
            return
        rows64 = np.ascontiguousarray(rows, dtype=np.float64)
        for start in range(0, rows64.shape[0], self._rows_per_flush):
            chunk = rows64[start : start + self._rows_per_flush]
            if self._rows_in_buffer + chunk.shape[0] > self._rows_per_flush:
                self._flush()
            # chunk.T is a Fortran-ordered (dim, n) view: dsyrk(trans=0) forms chunk.T @ chunk
            # in place, without copying either array.
            self._buffer = blas.dsyrk(1.0, chunk.T, beta=1.0, c=self._buffer, trans=0, lower=1, overwrite_c=1)
            self._rows_in_buffer += chunk.shape[0]

    def _stage(self, rows: NDArray[np.floating], per_row: int) -> None:
        """Gather non-negative rows of at most 127 as int8; their Gram is formed when the buffer is full."""
        if self._staged is None:
            capacity = max(1, min(STAGED_BYTES // max(self.dim, 1), integer_gram.MAX_ROWS))
            self._staged = np.empty((capacity, self.dim), dtype=np.int8)
        self._staged_per_row = max(self._staged_per_row, per_row)
        start = 0
        while start < rows.shape[0]:
            if self._rows_staged == self._staged.shape[0]:
                self._sum_staged()
                self._staged_per_row = per_row
            take = min(self._staged.shape[0] - self._rows_staged, rows.shape[0] - start)
            target = self._staged[self._rows_staged : self._rows_staged + take]
            np.copyto(target, rows[start : start + take], casting="unsafe")  # exact: integers 0..127
            self._rows_staged += take
            start += take

    def _sum_staged(self) -> None:
        """Add the staged rows' Gram into the int32 block; the buffer is empty after, even if that fails."""
        staged, per_row = self._rows_staged, self._staged_per_row
        self._rows_staged, self._staged_per_row = 0, 0
        if staged:
            assert self._staged is not None
            self._add_int8(self._staged[:staged], per_row)

    def _add_int8(self, rows: NDArray[np.int8], per_row: int) -> None:
        """Sum non-negative int8 rows, each product at most ``per_row``, in the int32 block below 2**31."""
        start = 0
        while start < rows.shape[0]:
            room = min((INT32_MAX - self._int32_bound) // per_row, integer_gram.MAX_ROWS)
            if room < 1:
                self._move_int32_block()
                continue
            chunk = rows[start : start + room]
            gram = integer_gram.integer_gram(chunk)
            if self._int32_block is None:
                self._int32_block = gram
            else:
                self._int32_block += gram
            self._int32_bound += chunk.shape[0] * per_row
            start += chunk.shape[0]

    def _move_int32_block(self) -> None:
        """Add the int32 block's upper triangle into the int64 total."""
        if self._int32_block is None:
            return
        block, self._int32_block, self._int32_bound = self._int32_block, None, 0
        self._add_to_total(block)

    def _add_float32(self, rows: NDArray[np.float32], per_row: float) -> None:
        """Sum rows whose products are at most ``per_row`` in float32 blocks below 2**24.

        Each block is filled to its limit before it is moved: the fewest moves.
        """
        start = 0
        while start < rows.shape[0]:
            room = int((FLOAT32_EXACT - 1 - self._block_bound) // per_row)
            if room < 1:
                self._move_block()
                continue
            chunk = rows[start : start + room]
            if self._block is None:
                self._block = np.zeros((self.dim, self.dim), dtype=np.float32, order="F")
            # beta=0 on an emptied block overwrites its triangle: no pass to clear it.
            beta = 1.0 if self._rows_in_block else 0.0
            self._block = blas.ssyrk(1.0, chunk.T, beta=beta, c=self._block, trans=0, lower=1, overwrite_c=1)
            self._rows_in_block += chunk.shape[0]
            self._block_bound += chunk.shape[0] * per_row
            start += chunk.shape[0]

    def _move_block(self) -> None:
        """Add the float32 block into the int64 total (exact: it holds integers below 2**24)."""
        if self._block is None or not self._rows_in_block:
            return
        self._add_to_total(self._block.T)
        self._rows_in_block, self._block_bound = 0, 0.0

    def _flush(self) -> None:
        """Move the float64 buffer into the total and zero its written triangle (the rest stays zeros)."""
        self._add_to_total(self._buffer.T)
        for start in range(0, self.dim, TRIANGLE_BLOCK):
            self._buffer[start:, start : start + TRIANGLE_BLOCK] = 0.0
        self._rows_in_buffer = 0

    def _add_to_total(self, matrix: NDArray[np.number]) -> None:
        """``total += triu(matrix)``, in int64, band by band (no full-size temporary; ``matrix`` is only read).

        Only each band's square crosses the diagonal: its part below is zeroed in the band's
        int64 copy, and nothing further below is read.
        A total that :meth:`result` handed out is copied first: later additions never write into it.
        """
        if self._total is None:  # calloc'd: the pages wholly below the diagonal are never written
            self._total = np.zeros((self.dim, self.dim), dtype=np.int64)
        elif self._total_returned:
            self._total, self._total_returned = self._total.copy(), False
        below = np.tri(TRIANGLE_BLOCK, TRIANGLE_BLOCK, -1, dtype=bool)
        for start in range(0, self.dim, TRIANGLE_BLOCK):
            stop = min(start + TRIANGLE_BLOCK, self.dim)
            band = matrix[start:stop, start:].astype(np.int64)
            band[:, : stop - start][below[: stop - start, : stop - start]] = 0
            self._total[start:stop, start:] += band

    def result(self) -> NDArray[np.int64]:
        """The exact int64 sum so far (upper triangle; zeros below the diagonal).

        Later additions never write into the returned array.
        """
        self._sum_staged()
        self._move_int32_block()
        self._move_block()
        if self._rows_in_buffer or self._total is None:
            self._flush()
        assert self._total is not None
        self._total_returned = True
        return self._total


def single_pass_bound(rows: NDArray[np.number]) -> float:
    """A bound on every entry of ``rows.T @ rows`` summed in one pass: exact in float64 below 2**53.

    >>> single_pass_bound(np.array([[3.0, -4.0], [1.0, 0.0]]))
    32.0
    """
    return rows.shape[0] * max(max_abs(rows), 1.0) ** 2


def gram_plus_rows(
    gram: NDArray[np.int64] | None, rows: NDArray[np.floating], sign: int, block: int = 512
) -> NDArray[np.int64]:
    """``gram + sign * triu(rows.T @ rows)``, exact, in one pass over ``gram`` (``None``: zeros).

    For a few rows (a forget request, a small increment) this beats accumulating a dense
    batch Gram and adding it: each band of ``block`` rows of the result is formed from a
    small GEMM and written once, in float32 when the rows' sums stay below 2**24 (up to
    4,227 rows of 6-bit features), else in float64. ``gram`` is in erasable's upper-triangular
    layout.

    >>> g = np.triu(np.ones((3, 3), dtype=np.int64))
    >>> gram_plus_rows(g, np.array([[1.0, 2.0, 3.0]]), -1)
    array([[ 0, -1, -2],
           [ 0, -3, -5],
           [ 0,  0, -8]])
    """
    rows = np.asarray(rows)
    bound = single_pass_bound(rows)
    if bound >= FLOAT64_EXACT:
        raise OverflowRiskError("Too many rows for an exact single-pass Gram update.")
    rows = rows.astype(np.float32 if bound < FLOAT32_EXACT else np.float64, copy=False)  # float32: half the work
    dim = rows.shape[1]
    out = np.zeros((dim, dim), dtype=np.int64)  # calloc'd: pages wholly below the diagonal are never written
    below = np.tri(block, block, -1, dtype=bool)
    combine = np.add if sign > 0 else np.subtract
    for start in range(0, dim, block):
        stop = min(start + block, dim)
        band = matmul(rows[:, start:stop].T, rows[:, start:])  # rows start..stop, columns start..: one GEMM
        band[:, : stop - start][below[: stop - start, : stop - start]] = 0.0  # only its square crosses the diagonal
        if gram is None:
            out[start:stop, start:] = band if sign > 0 else -band
        else:
            combine(gram[start:stop, start:], band.astype(np.int64), out=out[start:stop, start:])
    return out


def check_accumulator_range(total_rows: int, bound_per_row: int = 2**30) -> None:
    """Refuse a count of rows whose int64 sums could overflow.

    >>> check_accumulator_range(10**6)
    >>> check_accumulator_range(2**40)
    Traceback (most recent call last):
    ...
    erasable.exact.OverflowRiskError: 1099511627776 samples could overflow the int64 statistics (limit 4294967296).
    """
    limit = INT64_SAFE // bound_per_row
    if total_rows > limit:
        raise OverflowRiskError(f"{total_rows} samples could overflow the int64 statistics (limit {limit}).")
