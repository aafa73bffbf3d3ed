"""Where samples and events live. For now the in-memory sample registry."""

from erasable.ledger.registry import SampleRegistry, UnknownSampleError

__all__ = ["SampleRegistry", "UnknownSampleError"]
