"""IResNet-50 / IResNet-100 face-recognition backbones (insightface ``arcface_torch``).

The "improved" residual network of Duta et al. (2020) in the form used by
ArcFace (Deng et al., 2019) and insightface's ``arcface_torch`` training code.
It takes a 112x112 RGB chip aligned to the ArcFace 5-point template
(``"arcface112"``) and returns a 512-d embedding.  This module rebuilds the
architecture with the same ``state_dict`` key names as ``arcface_torch``, so a
user's trained ``backbone.pth`` (a plain state dict) loads with ``strict=True``.
No weights ship with the suite: the factory requires a checkpoint
(``--weights PATH``).

Architecture (input ``x`` of shape ``(N, 3, 112, 112)``)::

    x = (chip / 255 - 0.5) / 0.5                       # preprocessing, RGB
    x = PReLU(BN(conv3x3_64(x)))                       # stem: conv1, bn1, prelu
    x = layer4(layer3(layer2(layer1(x))))              # 64, 128, 256, 512 channels
    f = flatten(BN(x))                                 # bn2 -> (N, 512*7*7) = (N, 25088)
    e = BN1d(fc(dropout(f)))                           # fc: 25088 -> 512; features

Each stage starts with a stride-2 block (112 -> 56 -> 28 -> 14 -> 7) and has
``(3, 4, 14, 3)`` blocks for IResNet-50 and ``(3, 13, 30, 3)`` for IResNet-100.
One ``IBasicBlock`` computes::

    y = BN3(conv3x3_s(PReLU(BN2(conv3x3(BN1(x)))))) + shortcut(x)
    shortcut(x) = BN(conv1x1_s(x))   if the stride or the width changes, else x

(no activation after the addition: the "pre-activation"-style ordering of the
improved ResNet).  Split for :class:`TorchEmbeddingNet`: ``backbone`` is the
stem, the four stages, ``bn2`` and the flatten (output 25088 = 512*7*7, the
feature map before the embedding layer); ``embedding`` is dropout, ``fc`` and
the ``features`` BatchNorm1d.

References:
    J. Deng, J. Guo, N. Xue, S. Zafeiriou. "ArcFace: Additive Angular Margin
    Loss for Deep Face Recognition." CVPR 2019.
    I. C. Duta, L. Liu, F. Zhu, L. Shao. "Improved Residual Networks for Image
    and Video Recognition." ICPR 2020 (arXiv:2004.04989).
    insightface, ``recognition/arcface_torch/backbones/iresnet.py`` (key names).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from fiqa_bench.pipeline.hashing import sha256_file
from fiqa_bench.recognition.base import ModelCard, TorchEmbeddingNet, TorchRecognitionModel
from fiqa_bench.recognition.registry import ModelFactory, register_model

CHIP_SIZE = 112
"""Side of the square input chip (ArcFace template)."""
EMBEDDING_DIM = 512
"""Length of the embedding (``fc`` output)."""
FINAL_WIDTH = 512
"""Channels of the last stage."""
FINAL_SIDE = CHIP_SIZE // 16
"""Side of the last feature map: four stride-2 stages, 112 / 16 = 7."""
BACKBONE_DIM = FINAL_WIDTH * FINAL_SIDE * FINAL_SIDE
"""Length of the flattened backbone output, 512 * 7 * 7 = 25088."""
STAGE_WIDTHS = (64, 128, 256, 512)
"""Channels of the four residual stages."""
ARCHITECTURES: dict[str, tuple[int, int, int, int]] = {
    "iresnet50": (3, 4, 14, 3),
    "iresnet100": (3, 13, 30, 3),
}
"""Blocks per stage of each registered depth."""
_WRAPPER_KEYS = ("state_dict", "model")
_DDP_PREFIX = "module."


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution (projection shortcut), no bias."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class IBasicBlock(nn.Module):
    """``BN - conv3x3 - BN - PReLU - conv3x3(stride) - BN`` plus a shortcut.

    Args:
        in_channels: channels of the block's input.
        channels: channels of the block's output.
        stride: stride of the second convolution (and of the projection).
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.bn1 = nn.BatchNorm2d(in_channels, eps=1e-5)
        self.conv1 = _conv3x3(in_channels, channels)
        self.bn2 = nn.BatchNorm2d(channels, eps=1e-5)
        self.prelu = nn.PReLU(channels)
        self.conv2 = _conv3x3(channels, channels, stride)
        self.bn3 = nn.BatchNorm2d(channels, eps=1e-5)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                _conv1x1(in_channels, channels, stride), nn.BatchNorm2d(channels, eps=1e-5)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


def _make_stage(in_channels: int, channels: int, blocks: int) -> nn.Sequential:
    """A stage: one stride-2 block (with projection), then ``blocks - 1`` identity blocks."""
    if blocks < 1:
        raise ValueError(f"a stage needs at least one block, got {blocks}")
    layers = [IBasicBlock(in_channels, channels, stride=2)]
    layers += [IBasicBlock(channels, channels) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class IResNet(TorchEmbeddingNet):
    """The arcface_torch IResNet, with the flat key layout of its checkpoints.

    The modules are registered under arcface_torch's names (``conv1``,
    ``bn1``, ``prelu``, ``layer1`` ... ``layer4``, ``bn2``, ``dropout``,
    ``fc``, ``features``), so :meth:`state_dict` matches a ``backbone.pth``.
    ``backbone`` and ``embedding`` are :class:`nn.Sequential` views over the
    same module objects; they are not registered as children, so they add no
    keys, while ``.to()``, ``.eval()`` and ``.parameters()`` reach the shared
    modules through either path.

    Args:
        layers: blocks in each of the four stages.
        dropout: dropout probability before ``fc`` (0 at inference).
        num_features: embedding length.
    """

    def __init__(
        self, layers: tuple[int, int, int, int], dropout: float = 0.0, num_features: int = EMBEDDING_DIM
    ) -> None:
        super().__init__()
        if len(layers) != 4:
            raise ValueError(f"layers must list 4 stage depths, got {layers!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.layers = tuple(int(n) for n in layers)
        self.backbone_dim = BACKBONE_DIM
        self.stage_widths = STAGE_WIDTHS
        self.conv1 = _conv3x3(3, STAGE_WIDTHS[0])
        self.bn1 = nn.BatchNorm2d(STAGE_WIDTHS[0], eps=1e-5)
        self.prelu = nn.PReLU(STAGE_WIDTHS[0])
        widths = (STAGE_WIDTHS[0],) + STAGE_WIDTHS
        self.layer1 = _make_stage(widths[0], widths[1], self.layers[0])
        self.layer2 = _make_stage(widths[1], widths[2], self.layers[1])
        self.layer3 = _make_stage(widths[2], widths[3], self.layers[2])
        self.layer4 = _make_stage(widths[3], widths[4], self.layers[3])
        self.bn2 = nn.BatchNorm2d(FINAL_WIDTH, eps=1e-5)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(BACKBONE_DIM, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)
        # arcface_torch fixes the scale of the last BN at 1 (it is not trained).
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False
        # A tuple is not registered by nn.Module: the views add no state_dict keys.
        self._views = (
            nn.Sequential(self.conv1, self.bn1, self.prelu, self.layer1, self.layer2,
                          self.layer3, self.layer4, self.bn2, nn.Flatten(1)),
            nn.Sequential(self.dropout, self.fc, self.features),
        )

    @property
    def backbone(self) -> nn.Module:  # type: ignore[override]
        """Stem, stages, ``bn2``, flatten: ``(N, 3, 112, 112) -> (N, 25088)``."""
        return self._views[0]

    @property
    def embedding(self) -> nn.Module:  # type: ignore[override]
        """Dropout, ``fc``, ``features``: ``(N, 25088) -> (N, 512)``."""
        return self._views[1]

    def stage_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of ``layer1`` ... ``layer4`` (64, 128, 256, 512 channels)."""
        x = self.prelu(self.bn1(self.conv1(x)))
        outputs = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            outputs.append(x)
        return outputs

    def stage_end_modules(self) -> list[nn.Module]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def train(self, mode: bool = True) -> IResNet:
        """Set the mode of the network and of the (unregistered) view containers."""
        super().train(mode)
        for view in self._views:
            view.train(mode)
        return self

    def preprocess(self, chips: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, 112, 112, 3)`` RGB -> float ``(N, 3, 112, 112)``, ``(x/255 - 0.5)/0.5``."""
        if chips.dtype != torch.uint8:
            raise TypeError(f"chips must be a uint8 tensor, got {chips.dtype}")
        if chips.ndim != 4 or tuple(chips.shape[1:]) != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"chips must have shape (N, {CHIP_SIZE}, {CHIP_SIZE}, 3), got {tuple(chips.shape)}")
        x = chips.permute(0, 3, 1, 2).float().div_(255.0)
        return x.sub_(0.5).div_(0.5).contiguous()


def build_iresnet(arch: str) -> IResNet:
    """An untrained ``"iresnet50"`` or ``"iresnet100"`` network."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown IResNet architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    return IResNet(ARCHITECTURES[arch])


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The state dict in the checkpoint at ``path``, unwrapped and without ``module.``.

    Accepts a plain state dict (arcface_torch's ``backbone.pth``) or a dict
    that holds one under ``"state_dict"`` or ``"model"``; strips the
    ``"module."`` prefix that DataParallel / DistributedDataParallel add.
    """
    if not path.is_file():
        raise FileNotFoundError(f"IResNet checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise ValueError(
            f"{path}: not a loadable PyTorch state dict ({type(exc).__name__}: {str(exc)[:200]}); "
            "save the backbone with torch.save(model.state_dict(), path)"
        ) from exc
    return _normalise_state(_unwrap(obj, path), path)


def _unwrap(obj: Any, path: Path) -> Mapping[str, Any]:
    """The state dict inside ``obj`` (itself, or under a wrapper key)."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a state dict (a mapping), got {type(obj).__name__}")
    for key in _WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping):
            return inner
    return obj


def _normalise_state(state: Mapping[str, Any], path: Path) -> dict[str, torch.Tensor]:
    """Strip ``module.`` prefixes; reject non-tensor values."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise ValueError(f"{path}: state dict keys must be strings, got {key!r}")
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor")
        out[key.removeprefix(_DDP_PREFIX)] = value
    return out


def _few(keys: list[str], n: int = 5) -> str:
    """Up to ``n`` keys, then how many more."""
    shown = ", ".join(keys[:n])
    return shown + (f", ... ({len(keys) - n} more)" if len(keys) > n else "")


def check_state_dict(network: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise ValueError, listing a few offending keys, unless ``state`` fits ``network``.

    Keys are listed in network (resp. checkpoint) order, so the first missing
    key shows where the layouts part.  ``num_batches_tracked`` buffers may be
    absent (exported checkpoints drop them; they do not affect inference).
    """
    expected = {k: v.shape for k, v in network.state_dict().items()}
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} != {tuple(shape)}"
        for k, shape in expected.items()
        if k in state and state[k].shape != shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_few(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches: {_few(mismatched)}")
    if problems:
        raise ValueError(f"{source}: " + "; ".join(problems))


def load_weights(network: IResNet, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Check ``state`` against ``network`` and load it (strictly, bar ``num_batches_tracked``)."""
    check_state_dict(network, state, source)
    full = dict(network.state_dict())
    full.update(state)
    network.load_state_dict(full, strict=True)


def _card(arch: str) -> ModelCard:
    depth = arch.removeprefix("iresnet")
    return ModelCard(
        name=arch,
        description=f"insightface arcface_torch IResNet-{depth}, 112x112 ArcFace chips, 512-d "
        "(needs --weights PATH: your backbone.pth)",
        template="arcface112",
        embedding_dim=EMBEDDING_DIM,
        weights="user checkpoint (--weights PATH, arcface_torch backbone.pth state dict)",
    )


CARDS: dict[str, ModelCard] = {arch: _card(arch) for arch in ARCHITECTURES}


def load_iresnet(
    arch: str, weights: Path | None, device: str = "cpu", batch_size: int = 64
) -> TorchRecognitionModel:
    """A :class:`TorchRecognitionModel` for ``arch`` loaded from the checkpoint ``weights``.

    Raises:
        ValueError: ``weights`` is None, not a state dict, or does not fit ``arch``.
        FileNotFoundError: ``weights`` does not exist.
    """
    if weights is None:
        raise ValueError(
            f"{arch} ships without weights: pass your arcface_torch checkpoint with "
            f"--weights PATH (a backbone.pth state dict for {arch})"
        )
    path = Path(weights)
    state = read_checkpoint(path)
    network = build_iresnet(arch)
    load_weights(network, state, f"checkpoint {path} does not fit {arch}")
    return TorchRecognitionModel(
        CARDS[arch], network, CHIP_SIZE, sha256_file(path), batch_size=batch_size, device=device
    )


def _builder(arch: str) -> ModelFactory:
    def build(weights: Path | None, device: str) -> TorchRecognitionModel:
        return load_iresnet(arch, weights, device)

    build.__name__ = f"build_{arch}"
    build.__doc__ = f"Build {arch} from the user checkpoint ``weights`` on ``device``."
    return build


for _arch in ARCHITECTURES:
    register_model(CARDS[_arch], _builder(_arch))
