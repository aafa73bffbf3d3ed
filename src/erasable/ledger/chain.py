"""The event log's hash chain: each event commits to the one before it.

An event (learn, forget, ...) is a JSON object; its hash is
``sha256(previous_hash || 0x00 || canonical JSON of the event)``, and the first event of a
model links to a genesis hash derived from the model's name. Changing, removing or
reordering any event changes every hash after it, so a verifier holding only the last hash
(or any certificate published from it) detects tampering with the history.

Sample ids in events are salted hashes (:func:`id_hashes`), never the ids themselves: the log
proves *that* a sample was learned and forgotten without keeping who it was about.

>>> first = {"seq": 1, "kind": "learn", "count": 2}
>>> h1 = link(genesis("bank"), first)
>>> second = {"seq": 2, "kind": "forget", "count": 1}
>>> h2 = link(h1, second)
>>> verify_chain("bank", [(first, h1), (second, h2)]).ok
True
>>> verify_chain("bank", [(first, h1), ({**second, "count": 2}, h2)]).reason
'event 2: hash does not match its contents and predecessor'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ChainVerification", "canonical_json", "genesis", "id_hashes", "link", "verify_chain"]

DOMAIN = b"erasable-ledger-v1\0"


def canonical_json(value: Any) -> bytes:
    """One byte string per JSON value: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def genesis(model_name: str) -> str:
    """The hash the first event of ``model_name`` links to."""
    return hashlib.sha256(DOMAIN + b"genesis\0" + model_name.encode()).hexdigest()


def link(previous: str, event: Mapping[str, Any]) -> str:
    """The hash of ``event`` chained after ``previous``."""
    return hashlib.sha256(previous.encode() + b"\0" + canonical_json(dict(event))).hexdigest()


def id_hashes(salt: bytes, ids: Sequence[str]) -> list[str]:
    """Salted SHA-256 of each sample id (hex, 128 bits): what events record instead of ids.

    >>> id_hashes(b"salt", ["a"]) == id_hashes(b"salt", ["a"]) != id_hashes(b"pepper", ["a"])
    True
    """
    return [hashlib.sha256(salt + b"\0" + sample_id.encode()).hexdigest()[:32] for sample_id in ids]


@dataclass(frozen=True)
class ChainVerification:
    """The outcome of :func:`verify_chain`: ``ok``, how many events were checked, and why not."""

    ok: bool
    events: int
    last_hash: str
    reason: str = ""


def verify_chain(model_name: str, events: Iterable[tuple[Mapping[str, Any], str]]) -> ChainVerification:
    """Check that ``(event, hash)`` pairs, in order, form an unbroken chain from the genesis.

    Sequence numbers must run 1, 2, 3, ... without gaps: a deleted event is detected even
    if every remaining hash were recomputed from the new order.
    """
    previous = genesis(model_name)
    count = 0
    for event, recorded in events:
        count += 1
        if event.get("seq") != count:
            return ChainVerification(False, count, previous, f"event {count}: sequence number {event.get('seq')}")
        if link(previous, event) != recorded:
            reason = f"event {count}: hash does not match its contents and predecessor"
            return ChainVerification(False, count, previous, reason)
        previous = recorded
    return ChainVerification(True, count, previous)
