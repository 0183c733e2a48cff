"""The applications the benchmarks serve: Pyramid with the hook, and the Flask and Starlette peers.

Each exposes ``/bench/none`` (no deferred work) and one or more routes that defer the same
work (:mod:`benchmarks.apps.work`), each its own way.
"""
