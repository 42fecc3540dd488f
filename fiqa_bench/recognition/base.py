"""The contract every face-recognition model (embedding extractor) follows.

A model takes aligned face chips (uint8 RGB, ``(N, H, W, 3)``, aligned to the
template named in its card) and returns L2-normalised embeddings
``(N, D)`` float32.  Models built on PyTorch also expose their network as a
:class:`TorchEmbeddingNet`, split into ``backbone`` (everything before the
embedding layer) and ``embedding`` (the final layer), because FIQA methods
need the inside of the network: SER-FIQ puts dropout between the two,
SDD-FIQA's regression network starts from the backbone, PFE reads the
backbone's features.  A network may also expose the outputs of its stages
(:meth:`TorchEmbeddingNet.stage_outputs`): the global average of each stage's
feature map, concatenated, describes an image at every scale the network
sees it (:meth:`TorchRecognitionModel.stage_features`).
"""

from __future__ import annotations

import hashlib
import weakref
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from fiqa_bench.faces.detector import DEFAULT_DETECTOR


@dataclass(frozen=True)
class ModelCard:
    """What a recognition model is and what it needs.

    Attributes:
        name: registry name.
        description: one line for ``fiqa-bench list models``.
        template: aligned-chip template the model expects (see
            :mod:`fiqa_bench.faces.templates`), e.g. ``"dlib150"``.
        embedding_dim: length of the embedding.
        weights: where the weights come from (file, package, "none").
        detector: the registered face detector its chips are cut after by default
            (:data:`~fiqa_bench.faces.detector.DETECTORS`; ``--detector`` overrides it).
    """

    name: str
    description: str
    template: str
    embedding_dim: int
    weights: str
    detector: str = DEFAULT_DETECTOR


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` divided by their Euclidean norm (``eps`` guards zero rows)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, eps)


def check_chips(chips: np.ndarray, size: int) -> None:
    """Raise ValueError unless ``chips`` is ``(N, size, size, 3)`` uint8."""
    if not isinstance(chips, np.ndarray) or chips.dtype != np.uint8:
        raise TypeError(f"chips must be a uint8 numpy array, got {type(chips).__name__} "
                        f"{getattr(chips, 'dtype', '')}")
    if chips.ndim != 4 or chips.shape[1:] != (size, size, 3):
        raise ValueError(f"chips must have shape (N, {size}, {size}, 3), got {chips.shape}")


class RecognitionModel(ABC):
    """An embedding extractor on aligned chips.

    ``reference`` is how to build it again: its registry name, or
    ``NAME@CHECKPOINT`` for a user's weights (set by
    :func:`~fiqa_bench.recognition.create_model`).
    """

    card: ModelCard
    reference: str = ""

    @property
    @abstractmethod
    def chip_size(self) -> int:
        """Side of the square chip the model takes."""

    @abstractmethod
    def embed(self, chips: np.ndarray) -> np.ndarray:
        """Embeddings of ``chips``.

        Args:
            chips: ``(N, S, S, 3)`` uint8 RGB chips, ``S == chip_size``.

        Returns:
            ``(N, D)`` float32, each row of unit Euclidean norm.
        """

    @abstractmethod
    def fingerprint(self) -> str:
        """A hex digest that changes whenever the model's output could change.

        Used as part of cache keys: weights hash + architecture/code version.
        """


class TorchEmbeddingNet(nn.Module):
    """A recognition network as ``embedding(backbone(preprocess(chips)))``.

    Subclasses set ``backbone`` and ``embedding`` and implement
    :meth:`preprocess` (uint8 NHWC RGB tensor -> float NCHW input).
    ``backbone_dim`` is the length of the flattened backbone output.
    Networks split into stages (resolution levels) list each stage's channel
    count in ``stage_widths`` and implement :meth:`stage_outputs`.
    """

    backbone: nn.Module
    embedding: nn.Module
    backbone_dim: int
    stage_widths: tuple[int, ...] = ()

    def preprocess(self, chips: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def stage_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature map ``(N, C_s, H_s, W_s)`` at the end of each stage, for preprocessed ``x``."""
        raise NotImplementedError(f"{type(self).__name__} does not expose the outputs of its stages")

    def stage_end_modules(self) -> list[nn.Module]:
        """The module whose output ends each stage, in order: :meth:`forward` computes, in those modules,
        the feature maps :meth:`stage_outputs` returns."""
        raise NotImplementedError(f"{type(self).__name__} does not expose the outputs of its stages")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.backbone(x))

    # A network handed out by create_model is read by every caller of its model in the process (see
    # share_network): it refuses what would change it for the others; copy.deepcopy gives an unshared copy.

    def train(self, mode: bool = True) -> TorchEmbeddingNet:
        if mode:
            _refuse_if_shared(self, "train")
        return super().train(mode)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        _refuse_if_shared(self, "load new weights into")
        super()._load_from_state_dict(*args, **kwargs)

    def _apply(self, *args: Any, **kwargs: Any) -> TorchEmbeddingNet:
        _refuse_if_shared(self, "move or convert")
        return super()._apply(*args, **kwargs)


#: The networks of the models :func:`~fiqa_bench.recognition.create_model` hands out, with their references.
_SHARED_NETWORKS: weakref.WeakKeyDictionary[TorchEmbeddingNet, str] = weakref.WeakKeyDictionary()


def share_network(network: TorchEmbeddingNet, reference: str) -> None:
    """Mark ``network`` as the one every caller of the model ``reference`` reads in this process.

    From then on it refuses to be put in training mode, to load weights and to
    be moved or converted (also as part of a larger module), with an error
    naming the way out: a caller that fine-tunes, reloads or moves a network
    works on its own ``copy.deepcopy(model.network)`` (a copy is not shared).
    """
    _SHARED_NETWORKS[network] = reference


def _refuse_if_shared(network: TorchEmbeddingNet, action: str) -> None:
    reference = _SHARED_NETWORKS.get(network)
    if reference is not None:
        raise RuntimeError(f"the network of recognition model {reference!r} is shared by every user of that model "
                           f"in this process; a caller that must {action} it works on its own copy: "
                           f"copy.deepcopy(model.network)")


class TorchRecognitionModel(RecognitionModel):
    """A :class:`RecognitionModel` backed by a :class:`TorchEmbeddingNet`.

    Args:
        card: the model's card.
        network: the network, in eval mode.
        chip_size: side of the square input chip.
        weights_digest: sha256 of the weights the network was loaded from.
        batch_size: chips per forward pass.
        device: torch device string.
    """

    def __init__(
        self,
        card: ModelCard,
        network: TorchEmbeddingNet,
        chip_size: int,
        weights_digest: str,
        batch_size: int = 64,
        device: str = "cpu",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.card = card
        self.network = network.to(device).eval()
        self._chip_size = chip_size
        self._weights_digest = weights_digest
        self.batch_size = batch_size
        self.device = device

    @property
    def chip_size(self) -> int:
        return self._chip_size

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(type(self.network).__qualname__.encode())
        h.update(self._weights_digest.encode())
        return h.hexdigest()

    def _run(self, chips: np.ndarray, stage: Callable[[torch.Tensor], torch.Tensor], width: int) -> np.ndarray:
        """``stage(preprocess(chips))`` flattened, in batches: ``(N, width)`` float32 (``(0, width)`` for none)."""
        check_chips(chips, self.chip_size)
        out = [np.zeros((0, width), np.float32)]
        with torch.inference_mode():
            for start in range(0, len(chips), self.batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(chips[start : start + self.batch_size]))
                x = self.network.preprocess(batch.to(self.device))
                out.append(stage(x).flatten(1).float().cpu().numpy())
        return np.concatenate(out)

    def embed(self, chips: np.ndarray) -> np.ndarray:
        return l2_normalise(self._run(chips, self.network, self.card.embedding_dim)).astype(np.float32)

    def backbone_features(self, chips: np.ndarray) -> np.ndarray:
        """Flattened backbone output (before the embedding layer), ``(N, backbone_dim)``."""
        return self._run(chips, self.network.backbone, self.network.backbone_dim)

    def stage_features(self, chips: np.ndarray) -> np.ndarray:
        """Each stage's output averaged over space, concatenated: ``(N, sum(stage_widths))``.

        ``f(x) = [mean_hw S_1(x), ..., mean_hw S_L(x)]`` with ``S_l`` the
        feature map at the end of stage ``l``.  Early stages keep low-level
        appearance (sharpness, noise, lighting) that the last stage has
        largely discarded, so a quality head sees more than the final stage.
        """
        width = sum(self.network.stage_widths)
        if not width:
            raise NotImplementedError(f"{self.card.name}: its network does not expose stage outputs")

        def pooled(x: torch.Tensor) -> torch.Tensor:
            return torch.cat([s.mean(dim=(2, 3)) for s in self.network.stage_outputs(x)], dim=1)

        return self._run(chips, pooled, width)

    def embed_in_one_pass(self, chips: np.ndarray, outputs: Sequence[str]) -> dict[str, np.ndarray]:
        """:meth:`embed`, :meth:`stage_features` and :meth:`backbone_features` of the same chips, those named in
        ``outputs`` (``"embedding"``, ``"stages"``, ``"backbone"``), from one forward pass.

        Forward hooks see what :meth:`embed`'s pass computes: on each module of
        ``network.stage_end_modules()`` (averaged over space) and on ``network.backbone`` (flattened), before
        any later module runs: the numbers of separate passes, bit for bit (tested), in the time of one.
        """
        unknown = sorted(set(outputs) - {"embedding", "stages", "backbone"})
        if unknown:
            raise ValueError(f"no output {', '.join(unknown)}; one pass gives embedding, stages and backbone")
        width = sum(self.network.stage_widths)
        if "stages" in outputs and not width:
            raise NotImplementedError(f"{self.card.name}: its network does not expose stage outputs")
        pooled: list[list[torch.Tensor]] = [[] for _ in self.network.stage_widths]
        backbone: list[torch.Tensor] = []

        def keep(stage: int) -> Callable[[nn.Module, object, torch.Tensor], None]:
            def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
                pooled[stage].append(output.mean(dim=(2, 3)).float().cpu())
            return hook

        def keep_backbone(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            backbone.append(output.flatten(1).float().cpu())

        handles = []
        if "stages" in outputs:
            handles += [m.register_forward_hook(keep(k)) for k, m in enumerate(self.network.stage_end_modules())]
        if "backbone" in outputs:
            handles.append(self.network.backbone.register_forward_hook(keep_backbone))
        try:
            embeddings = self.embed(chips)
        finally:
            for handle in handles:
                handle.remove()
        out = {"embedding": embeddings}
        if "stages" in outputs:
            out["stages"] = (torch.cat([torch.cat(parts) for parts in pooled], dim=1).numpy() if len(chips)
                             else np.zeros((0, width), np.float32))
        if "backbone" in outputs:
            out["backbone"] = (torch.cat(backbone).numpy() if len(chips)
                               else np.zeros((0, self.network.backbone_dim), np.float32))
        return {name: out[name] for name in outputs}
