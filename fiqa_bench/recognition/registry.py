"""The registry of recognition models.

Each entry is a factory ``(weights: Path | None, device: str) -> RecognitionModel``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from fiqa_bench.recognition.base import RecognitionModel
from fiqa_bench.registry import Registry

ModelFactory = Callable[[Path | None, str], RecognitionModel]

MODELS: Registry[ModelFactory] = Registry("recognition model")
