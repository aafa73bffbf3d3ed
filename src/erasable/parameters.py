"""The model parameters a user sets, declared once: name, default and what it means.

The estimator's ``__init__``, the options of ``erasable learn`` and the service's
``POST /v1/models`` body take their defaults from :data:`DEFAULTS`, so a model built from
nothing is the same model whichever door it came through (``tests/test_parameters.py``
builds one through each and compares their configurations).

>>> DEFAULTS["feature_map"], DEFAULTS["width"]
('random_relu', 4096)
>>> PARAMETERS[0].name
'head'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULTS", "PARAMETERS", "Parameter"]


@dataclass(frozen=True)
class Parameter:
    """One model parameter: its name, its default, and one line of help."""

    name: str
    default: Any
    help: str


PARAMETERS: tuple[Parameter, ...] = (
    Parameter(
        "head",
        "ridge",
        "Head used for predictions: ridge, kernel (the random ReLU features' infinite-width limit, solved from "
        "the samples: +0.4-1.9 points over LogisticRegression on validation splits, O(n^3) per change, up to "
        "20,000 samples), "
        "prototype, gaussian or memory.",
    ),
    Parameter("feature_map", "random_relu", "Features of the ridge head: random_relu or identity."),
    Parameter(
        "width",
        4096,
        "Random ReLU width. 4096: 93.6% on BANKING77, 90.7% on HWU64 (8192: +0.3-0.5 points on validation "
        "splits, at 4x the statistics and 8x the derivation).",
    ),
    Parameter("seed", 0, "Seed of the random projection."),
    Parameter(
        "feature_bits",
        6,
        "Bits of each random ReLU feature (1-15; below 15 scale-free: divided by each input's norm). 6: within "
        "0.1 point of int16 features on validation splits, and the Gram sums in float32, twice as fast; 15 is "
        "the shifted int16 map of earlier models.",
    ),
    Parameter("scale_bits", 13, "Fixed-point scale: inputs are round(x * 2**scale_bits) in int16, so |x| < 4."),
    Parameter("alpha", None, "Ridge penalty; None chooses it by generalized cross-validation."),
    Parameter("temperature", 0.07, "Softmax temperature of the ridge probabilities."),
    Parameter("metric", "cosine", "Distance of the prototype head: cosine or euclidean."),
    Parameter("shrinkage", 0.05, "Shrinkage of the Gaussian head's covariance towards the identity."),
)

#: Each parameter's default, by name.
DEFAULTS: dict[str, Any] = {p.name: p.default for p in PARAMETERS}
