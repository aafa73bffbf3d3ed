"""Evaluating erasable against the field: continual-learning and unlearning metrics, protocols and reports.

The pieces are plain functions of arrays (accuracy matrices, probabilities, splits), so the
benchmarks, the tests and ``erasable audit`` use the same code.
"""
