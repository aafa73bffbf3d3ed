"""Fitting and forgetting on a Dask cluster: exact map-reduce over partitioned data.

A model's state is a sum of integer statistics, so fitting is a map-reduce: each worker
reads one shard, quantizes it with the model's scale, computes its features and partial
:class:`~erasable.statistics.Statistics`, and returns them with the registry rows (ids,
subjects, labels, e_q int16). The partial statistics are added pairwise on the cluster
(a tree reduction); the driver plans one learn of all the rows from the total
(:meth:`Model.plan_learn_quantized`) and applies it, as any learn is. Integer sums are exact,
so the result is **bit-identical** to the in-process :meth:`Model.learn` on the same samples,
whatever the partitioning, the number of workers or the order in which tasks finish. A
forget is the model's own (:meth:`Model.forget`), with the statistics of the rows it removes
reduced on the cluster.

Shards are files of a directory (searched recursively) or of a glob, local or any
`fsspec <https://filesystem-spec.readthedocs.io>`_ URL, read by the workers themselves with
:func:`erasable.io.read_shard` (``.npz``, ``.npy`` with sibling ``<stem>.<key>.npy`` files,
``.parquet``, ``.csv``; the fields named by an :class:`erasable.io.Columns`). For a model with
an encoder, the workers encode too: the items column of a Parquet or CSV shard then holds the
raw texts. Shards without an id column get ids ``"<shard url>:<row>"``, stable and unique.

The cluster: a :class:`distributed.Client` you pass, a scheduler address, or by default
a ``LocalCluster`` of worker processes started for the call and closed after it. Failed
partitions are retried (``retries``), then reported together by name in a
:class:`PartitionError`; the model is changed only if every partition succeeded.

The statistics part needs neither Dask nor a cluster:

>>> import numpy as np
>>> from erasable.model import Model, ModelConfig
>>> model = Model(ModelConfig(input_dim=2, scale_bits=8))
>>> q = model.quantize(np.array([[0.5, 0.25], [0.25, 0.5]]))
>>> part = model.batch_statistics(q, np.array(["a", "b"]))
>>> total = part + model.batch_statistics(q[:1], np.array(["a"]))
>>> total.embedding.class_counts.tolist()
[2, 1]

Fitting from shards (``pip install 'erasable[distributed]'``)::

    from erasable import distributed
    from erasable.io import Columns
    model = distributed.fit(config, "s3://bucket/embeddings/*.parquet", n_workers=8,
                            columns=Columns(ids="id", subjects="user"))
    distributed.forget(model, subjects=["alice"])
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from erasable.io import SHARD_SUFFIXES, Columns, list_shards, read_shard
from erasable.model import BatchStatistics, ForgetReceipt, Model, ModelConfig
from erasable.statistics import Statistics

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = [
    "SHARD_SUFFIXES",  # the shard readers are erasable.io's, importable from here as before
    "PartitionError",
    "PartitionProgress",
    "PartitionRows",
    "fit",
    "forget",
    "list_shards",
    "partial_fit",
    "read_shard",
]


# -- the map and the reduce ----------------------------------------------------------------------


@dataclass(frozen=True)
class PartitionRows:
    """The registry rows of one partition: what the model's ledger keeps per sample."""

    name: str
    ids: list[str]
    subjects: list[str | None]
    labels: NDArray[Any]
    quantized: NDArray[np.int16]


@dataclass(frozen=True)
class _PartitionResult:
    rows: PartitionRows
    statistics: Statistics


@dataclass(frozen=True)
class PartitionProgress:
    """Reported after each partition: its name and rows, how many are done out of how many."""

    name: str
    rows: int
    done: int
    total: int
    failed: bool


class PartitionError(RuntimeError):
    """Partitions that failed after their retries, by name; the model was not changed."""

    def __init__(self, failures: dict[str, BaseException]) -> None:
        self.failures = failures
        lines = "\n".join(f"  {name}: {type(exc).__name__}: {exc}" for name, exc in sorted(failures.items()))
        super().__init__(f"{len(failures)} partition(s) failed:\n{lines}")


def _fit_partition(
    config: ModelConfig, url: str, columns: Columns, storage_options: dict[str, Any] | None
) -> _PartitionResult:
    """The map task: read, encode (a model with an encoder), quantize, accumulate one shard (on a worker).

    Encoders embed each input in a tensor of fixed shape, so a worker's embeddings are
    those the driver would compute: the result stays bit-identical to the in-process fit.
    """
    model = Model(config)
    raw = config.encoder is not None
    shard = read_shard(url, columns, storage_options, raw)
    quantized = model.quantize(model.embed(shard.items) if raw else shard.items)
    assert shard.labels is not None and shard.ids is not None and shard.subjects is not None  # read_shard fills them
    rows = PartitionRows(url, shard.ids, shard.subjects, shard.labels, quantized)
    return _PartitionResult(rows, model.batch_statistics(quantized, shard.labels))


def _rows_statistics(config: ModelConfig, quantized: NDArray[np.int16], labels: NDArray[Any]) -> Statistics:
    """The map task of a forget: statistics of registry rows (runs on a worker)."""
    return Model(config).batch_statistics(quantized, labels)


def _tree_reduce(client: Client, futures: list[Future]) -> Future:
    """Add futures pairwise on the cluster, level by level: depth log2(n)."""
    while len(futures) > 1:
        paired = [
            client.submit(operator.add, a, b, pure=False) for a, b in zip(futures[::2], futures[1::2], strict=False)
        ]
        futures = paired + futures[len(paired) * 2 :]
    return futures[0]


@contextmanager
def _connected(client: Client | str | None, n_workers: int) -> Iterator[Client]:
    """The given client, a client of the scheduler at that address, or a fresh LocalCluster's."""
    from distributed import Client, LocalCluster

    if isinstance(client, Client):
        yield client
    elif isinstance(client, str):
        with Client(client) as connected:
            yield connected
    else:
        with (
            LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
            Client(cluster) as connected,
        ):
            yield connected


def _gather_rows(
    futures: dict[str, Future], progress: Callable[[PartitionProgress], None] | None
) -> dict[str, PartitionRows]:
    """Registry rows of every partition as they complete, reporting each; failures raise together."""
    from distributed import as_completed

    name_of = {future.key: name for name, future in futures.items()}
    rows: dict[str, PartitionRows] = {}
    failures: dict[str, BaseException] = {}
    for done, future in enumerate(as_completed(list(futures.values())), start=1):
        name = name_of[future.key]
        if future.status == "error":
            failures[name] = future.exception()
        else:
            rows[name] = future.result()
        if progress:
            count = len(rows[name].ids) if name in rows else 0
            progress(PartitionProgress(name, count, done, len(futures), name in failures))
    if failures:
        raise PartitionError(failures)
    return rows


def partial_fit(
    model: Model,
    source: str | Sequence[str],
    *,
    client: Client | str | None = None,
    n_workers: int = 2,
    columns: Columns | None = None,
    storage_options: dict[str, Any] | None = None,
    retries: int = 2,
    progress: Callable[[PartitionProgress], None] | None = None,
) -> Model:
    """Add the samples of every shard of ``source`` (a directory, glob or list of URLs) to ``model``.

    The certificate afterwards equals that of ``model.learn`` on all the samples in one
    process. Returns ``model``, changed in place; on any failure it is left as it was.
    """
    columns = columns or Columns()
    urls = list_shards(source, columns, storage_options) if isinstance(source, str) else sorted(source)
    with _connected(client, n_workers) as connected:
        results = [
            connected.submit(_fit_partition, model.config, url, columns, storage_options, pure=False, retries=retries)
            for url in urls
        ]
        rows = {
            url: connected.submit(operator.attrgetter("rows"), r, pure=False)
            for url, r in zip(urls, results, strict=True)
        }
        parts = _gather_rows(rows, progress)
        statistics = [connected.submit(operator.attrgetter("statistics"), r, pure=False) for r in results]
        total = _tree_reduce(connected, statistics).result()
    ordered = [parts[url] for url in urls]
    change = model.plan_learn_quantized(
        np.concatenate([part.quantized for part in ordered]),
        [label for part in ordered for label in part.labels.tolist()],
        ids=[i for part in ordered for i in part.ids],
        subjects=[s for part in ordered for s in part.subjects],
        statistics=total,
    )
    model.apply(change)
    return model


def fit(config: ModelConfig, source: str | Sequence[str], **options: Any) -> Model:
    """A new model fitted on every shard of ``source``; ``options`` as for :func:`partial_fit`."""
    return partial_fit(Model(config), source, **options)


# -- forgetting ------------------------------------------------------------------------------------


def _cluster_statistics(config: ModelConfig, client: Client | str, block_rows: int) -> BatchStatistics:
    """A function computing the statistics of rows on the cluster, in blocks of ``block_rows``, tree-reduced."""

    def statistics(quantized: NDArray[np.int16], labels: NDArray[np.generic]) -> Statistics:
        with _connected(client, n_workers=1) as connected:
            blocks = [
                connected.submit(
                    _rows_statistics, config, quantized[s : s + block_rows], labels[s : s + block_rows], pure=False
                )
                for s in range(0, quantized.shape[0], block_rows)
            ]
            removed: Statistics = _tree_reduce(connected, blocks).result()
        return removed

    return statistics


def forget(
    model: Model,
    *,
    ids: ArrayLike | None = None,
    subjects: Sequence[str] | str | None = None,
    client: Client | str | None = None,
    block_rows: int = 65536,
) -> ForgetReceipt:
    """Remove the samples named by ``ids`` or ``subjects``, wherever they came from: :meth:`Model.forget`.

    Only the named rows are read from the registry (an index lookup for ids, a scan of the
    subject column for subjects). Their statistics are computed in blocks of ``block_rows``
    on the cluster when ``client`` is given (a Client or a scheduler address), else in this
    process, and subtracted; the steering drops what names the samples removed, as for any
    forget. The certificate afterwards equals that of ``model.refit()``.

    >>> from erasable.model import ModelConfig
    >>> model = Model(ModelConfig(input_dim=2, scale_bits=8))
    >>> model.learn(np.eye(2) / 2, ["a", "b"], ids=["1", "2"], subjects=["ann", "bob"])
    >>> receipt = forget(model, subjects="bob")
    >>> receipt.ids, receipt.certificate_after == model.refit().certificate()
    (('2',), True)
    """
    if (ids is None) == (subjects is None):
        raise ValueError("Name exactly one of: ids or subjects.")
    remote = None if client is None else _cluster_statistics(model.config, client, block_rows)
    return model.forget(ids=ids, subjects=subjects, batch_statistics=remote)
