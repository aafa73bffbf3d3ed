"""Steering: weights on the memory's votes, per class, per subject (a data source) and per sample.

A neighbour's vote in the memory head is multiplied by its sample's weight, its subject's
weight and its class's weight. 1 is neutral, 0 silences, 0.5 halves: "trust the crawled
source half as much", "never let this mislabelled sample vote", "make class X harder to
predict". The weights are edits a user makes, not statistics learned from the samples, so
they are not part of the certificate; a model file stores them beside the samples.

They name samples, subjects and classes. Forgetting drops every entry that names something
no longer live, so a forgotten sample's id or a forgotten subject's name does not survive in
the steering either.

>>> steering = Steering().with_weights(classes={"spam": 0.5}, subjects={"crawler": 0.0})
>>> steering.sample_weight("s1", "crawler"), steering.sample_weight("s2", None)
(0.0, 1.0)
>>> steering.without(subjects=["crawler"]).subjects
{}
>>> Steering.from_json(steering.to_json()) == steering
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from erasable.moments import Label

__all__ = ["MAX_WEIGHT", "Steering", "SteeringError"]

#: Largest weight: far beyond any useful emphasis, and small enough that no vote overflows.
MAX_WEIGHT = 1e6


class SteeringError(ValueError):
    """A steering weight or a stored steering is invalid."""


def _checked(weights: Mapping[Any, float], kind: str) -> dict[Any, float]:
    out = {}
    for name, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= MAX_WEIGHT:
            raise SteeringError(
                f"The weight of {kind} {name!r} must be a number from 0 to {MAX_WEIGHT:g}, got {weight!r}."
            )
        out[name] = float(weight)
    return out


def _updated(current: Mapping[Any, float], changes: Mapping[Any, float] | None, kind: str) -> dict[Any, float]:
    """``current`` with ``changes`` applied; a weight of 1 removes the entry."""
    merged = {**current, **_checked(changes or {}, kind)}
    return {name: weight for name, weight in merged.items() if weight != 1.0}


@dataclass(frozen=True)
class Steering:
    """Per-class, per-subject and per-sample vote weights (entries of weight 1 are not kept)."""

    classes: Mapping[Label, float] = field(default_factory=dict)
    subjects: Mapping[str, float] = field(default_factory=dict)
    samples: Mapping[str, float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.classes or self.subjects or self.samples)

    def with_weights(
        self,
        *,
        classes: Mapping[Label, float] | None = None,
        subjects: Mapping[str, float] | None = None,
        samples: Mapping[str, float] | None = None,
    ) -> Steering:
        """A copy with these weights set (a weight of 1 restores the default)."""
        return Steering(
            _updated(self.classes, classes, "class"),
            _updated(self.subjects, subjects, "subject"),
            _updated(self.samples, samples, "sample"),
        )

    def without(
        self, *, classes: Iterable[Label] = (), subjects: Iterable[str | None] = (), samples: Iterable[str] = ()
    ) -> Steering:
        """A copy without the entries naming these classes, subjects and samples."""
        gone_classes, gone_subjects, gone_samples = set(classes), set(subjects), set(samples)
        return Steering(
            {c: w for c, w in self.classes.items() if c not in gone_classes},
            {s: w for s, w in self.subjects.items() if s not in gone_subjects},
            {i: w for i, w in self.samples.items() if i not in gone_samples},
        )

    def sample_weight(self, sample_id: str, subject: str | None) -> float:
        """The weight of one sample's vote before its class's weight: its own times its subject's."""
        subject_weight = 1.0 if subject is None else self.subjects.get(subject, 1.0)
        return self.samples.get(sample_id, 1.0) * subject_weight

    def to_json(self) -> dict[str, list[list[Any]]]:
        """A JSON-ready form; pairs rather than objects, so integer class labels stay integers."""
        return {
            "classes": [[c, w] for c, w in sorted(self.classes.items(), key=lambda item: str(item[0]))],
            "subjects": [[s, w] for s, w in sorted(self.subjects.items())],
            "samples": [[i, w] for i, w in sorted(self.samples.items())],
        }

    @classmethod
    def from_json(cls, data: object) -> Steering:
        """Read :meth:`to_json`'s form, validating every name and weight."""
        if not isinstance(data, dict) or set(data) != {"classes", "subjects", "samples"}:
            raise SteeringError("A steering must be an object with 'classes', 'subjects' and 'samples'.")
        parts = {}
        for kind, name_types in (("classes", (int, str)), ("subjects", (str,)), ("samples", (str,))):
            pairs = data[kind]
            valid = isinstance(pairs, list) and all(
                isinstance(p, list) and len(p) == 2 and isinstance(p[0], name_types) and not isinstance(p[0], bool)
                for p in pairs
            )
            if not valid:
                raise SteeringError(f"Steering {kind!r} must be a list of [name, weight] pairs.")
            names = [p[0] for p in pairs]
            if len(set(names)) != len(names):
                raise SteeringError(f"Steering {kind!r} names an entry twice.")
            parts[kind] = _checked(dict(pairs), kind)
        return cls().with_weights(**parts)
