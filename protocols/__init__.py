"""Evaluation protocols, one file each; every module here is imported on first use.

A protocol module registers a runner in :data:`fiqa_bench.method.PROTOCOLS`.
Files whose name starts with ``_`` are not imported.
"""
