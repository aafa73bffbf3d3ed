"""Gradient-trained baselines on the same frozen features as erasable (torch, CPU).

They live in the benchmarks, not in the library: erasable itself never needs torch to learn.
"""
