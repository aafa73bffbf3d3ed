"""Exact Gram matrices of 7-bit integers on the CPU's integer units, by ONNX Runtime.

The Gram matrix of the default model's features (6-bit levels, n x 4096) is the largest
product of learning. Its entries are integers, so every exact way of summing them gives the
same bits: float32 ``ssyrk`` in blocks whose sums stay below 2**24, or int8 products summed
in int32. ONNX Runtime's ``MatMulInteger`` does the latter on the integer units (its MLAS
kernels use AMX or AVX-VNNI where the CPU has them, and AVX2's ``vpmaddubsw`` otherwise,
whose int16 sums of two products cannot saturate here: ``2 * 127**2 < 2**15``). On this
project's 2-core Sapphire Rapids machine the Gram of BANKING77's 10,003 rows of 4,096
features took 0.24-0.27 s this way against 0.53-0.57 s by ``ssyrk`` (``benchmarks/bench_core.py``),
forming both triangles in one call. It is now formed band by band, :data:`BAND` rows of the
upper triangle per call (``left.T @ right`` with ``left`` the band's columns and ``right`` those
from the band on): 56% of the products at D = 4096, and each call's operands and result stay
small. On a 2-core AMD EPYC (AVX-512 VNNI, no AMX) the whole Gram took 0.69-0.71 s in one call,
0.18-0.22 s in bands of 512 (0.23-0.29 s in bands of 1024), against 1.2 s by ``ssyrk``. The
graph is a small ONNX file shipped in the package (``scripts/make_integer_gram_model.py``
writes it); ONNX Runtime is imported on first use.

>>> import numpy as np
>>> integer_gram(np.array([[1, 2], [3, 4]], dtype=np.int8))
array([[10, 14],
       [ 0, 20]], dtype=int32)
"""

from __future__ import annotations

import functools
import os
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["BAND", "INT32_MAX", "MAX_LEVEL", "MAX_ROWS", "available", "integer_gram", "limit_threads"]

INT32_MAX = 2**31 - 1

#: The largest value a row may hold: int8's, read as uint8 by the kernel's left operand.
MAX_LEVEL = 127

#: The most rows one call sums: every entry of their Gram stays below 2**31 (int32).
MAX_ROWS = INT32_MAX // MAX_LEVEL**2

#: Rows of the upper triangle formed per call.
BAND = 512

_thread_limit: int | None = None
_session_pid: int | None = None  # the process whose sessions these are


def available() -> bool:
    """Whether Grams may be formed here: not switched off, nor in a child forked after ONNX Runtime started.

    ONNX Runtime is not fork-safe: a process forked after it was imported hangs when it exits
    normally, in ONNX Runtime's static destructors (exiting by ``os._exit``, as multiprocessing's
    children do, is fine), and may hang in its thread pools. So a forked child sums on the
    float paths, which give the same integers; ``ERASABLE_INTEGER_GRAM=0`` keeps ONNX Runtime
    out of a process altogether (for a server that forks workers after learning, say).
    """
    return os.environ.get("ERASABLE_INTEGER_GRAM", "1") != "0" and _session_pid in (None, os.getpid())


def integer_gram(rows: NDArray[np.int8]) -> NDArray[np.int32]:
    """The upper triangle of ``rows.T @ rows``, exact, for int8 rows of values ``0..MAX_LEVEL`` (at most
    ``MAX_ROWS`` of them); zeros below the diagonal. C-ordered, and the caller's to keep.
    """
    if rows.dtype != np.int8 or rows.ndim != 2:
        raise ValueError(f"Expected a 2-D int8 array, got {rows.ndim}-D {rows.dtype}.")
    if rows.shape[0] > MAX_ROWS:
        raise ValueError(f"At most {MAX_ROWS} rows fit an int32 Gram; got {rows.shape[0]}.")
    if rows.min(initial=0) < 0:
        raise ValueError("Rows must be non-negative: the kernel reads one operand as uint8.")
    if 0 in rows.shape:
        return np.zeros((rows.shape[1], rows.shape[1]), dtype=np.int32)
    if not available():
        raise RuntimeError(
            "ONNX Runtime is switched off (ERASABLE_INTEGER_GRAM=0) or was started before this process forked."
        )
    session, dim = _session(_threads()), rows.shape[1]
    gram = np.zeros((dim, dim), dtype=np.int32)
    for start in range(0, dim, BAND):
        stop = min(start + BAND, dim)
        left = np.ascontiguousarray(rows[:, start:stop]).view(np.uint8)
        (band,) = session.run(None, {"right": np.ascontiguousarray(rows[:, start:]), "left_unsigned": left})
        gram[start:stop, start:] = band
        square = gram[start:stop, start:stop]
        square[np.tri(stop - start, stop - start, -1, dtype=bool)] = 0
    return gram


def limit_threads(count: int | None) -> None:
    """Form later Grams on at most ``count`` threads (``None``: the default, see :func:`_threads`).

    ``erasable serve --blas-threads`` sets it with the BLAS pools' limit: requests run in
    parallel threads already.
    """
    global _thread_limit
    if count is not None and count < 1:
        raise ValueError(f"count must be a positive number of threads, got {count}.")
    _thread_limit = count


def _threads() -> int:
    """:func:`limit_threads`' count, else ``OMP_NUM_THREADS`` (Dask's workers set it to 1), else every core
    this process may use."""
    if _thread_limit is not None:
        return _thread_limit
    configured = os.environ.get("OMP_NUM_THREADS", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@functools.cache
def _session(threads: int) -> Any:
    """One inference session per thread count (``run`` is thread-safe).

    Its threads sleep between calls instead of spinning: SciPy's LAPACK, next on the same
    cores, would otherwise wait for them.
    """
    global _session_pid
    import onnxruntime

    _session_pid = os.getpid()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model = resources.files("erasable").joinpath("integer_gram.onnx").read_bytes()
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
