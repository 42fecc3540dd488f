"""Tests of the arcface_torch IResNet backbones (random weights; no real checkpoint needed)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from fiqa_bench.recognition import iresnet
from fiqa_bench.recognition.base import TorchRecognitionModel
from fiqa_bench.recognition.registry import MODELS

# Published arcface_torch sizes (ONNX exports: r50 ~167 MiB, r100 ~249 MiB of float32).
PUBLISHED_PARAMS = {"iresnet50": 43.6e6, "iresnet100": 65.2e6}


def _randomise_buffers(net: torch.nn.Module, seed: int) -> None:
    """Non-trivial BN statistics and PReLU slopes, so the loaded buffers matter."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.normal_(0.0, 0.1, generator=gen)
                module.running_var.uniform_(0.5, 2.0, generator=gen)
                module.bias.normal_(0.0, 0.1, generator=gen)
            elif isinstance(module, torch.nn.PReLU):
                module.weight.uniform_(0.0, 0.5, generator=gen)


@pytest.fixture(scope="module")
def r50(tmp_path_factory: pytest.TempPathFactory) -> tuple[iresnet.IResNet, Path]:
    torch.manual_seed(0)
    net = iresnet.build_iresnet("iresnet50")
    _randomise_buffers(net, seed=1)
    path = tmp_path_factory.mktemp("ckpt") / "backbone.pth"
    torch.save(net.state_dict(), path)
    return net.eval(), path


@pytest.fixture(scope="module")
def chips() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (2, 112, 112, 3), dtype=np.uint8)


def _load(path: Path, arch: str = "iresnet50") -> TorchRecognitionModel:
    return MODELS.get(arch).build(path, "cpu")


@pytest.fixture(scope="module")
def loaded(r50: tuple[iresnet.IResNet, Path]) -> TorchRecognitionModel:
    """The random iresnet50 checkpoint loaded through the registry (loaded once: ~1 s)."""
    return _load(r50[1])


def test_registered_cards() -> None:
    for arch in ("iresnet50", "iresnet100"):
        assert arch in MODELS
        card = iresnet.CARDS[arch]
        assert (card.template, card.embedding_dim) == ("arcface112", 512)
        assert "--weights PATH" in MODELS.entry(arch).description


def test_state_dict_uses_arcface_torch_keys() -> None:
    keys = set(iresnet.build_iresnet("iresnet50").state_dict())
    for key in ("conv1.weight", "bn1.running_var", "prelu.weight", "layer1.0.bn1.weight",
                "layer1.0.conv1.weight", "layer1.0.prelu.weight", "layer1.0.bn3.bias",
                "layer1.0.downsample.0.weight", "layer1.0.downsample.1.running_mean",
                "layer3.13.conv2.weight", "layer4.2.bn3.weight", "bn2.weight", "fc.weight",
                "fc.bias", "features.weight", "features.running_mean"):
        assert key in keys, key
    assert "layer3.14.conv1.weight" not in keys
    assert "layer1.1.downsample.0.weight" not in keys
    assert not any(k.startswith(("backbone.", "embedding.", "_views")) for k in keys)


def test_parameter_counts_match_published_sizes() -> None:
    for arch, published in PUBLISHED_PARAMS.items():
        net = iresnet.build_iresnet(arch)
        count = sum(p.numel() for p in net.parameters())
        assert abs(count - published) / published < 0.01, (arch, count)


def test_iresnet100_tiny_forward() -> None:
    net = iresnet.build_iresnet("iresnet100").eval()
    chip = torch.zeros((1, 112, 112, 3), dtype=torch.uint8)
    with torch.inference_mode():
        feats = net.backbone(net.preprocess(chip))
        emb = net.embedding(feats)
    assert feats.shape == (1, 25088) and emb.shape == (1, 512)
    assert torch.isfinite(emb).all()


def test_weights_are_required() -> None:
    with pytest.raises(ValueError, match="--weights PATH"):
        MODELS.get("iresnet50").build(None, "cpu")


def test_missing_checkpoint_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        _load(missing)


def test_shapes_and_unit_norm(loaded: TorchRecognitionModel, chips: np.ndarray) -> None:
    model = loaded
    assert model.chip_size == 112 and model.card.name == "iresnet50"
    emb = model.embed(chips)
    assert emb.shape == (2, 512) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    feats = model.backbone_features(chips)
    assert feats.shape == (2, 25088)
    stages = model.stage_features(chips)
    assert stages.shape == (2, 64 + 128 + 256 + 512) and np.isfinite(stages).all()
    assert model.embed(chips[:0]).shape == (0, 512)


def test_loaded_model_reproduces_the_saved_network(
    r50: tuple[iresnet.IResNet, Path], loaded: TorchRecognitionModel, chips: np.ndarray
) -> None:
    net, path = r50
    with torch.inference_mode():
        expected = net(net.preprocess(torch.from_numpy(chips))).numpy()
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    first, second = loaded, _load(path)
    np.testing.assert_allclose(first.embed(chips), expected, atol=1e-5)
    np.testing.assert_array_equal(first.embed(chips), second.embed(chips))
    assert first.fingerprint() == second.fingerprint()
    assert first._weights_digest == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("wrap", ["module", "state_dict", "model+module"])
def test_prefixed_and_wrapped_checkpoints_load(
    r50: tuple[iresnet.IResNet, Path], loaded: TorchRecognitionModel, chips: np.ndarray,
    tmp_path: Path, wrap: str,
) -> None:
    net = r50[0]
    state = net.state_dict()
    if "module" in wrap:
        state = {f"module.{k}": v for k, v in state.items()}
    if wrap == "state_dict":
        state = {"state_dict": state, "epoch": 3}
    elif wrap.startswith("model"):
        state = {"model": state}
    other = tmp_path / "wrapped.pth"
    torch.save(state, other)
    model = _load(other)
    np.testing.assert_array_equal(model.embed(chips[:1]), loaded.embed(chips[:1]))
    assert model.fingerprint() != loaded.fingerprint()  # different file bytes


def test_missing_num_batches_tracked_is_tolerated(r50: tuple[iresnet.IResNet, Path], tmp_path: Path) -> None:
    state = {k: v for k, v in r50[0].state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "exported.pth")
    assert _load(tmp_path / "exported.pth").embed(np.zeros((1, 112, 112, 3), np.uint8)).shape == (1, 512)


def test_wrong_depth_checkpoint_lists_missing_keys(r50: tuple[iresnet.IResNet, Path]) -> None:
    with pytest.raises(ValueError, match=r"missing keys: layer2\.4\.bn1\.weight") as info:
        _load(r50[1], "iresnet100")
    assert "iresnet100" in str(info.value)


def test_wrong_keys_and_shapes_are_listed(r50: tuple[iresnet.IResNet, Path], tmp_path: Path) -> None:
    state = dict(r50[0].state_dict())
    state["head.weight"] = state.pop("fc.weight")
    state["features.bias"] = torch.zeros(256)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError) as info:
        _load(tmp_path / "bad.pth")
    message = str(info.value)
    assert "missing keys: fc.weight" in message
    assert "unexpected keys: head.weight" in message
    assert "features.bias (256,) != (512,)" in message


def test_non_checkpoints_raise_value_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth"):
        _load(junk)
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(ValueError, match="mapping"):
        _load(listed)
    mixed = tmp_path / "mixed.pth"
    torch.save({"conv1.weight": torch.zeros(1), "note": "hello"}, mixed)
    with pytest.raises(ValueError, match="'note'"):
        _load(mixed)


def test_preprocess_scales_rgb_to_unit_range() -> None:
    net = iresnet.build_iresnet("iresnet50")
    chip = torch.zeros((1, 112, 112, 3), dtype=torch.uint8)
    chip[..., 0] = 255
    chip[..., 1] = 0
    chip[..., 2] = 128
    x = net.preprocess(chip)
    assert x.shape == (1, 3, 112, 112) and x.dtype == torch.float32
    assert x[0, 0].eq(1.0).all() and x[0, 1].eq(-1.0).all()
    assert torch.allclose(x[0, 2], torch.tensor(128 / 127.5 - 1.0), atol=1e-6)
    with pytest.raises(TypeError):
        net.preprocess(chip.float())
    with pytest.raises(ValueError):
        net.preprocess(chip[:, :100])


def test_backbone_and_embedding_share_the_network_modules() -> None:
    net = iresnet.build_iresnet("iresnet50")
    own = {id(p) for p in net.parameters()}
    split = [id(p) for p in net.backbone.parameters()] + [id(p) for p in net.embedding.parameters()]
    assert set(split) == own and len(split) == len(own)
    net.eval()
    assert not any(m.training for m in net.backbone.modules() if m is not net.backbone)
    assert net.backbone_dim == 25088


def test_one_pass_gives_the_embedding_and_the_stage_features(loaded: TorchRecognitionModel) -> None:
    """Forward hooks on layer1..layer4 and on the backbone see what ``stage_outputs`` and ``backbone``
    compute: the same bits as separate passes."""
    chips = np.random.default_rng(5).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    out = loaded.embed_in_one_pass(chips, ("embedding", "stages", "backbone"))
    np.testing.assert_array_equal(out["embedding"], loaded.embed(chips))
    np.testing.assert_array_equal(out["stages"], loaded.stage_features(chips))
    np.testing.assert_array_equal(out["backbone"], loaded.backbone_features(chips))
    empty = loaded.embed_in_one_pass(chips[:0], ("embedding", "stages", "backbone"))
    assert [a.shape for a in empty.values()] == [(0, 512), (0, sum(loaded.network.stage_widths)), (0, 25088)]
