"""Benchmarks (issue 6): ``make bench`` runs them all; they are programs, not tests.

Nothing here asserts a timing. Results go to ``benchmarks/results/`` (raw JSON and a chart) and
to ``BENCHMARKS.md`` at the repository root.
"""
