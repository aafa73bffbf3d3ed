"""erasable: classification whose knowledge can be added and removed exactly.

A frozen encoder embeds the inputs; everything learned on top is integer statistics, so
learning adds, forgetting subtracts, merging sums -- and the result is bit-identical to
retraining from scratch on what remains, with a certificate (SHA-256) to prove it.

>>> import numpy as np
>>> from erasable import ErasableClassifier
>>> X = np.array([[0.9, 0.1], [0.8, 0.0], [0.1, 0.9], [0.0, 0.7]])
>>> clf = ErasableClassifier(width=64).fit(X, ["no", "no", "yes", "yes"], ids=["a", "b", "c", "d"])
>>> clf.predict([[0.85, 0.05]]).tolist()
['no']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from erasable.model import Model, ModelConfig
from erasable.model_file import ModelFileError, load_model, save_model

if TYPE_CHECKING:
    from erasable.estimator import ErasableClassifier

__all__ = ["ErasableClassifier", "Model", "ModelConfig", "ModelFileError", "__version__", "load_model", "save_model"]


def __getattr__(name: str) -> Any:
    """``ErasableClassifier`` on first use: it imports scikit-learn (1.7 s), which commands that only load,
    predict or forget do not need."""
    if name == "ErasableClassifier":
        from erasable.estimator import ErasableClassifier

        return ErasableClassifier
    raise AttributeError(f"module 'erasable' has no attribute {name!r}")
