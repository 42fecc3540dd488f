"""Imports the modules that register the built-in recognition models."""

from fiqa_bench.recognition import dlib_resnet, iresnet, lbp, mobilefacenet  # noqa: F401
