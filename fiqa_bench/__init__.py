"""fiqa-bench: a benchmarking suite for Face Image Quality Assessment."""

__version__ = "0.1.0"
