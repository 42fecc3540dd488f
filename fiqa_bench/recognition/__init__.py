"""Face-recognition models: embedding extractors on aligned chips."""

from fiqa_bench.recognition.base import ModelCard, RecognitionModel, TorchEmbeddingNet, TorchRecognitionModel
from fiqa_bench.recognition.registry import MODELS


def create_model(name: str, weights: "str | None" = None, device: str = "cpu") -> RecognitionModel:
    """Build the registered recognition model ``name``.

    Args:
        name: registry name or alias (``fiqa-bench list models``).
        weights: checkpoint path, for models that load a user's weights.
        device: torch device string.
    """
    from pathlib import Path

    from fiqa_bench.recognition import _builtin  # noqa: F401  (registers the built-in models)

    return MODELS.get(name)(Path(weights) if weights else None, device)


__all__ = ["MODELS", "ModelCard", "RecognitionModel", "TorchEmbeddingNet", "TorchRecognitionModel", "create_model"]
