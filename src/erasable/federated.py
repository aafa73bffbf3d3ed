"""Federated learning by exact merging, and secure aggregation of integer statistics.

**Portable statistics.** A client exports what it learned -- the Moments of its quantized
embeddings and of its features -- with the model config and the encoder identity, in one
safetensors file whose metadata is a JSON manifest (the conventions of
:mod:`erasable.model_file`: no pickle, a SHA-256 digest over manifest and tensors, the
certificate recomputed on load). No sample, id or subject leaves the client. The server
adds any number of exports; integer sums make the result exact and independent of the
merge order, and its certificate equals that of one model fitted on all clients' data.
Exports with different configs or encoders are refused (:class:`FederationError`).
A client that withdraws is forgotten exactly by subtracting its export.

**Secure aggregation** (:class:`Round`, :class:`SecureAggregationClient`,
:func:`aggregate`) lets the server learn the sum *without* seeing any client's
statistics. The statistics are int64, so they live in the ring of integers modulo 2**64
and pairwise additive masks cancel exactly (Bonawitz et al., CCS 2017, without double
masking). For every pair of participants ``i < j`` a seed comes from a key agreement
(:class:`KeyAgreement`; :class:`DiffieHellman` over the RFC 3526 2048-bit group is
provided, any X25519 implementation fits the protocol); the mask ``m_ij`` is a SHAKE-256
stream in counter mode (deterministic, stable across versions and platforms). Client
``i`` sends ``x_i + sum_{j>i} m_ij - sum_{j<i} m_ij (mod 2**64)``; the masks cancel in the
sum. Each masked vector is uniformly distributed on its own.

*Class lists.* Masked class-sum matrices must have one shape, so the round fixes a common
class list, published by the server as public information (e.g. the label set of the
task); each client pads its statistics with zero rows for the classes it lacks, and
refuses labels outside the list. Classes whose total count is zero are dropped after
unmasking, so the result equals the plain merge. The class list and the total count per
class are revealed; which client holds which class is not.

*Threat model.* The server is honest but curious: it follows the protocol and tries to
learn from what it sees. It sees only masked vectors, the dropout corrections and the
sum. Any coalition of the server with clients learns nothing more about the honest
clients than the sum of their statistics (the masks between honest pairs stay secret).
*Dropouts are handled by mask reveal*: when participants never send their vector, every
survivor sends the sum of its masks shared with the dropped participants, and the server
removes them. Clients refuse to do so when fewer than ``min_survivors`` would remain. A
*malicious* server could claim a slow client dropped and then unmask that client's late
vector; defending against that needs the double masking and secret-shared seeds of
Bonawitz et al., which are not implemented. Integrity (a client sending garbage) is not
protected either: it corrupts the sum, usually detectably (negative counts are refused).

>>> import numpy as np
>>> from erasable.model import Model, ModelConfig
>>> config = ModelConfig(input_dim=2, scale_bits=8)
>>> alice, bob = Model(config), Model(config)
>>> alice.learn(np.array([[0.5, 0.1]]), ["x"])
>>> bob.learn(np.array([[0.1, 0.5], [0.3, 0.3]]), ["y", "x"])
>>> parties = {"alice": DiffieHellman(), "bob": DiffieHellman()}
>>> public_keys = {name: keys.public_key() for name, keys in parties.items()}
>>> round_ = Round("r1", config, classes=("x", "y"), public_keys=public_keys)
>>> masked = [
...     SecureAggregationClient(name, parties[name]).masked(round_, ClientStatistics.from_model(model))
...     for name, model in (("alice", alice), ("bob", bob))
... ]
>>> total = aggregate(round_, masked)
>>> plain = merge([ClientStatistics.from_model(alice), ClientStatistics.from_model(bob)])
>>> pooled = Model(config)
>>> pooled.learn(np.array([[0.5, 0.1], [0.1, 0.5], [0.3, 0.3]]), ["x", "y", "x"])
>>> total.certificate() == plain.certificate() == pooled.certificate()
True
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from erasable import __version__
from erasable.exact import check_accumulator_range
from erasable.model import Model, ModelConfig
from erasable.model_file import ModelFileError, read_container, write_container
from erasable.moments import Label, Moments, MomentsMismatchError, canonical_labels
from erasable.statistics import Statistics

FORMAT = "erasable-moments"
#: Version 2 stores each Gram as its upper triangle (``*.gram_upper``); version 1 files (square ``*.gram``) load.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MASK_DOMAIN = b"erasable-secagg-mask-v1\0"
SEED_DOMAIN = b"erasable-secagg-seed-v1\0"
MASK_BLOCK_BYTES = 1 << 20

__all__ = [
    "ClientStatistics",
    "Correction",
    "DiffieHellman",
    "FederationError",
    "KeyAgreement",
    "MaskedContribution",
    "Round",
    "SecureAggregationClient",
    "aggregate",
    "export_statistics",
    "load_statistics",
    "mask_stream",
    "merge",
]


class FederationError(ValueError):
    """Statistics that cannot be combined: other config, encoder, class list or round."""


# -- portable statistics ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientStatistics:
    """A model's statistics with the config and encoder identity they are only valid with."""

    config: ModelConfig
    encoder: str | None
    statistics: Statistics

    @classmethod
    def from_model(cls, model: Model, encoder: str | None = None) -> ClientStatistics:
        """The statistics ``model`` holds; ``encoder`` is the identity of the encoder that made its inputs."""
        return cls(model.config, encoder, model.statistics)

    @property
    def count(self) -> int:
        return self.statistics.count

    def check_compatible(self, other: ClientStatistics) -> None:
        """Raise :class:`FederationError` unless configs and encoders are equal."""
        _check_same_model(self.config, self.encoder, other.config, other.encoder)

    def __add__(self, other: ClientStatistics) -> ClientStatistics:
        self.check_compatible(other)
        return ClientStatistics(self.config, self.encoder, self.statistics + other.statistics)

    def __sub__(self, other: ClientStatistics) -> ClientStatistics:
        """Forget a client: remove its statistics from a merge that included them."""
        self.check_compatible(other)
        return ClientStatistics(self.config, self.encoder, self.statistics - other.statistics)

    def to_model(self) -> Model:
        """A model holding these statistics, to predict with. It has no sample registry:
        it forgets whole clients (subtract their export), not individual samples."""
        return Model.restore(self.config, self.statistics)

    def certificate(self) -> str:
        """Equal to the certificate of one model fitted on all the samples behind these statistics."""
        return self.statistics.certificate(self.config)


def _check_same_model(config: ModelConfig, encoder: str | None, other: ModelConfig, other_encoder: str | None) -> None:
    if other != config:
        mine, theirs = config.to_dict(), other.to_dict()
        differing = sorted(k for k in mine if mine[k] != theirs.get(k))
        raise FederationError(f"Cannot merge statistics of different model configs (differ in {differing}).")
    if other_encoder != encoder:
        raise FederationError(f"Cannot merge statistics of different encoders: {encoder!r} and {other_encoder!r}.")


def merge(items: Iterable[ClientStatistics]) -> ClientStatistics:
    """The sum of any number of clients' statistics; exact, whatever the order."""
    items = list(items)
    if not items:
        raise ValueError("Nothing to merge.")
    return functools.reduce(ClientStatistics.__add__, items)


def export_statistics(
    model: Model | ClientStatistics, path: str | os.PathLike[str], *, encoder: str | None = None
) -> None:
    """Write a model's statistics (not its samples) to a portable file, atomically."""
    stats = model if isinstance(model, ClientStatistics) else ClientStatistics.from_model(model, encoder)
    tensors = stats.statistics.tensors()
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "erasable_version": __version__,
        "config": stats.config.to_dict(),
        "encoder": stats.encoder,
        "classes": list(stats.statistics.classes),
        "count": stats.count,
        "certificate": stats.certificate(),
    }
    write_container(path, manifest, tensors)


def load_statistics(path: str | os.PathLike[str]) -> ClientStatistics:
    """Read and verify an exported file; :class:`~erasable.model_file.ModelFileError` if anything is off."""
    manifest, tensors = read_container(path, FORMAT, READABLE_VERSIONS)
    try:
        config = ModelConfig.from_dict(manifest["config"])
        classes = canonical_labels(manifest["classes"]).tolist() if manifest["classes"] else []
        statistics = Statistics.from_tensors(tensors, classes, config.input_dim, config.feature_dim)
        stats = ClientStatistics(config, manifest["encoder"], statistics)
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelFileError(f"Inconsistent statistics file: {exc}") from exc
    if stats.certificate() != manifest["certificate"]:
        raise ModelFileError("Certificate mismatch: the statistics do not match the recorded certificate.")
    return stats


# -- key agreement and masks --------------------------------------------------------------------------

#: RFC 3526 group 14: the 2048-bit MODP prime, generator 2.
MODP_2048 = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AACAA68FFFFFFFFFFFFFFFF",
    16,
)
_MODP_BYTES = 256


class KeyAgreement(Protocol):
    """One party's key pair: a public key to publish, a shared secret with any peer's public key."""

    def public_key(self) -> bytes: ...

    def shared_secret(self, peer_public_key: bytes) -> bytes: ...


class DiffieHellman:
    """Finite-field Diffie-Hellman in RFC 3526 group 14 (2048-bit), standard library only.

    >>> a, b = DiffieHellman(), DiffieHellman()
    >>> a.shared_secret(b.public_key()) == b.shared_secret(a.public_key())
    True
    """

    def __init__(self, private_key: int | None = None) -> None:
        self._private = private_key if private_key is not None else secrets.randbelow(MODP_2048 - 3) + 2

    def public_key(self) -> bytes:
        return pow(2, self._private, MODP_2048).to_bytes(_MODP_BYTES, "big")

    def shared_secret(self, peer_public_key: bytes) -> bytes:
        peer = int.from_bytes(peer_public_key, "big")
        if not 2 <= peer <= MODP_2048 - 2:
            raise FederationError("Invalid Diffie-Hellman public key.")
        return pow(peer, self._private, MODP_2048).to_bytes(_MODP_BYTES, "big")


def mask_stream(seed: bytes, length: int) -> NDArray[np.uint64]:
    """``length`` pseudorandom uint64 words: little-endian words of the concatenated blocks
    ``SHAKE-256(MASK_DOMAIN || seed || block index as 8 bytes big-endian)`` of 1 MiB each.

    >>> mask_stream(b"seed", 2).tolist() == mask_stream(b"seed", 3)[:2].tolist()
    True
    """
    words_per_block = MASK_BLOCK_BYTES // 8
    blocks = [
        hashlib.shake_256(MASK_DOMAIN + seed + index.to_bytes(8, "big")).digest(MASK_BLOCK_BYTES)
        for index in range(-(-length // words_per_block))
    ]
    return np.frombuffer(b"".join(blocks), dtype="<u8", count=length).astype(np.uint64)


def _pair_seed(round_id: str, a: str, b: str, secret: bytes) -> bytes:
    low, high = sorted((a, b))
    text = json.dumps([round_id, low, high]).encode()
    return hashlib.sha256(SEED_DOMAIN + text + b"\0" + secret).digest()


# -- the round ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Round:
    """The public parameters of one secure aggregation: config, encoder, the common class
    list, every participant's public key, and the least number of survivors."""

    round_id: str
    config: ModelConfig
    classes: tuple[Label, ...]
    public_keys: Mapping[str, bytes]
    encoder: str | None = None
    min_survivors: int = 2
    _shapes: tuple[tuple[int, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        classes = tuple(canonical_labels(list(self.classes)).tolist()) if self.classes else ()
        if list(classes) != sorted(set(classes)) or not classes:
            raise FederationError("The round's class list must be non-empty, sorted and without repeats.")
        if len(self.public_keys) < self.min_survivors or self.min_survivors < 2:
            raise FederationError("A round needs at least min_survivors >= 2 participants.")
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "_shapes", self._layout())

    def _layout(self) -> tuple[tuple[int, ...], ...]:
        k, d = len(self.classes), self.config.input_dim
        shapes: list[tuple[int, ...]] = [(k,), (k, d), (d * (d + 1) // 2,)]
        width = self.config.feature_dim
        if width is not None:
            shapes += [(k, width), (width * (width + 1) // 2,)]
        return tuple(shapes)

    @property
    def participants(self) -> tuple[str, ...]:
        return tuple(sorted(self.public_keys))

    @property
    def length(self) -> int:
        """Words in a masked vector: counts, class sums and Gram upper triangles."""
        return sum(int(np.prod(shape)) for shape in self._shapes)

    def flatten(self, stats: ClientStatistics) -> NDArray[np.uint64]:
        """A client's statistics padded to the class list, as one vector in Z/2**64."""
        _check_same_model(self.config, self.encoder, stats.config, stats.encoder)
        moments = [stats.statistics.embedding, stats.statistics.features]
        rows = self._class_rows(stats.statistics.embedding.classes)
        counts = np.zeros(len(self.classes), dtype=np.int64)
        counts[rows] = stats.statistics.embedding.class_counts
        parts = [counts]
        for m in moments:
            if m is not None:
                sums = np.zeros((len(self.classes), m.dim), dtype=np.int64)
                sums[rows] = m.class_sums
                parts += [sums.ravel(), m.gram[np.triu_indices(m.dim)]]
        return np.concatenate(parts).astype(np.int64).view(np.uint64)

    def _class_rows(self, classes: Sequence[Label]) -> list[int]:
        index = {label: i for i, label in enumerate(self.classes)}
        outside = [c for c in classes if c not in index]
        if outside:
            raise FederationError(f"Labels outside the round's class list: {outside[:5]}.")
        return [index[c] for c in classes]

    def unflatten(self, vector: NDArray[np.uint64]) -> ClientStatistics:
        """The statistics a vector encodes; classes with a zero total count are dropped."""
        values = vector.view(np.int64)
        pieces, start = [], 0
        for shape in self._shapes:
            size = int(np.prod(shape))
            pieces.append(values[start : start + size].reshape(shape))
            start += size
        counts = pieces[0]
        embedding = self._moments(counts, pieces[1], pieces[2])
        features = self._moments(counts, pieces[3], pieces[4]) if len(pieces) > 3 else None
        return ClientStatistics(self.config, self.encoder, Statistics(embedding, features))

    def _moments(self, counts: NDArray[np.int64], sums: NDArray[np.int64], upper: NDArray[np.int64]) -> Moments:
        dim = sums.shape[1]
        gram = np.zeros((dim, dim), dtype=np.int64)
        gram[np.triu_indices(dim)] = upper
        alive = counts != 0
        try:
            if np.any(counts < 0) or np.any(sums[~alive]):
                raise MomentsMismatchError("negative counts, or sums for absent classes")
            check_accumulator_range(sum(counts.tolist()))
            classes = tuple(c for c, keep in zip(self.classes, alive, strict=True) if keep)
            return Moments(dim, classes, counts[alive].copy(), sums[alive].copy(), gram)
        except ValueError as exc:
            raise FederationError(
                f"The masks did not cancel (inconsistent contributions or corrections): {exc}"
            ) from exc


@dataclass(frozen=True)
class MaskedContribution:
    """What a client sends: its statistics plus pairwise masks, uniformly random on its own."""

    client_id: str
    round_id: str
    vector: NDArray[np.uint64]


@dataclass(frozen=True)
class Correction:
    """A survivor's masks shared with the dropped participants, summed with their signs."""

    client_id: str
    round_id: str
    dropped: tuple[str, ...]
    vector: NDArray[np.uint64]


class SecureAggregationClient:
    """One participant: masks its statistics, and corrects for peers that dropped out."""

    def __init__(self, client_id: str, keys: KeyAgreement) -> None:
        self.client_id = client_id
        self._keys = keys

    def _signed_masks(self, round_: Round, peers: Iterable[str]) -> NDArray[np.uint64]:
        """``sum_{j>i} m_ij - sum_{j<i} m_ij`` over ``peers``, modulo 2**64."""
        total = np.zeros(round_.length, dtype=np.uint64)
        for peer in peers:
            secret = self._keys.shared_secret(round_.public_keys[peer])
            mask = mask_stream(_pair_seed(round_.round_id, self.client_id, peer, secret), round_.length)
            if peer > self.client_id:
                total += mask
            else:
                total -= mask
        return total

    def _check_member(self, round_: Round) -> None:
        if round_.public_keys.get(self.client_id) != self._keys.public_key():
            raise FederationError(
                f"{self.client_id!r} is not a participant of round {round_.round_id!r} with this key."
            )

    def masked(self, round_: Round, stats: ClientStatistics) -> MaskedContribution:
        """This client's statistics, masked for ``round_``."""
        self._check_member(round_)
        peers = [p for p in round_.participants if p != self.client_id]
        vector = round_.flatten(stats) + self._signed_masks(round_, peers)
        return MaskedContribution(self.client_id, round_.round_id, vector)

    def correction(self, round_: Round, dropped: Sequence[str]) -> Correction:
        """Reveal the masks shared with ``dropped`` so that the server can remove them."""
        self._check_member(round_)
        dropped = tuple(sorted(set(dropped)))
        unknown = set(dropped) - set(round_.participants)
        if self.client_id in dropped or unknown:
            raise FederationError(f"Invalid dropout list {list(dropped)} for {self.client_id!r}.")
        if len(round_.participants) - len(dropped) < round_.min_survivors:
            raise FederationError(f"Refusing to unmask: fewer than {round_.min_survivors} participants would remain.")
        return Correction(self.client_id, round_.round_id, dropped, self._signed_masks(round_, dropped))


def aggregate(
    round_: Round, contributions: Sequence[MaskedContribution], corrections: Sequence[Correction] = ()
) -> ClientStatistics:
    """The server: sum the masked vectors, remove the dropped participants' masks, decode.

    Participants without a contribution are the dropped ones; then every survivor must
    send a :class:`Correction` for exactly that set.
    """
    senders = [c.client_id for c in contributions]
    messages: list[MaskedContribution | Correction] = [*contributions, *corrections]
    if any(c.vector.shape != (round_.length,) for c in messages):
        raise FederationError(f"Masked vectors must have {round_.length} words for this round.")
    if len(set(senders)) != len(senders) or not set(senders) <= set(round_.participants):
        raise FederationError("Contributions must come from distinct participants of the round.")
    if any(c.round_id != round_.round_id for c in messages):
        raise FederationError(f"Contributions from another round than {round_.round_id!r}.")
    if len(senders) < round_.min_survivors:
        raise FederationError(f"Only {len(senders)} contributions; the round needs {round_.min_survivors}.")
    dropped = tuple(sorted(set(round_.participants) - set(senders)))
    if dropped and (
        sorted(c.client_id for c in corrections) != sorted(senders) or any(c.dropped != dropped for c in corrections)
    ):
        raise FederationError(f"Participants {list(dropped)} dropped: every survivor must send a correction for them.")
    total = np.zeros(round_.length, dtype=np.uint64)
    for contribution in contributions:
        total += contribution.vector
    for correction in corrections if dropped else ():
        total -= correction.vector
    return round_.unflatten(total)
