"""Tests of the dlib .dat reader and the PyTorch port of dlib's face-recognition ResNet.

Fast tests use hand-built byte strings and random weights; the acceptance test
compares the port with ``dlib.face_recognition_model_v1`` on 200 real LFW chips spread over
the whole set (``benchmarks/bench_dlib_port.py`` compares more and times both).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fiqa_bench.recognition.dlib_resnet import (
    BLOCKS,
    DlibResNet,
    _add_padded,
    expected_layers,
    load_dlib_resnet,
)
from fiqa_bench.recognition.dlib_serialization import (
    TAG_OR_SKIP,
    DlibFormatError,
    DlibReader,
    parse_dlib_network,
)

MODEL_NAME = "dlib_face_recognition_resnet_model_v1.dat"


def _model_path() -> Path:
    from fiqa_bench.pipeline.paths import dlib_model_file

    try:
        return dlib_model_file(MODEL_NAME)
    except FileNotFoundError as exc:
        pytest.skip(f"dlib's model file is not installed: {exc}")


# ------------------------------------------------------------------------------------
# A tiny writer of dlib's format, used to build test streams.

def enc_int(v: int) -> bytes:
    mag = abs(v).to_bytes(max(1, (abs(v).bit_length() + 7) // 8), "little")
    return bytes([len(mag) | (0x80 if v < 0 else 0)]) + mag


def enc_float(mantissa: int, exponent: int) -> bytes:
    return enc_int(mantissa) + enc_int(exponent)


def enc_str(s: str) -> bytes:
    return enc_int(len(s)) + s.encode()


def enc_tensor(a: np.ndarray) -> bytes:
    dims = (1,) * (4 - a.ndim) + a.shape if a.ndim < 4 else a.shape
    return enc_int(2) + b"".join(enc_int(d) for d in dims) + a.astype("<f4").tobytes()


def enc_alias(*dims: int) -> bytes:
    return enc_int(1) + b"".join(enc_int(d) for d in dims)


ONE = enc_float(16, -4)
ZERO = enc_float(0, 11)
EMPTY = enc_tensor(np.zeros((0, 0, 0, 0), np.float32))
WRAPPER_TAIL = b"110" + EMPTY * 3


# ------------------------------------------------------------------------------------
# Primitives.

@pytest.mark.parametrize("raw, value", [
    (b"\x01\x00", 0),
    (b"\x01\x01", 1),
    (b"\x01\x7f", 127),
    (b"\x02\x00\x01", 256),
    (b"\x81\x1c", -28),
    (b"\x81\x01", -1),
    (b"\x83\x70\x11\x01", -70000),
    (b"\x08" + (2**63 - 1).to_bytes(8, "little"), 2**63 - 1),
])
def test_packed_int(raw: bytes, value: int) -> None:
    r = DlibReader(raw)
    assert r.read_int(8) == value
    assert r.remaining == 0
    assert enc_int(value) == raw


def test_packed_int_roundtrip() -> None:
    rng = np.random.default_rng(0)
    values = [int(v) for v in rng.integers(-(2**62), 2**62, 200)] + [0, -1, 1, 255, -256]
    r = DlibReader(b"".join(enc_int(v) for v in values))
    assert [r.read_int(8) for _ in values] == values


def test_packed_int_errors() -> None:
    with pytest.raises(ValueError, match="control byte"):
        DlibReader(b"\x00").read_int()  # size 0 is never written
    with pytest.raises(ValueError, match="control byte"):
        DlibReader(b"\x05\x00\x00\x00\x00\x01").read_int(4)  # too wide for an int
    with pytest.raises(ValueError, match="control byte"):
        DlibReader(b"\x81\x01").read_uint()  # sign bit on an unsigned type


def test_floats() -> None:
    r = DlibReader(ONE + ZERO + enc_float(-3, -1) + b"\x03\x0a\xd7\xa3\x81\x1c"
                   + enc_float(0, 32000) + enc_float(0, 32001) + enc_float(0, 32002))
    assert r.read_float() == 1.0
    assert r.read_float() == 0.0
    assert r.read_float() == -1.5
    assert r.read_float(float32=True) == float(np.float32(0.04))  # bytes from the real file
    assert r.read_float() == math.inf
    assert r.read_float() == -math.inf
    assert math.isnan(r.read_float())
    assert r.remaining == 0


def test_old_ascii_float_is_rejected() -> None:
    with pytest.raises(ValueError, match="ASCII"):
        DlibReader(b"1.5 ").read_float()


def test_strings_and_bools() -> None:
    r = DlibReader(enc_str("con_4") + enc_str("") + b"10")
    assert r.read_string() == "con_4"
    assert r.read_string() == ""
    assert r.read_bool() is True
    assert r.read_bool() is False
    with pytest.raises(ValueError, match="ASCII '0' or '1'"):
        DlibReader(b"\x01").read_bool()


def test_tensors() -> None:
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) - 5.5
    r = DlibReader(enc_tensor(a) + enc_alias(3, 4, 1, 1))
    got = r.read_tensor()
    assert got.dtype == np.float32 and got.shape == (2, 3, 2, 2)
    np.testing.assert_array_equal(got, a)
    assert r.read_alias_tensor() == (3, 4, 1, 1)
    with pytest.raises(ValueError, match="version 1"):
        DlibReader(enc_int(1) + enc_int(0) * 4).read_tensor()


def test_truncated_stream_names_source_and_offset() -> None:
    with pytest.raises(DlibFormatError, match=r"model\.dat: at byte offset 1: truncated"):
        DlibReader(b"\x02\x00", "model.dat").read_int()
    with pytest.raises(ValueError, match="truncated.*tensor data"):
        DlibReader(enc_tensor(np.ones((1, 1, 2, 2), np.float32))[:-3]).read_tensor()
    with pytest.raises(ValueError, match="truncated"):
        DlibReader(enc_int(10) + b"abc").read_string()
    with pytest.raises(ValueError, match="truncated"):
        DlibReader(b"").read_bool()


# ------------------------------------------------------------------------------------
# Whole networks, hand-built.

def _tiny_network(extra: bytes = b"") -> bytes:
    """loss_metric<fc_no_bias<2, relu<tag1<con<2,1,1,1,1, input_rgb_image_sized<4>>>>>>."""
    w = np.arange(6, dtype=np.float32)  # 2 filters, 3 channels, 1x1
    b = np.array([0.5, -0.5], np.float32)
    con = (enc_str("con_4") + enc_tensor(np.concatenate([w, b]).reshape(8, 1, 1, 1))
           + enc_int(2) + enc_int(1) + enc_int(1) + enc_int(1) + enc_int(1) + enc_int(0) + enc_int(0)
           + enc_alias(2, 3, 1, 1) + enc_alias(1, 2, 1, 1) + ONE + ONE + ONE + ZERO)
    fcw = np.arange(64, dtype=np.float32).reshape(32, 2)
    fc = (enc_str("fc_2") + enc_int(2) + enc_int(32) + enc_tensor(fcw.reshape(64, 1, 1, 1))
          + enc_alias(32, 2, 1, 1) + enc_alias(0, 0, 0, 0) + enc_int(1) + ONE + ONE + ONE + ZERO)
    inp = (enc_str("input_rgb_image_sized") + enc_float(1, 0) + enc_float(2, 0) + enc_float(3, 0)
           + enc_int(4) + enc_int(4))
    return (enc_int(1) + enc_str("loss_metric_2") + enc_float(1, -2) + enc_float(3, -2)
            + enc_int(2) + enc_int(2) + enc_int(1) + enc_int(3)  # fc, relu, tag, con (v3)
            + inp
            + con + WRAPPER_TAIL + enc_int(1)  # v3: sample_expansion_factor
            + enc_str("relu_") + WRAPPER_TAIL
            + fc + WRAPPER_TAIL + extra)


def test_parse_tiny_network() -> None:
    net = parse_dlib_network(_tiny_network(), "tiny.dat")
    assert [layer.kind for layer in net.layers] == ["con", TAG_OR_SKIP, "relu", "fc"]
    assert net.wrapper_versions == [3, 1, 2, 2]
    assert net.loss.params == {"margin": 0.25, "dist_thresh": 0.75}
    assert (net.input.params["avg_red"], net.input.params["nr"]) == (1.0, 4)
    con = net.layers[0]
    assert con.params["stride_y"] == 1 and con.params["padding_x"] == 0
    np.testing.assert_array_equal(con.arrays["weight"].reshape(-1), np.arange(6))
    np.testing.assert_array_equal(con.arrays["bias"], [0.5, -0.5])
    fc = net.layers[3]
    assert fc.arrays["weight"].shape == (32, 2) and "bias" not in fc.arrays


def test_trailing_bytes_and_bad_layer_are_errors() -> None:
    with pytest.raises(ValueError, match="tiny.dat: .*2 bytes remain"):
        parse_dlib_network(_tiny_network(b"\x01\x00"), "tiny.dat")
    bad = _tiny_network().replace(b"relu_", b"relu?")
    with pytest.raises(ValueError, match=r"unsupported layer type 'relu\?'"):
        parse_dlib_network(bad, "tiny.dat")
    full = _tiny_network()
    with pytest.raises(ValueError, match="truncated"):
        parse_dlib_network(full[: len(full) - 30], "tiny.dat")


# ------------------------------------------------------------------------------------
# Architecture and shapes.

def test_shapes_with_random_weights() -> None:
    torch.manual_seed(0)
    net = DlibResNet().eval()
    x = torch.randn(2, 3, 150, 150)
    with torch.inference_mode():
        feats = net.backbone(x)
        emb = net.embedding(feats)
        sizes = []
        h = net.backbone[0](x)
        sizes.append(tuple(h.shape[1:]))
        for blk in net.backbone[1:-1]:
            h = blk(h)
            sizes.append(tuple(h.shape[1:]))
    assert feats.shape == (2, 256) and emb.shape == (2, 128)
    assert sizes[0] == (32, 35, 35)
    level_ends = {2: (32, 35, 35), 6: (64, 17, 17), 9: (128, 8, 8), 12: (256, 4, 4), 13: (256, 2, 2)}
    for idx, shape in level_ends.items():
        assert sizes[1 + idx] == shape, (idx, sizes[1 + idx])
    assert len(BLOCKS) == 14


def test_preprocess_matches_dlib_input_layer() -> None:
    net = DlibResNet()
    net.input_mean.copy_(torch.tensor([122.782, 117.001, 104.298]))
    chips = torch.randint(0, 256, (2, 150, 150, 3), dtype=torch.uint8)
    x = net.preprocess(chips)
    assert x.shape == (2, 3, 150, 150) and x.dtype == torch.float32
    mean = np.array([122.782, 117.001, 104.298], np.float32)
    expected = ((chips.numpy().astype(np.float32) - mean) / np.float32(256)).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(x.numpy(), expected)
    with pytest.raises(ValueError, match="uint8"):
        net.preprocess(chips.float())


def test_add_padded_follows_dlib() -> None:
    a = torch.ones(1, 4, 3, 3)  # conv branch, e.g. level 1: 3x3
    b = torch.full((1, 2, 4, 4), 10.0)  # shortcut: fewer channels, 4x4
    out = _add_padded(a, b)
    assert out.shape == (1, 4, 4, 4)
    assert out[0, 0, 0, 0] == 11 and out[0, 0, 3, 3] == 10 and out[0, 3, 0, 0] == 1
    assert out[0, 3, 3, 3] == 0
    torch.testing.assert_close(_add_padded(b, a), out)


def test_expected_layers_match_the_real_file() -> None:
    from fiqa_bench.recognition.dlib_serialization import load_dlib_resnet_weights

    net = load_dlib_resnet_weights(_model_path())
    assert [layer.kind for layer in net.layers] == [kind for kind, _, _ in expected_layers()]
    assert net.num_bytes == _model_path().stat().st_size
    assert net.input.params["avg_red"] == pytest.approx(122.782)
    assert sum(a.size for layer in net.layers for a in layer.arrays.values()) == 5_614_592


def test_registry_factory() -> None:
    from fiqa_bench.recognition.registry import MODELS

    model = MODELS.get("dlib").build(None, "cpu")
    assert MODELS.canonical("dlib") == "dlib-resnet"
    assert model.card.template == "dlib150" and model.card.embedding_dim == 128
    assert model.chip_size == 150
    chips = np.random.default_rng(0).integers(0, 256, (3, 150, 150, 3), dtype=np.uint8)
    emb = model.embed(chips)
    assert emb.shape == (3, 128) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert model.backbone_features(chips).shape == (3, 256)
    stages = model.stage_features(chips)
    assert stages.shape == (3, 32 + 64 + 128 + 256 + 256)
    # the last level's pooled output is the backbone output (dlib pools it globally)
    np.testing.assert_allclose(stages[:, -256:], model.backbone_features(chips), rtol=1e-5, atol=1e-6)
    assert model.stage_features(chips[:0]).shape == (0, 736)
    assert model.fingerprint() == MODELS.get("dlib-resnet").build(None, "cpu").fingerprint()


# ------------------------------------------------------------------------------------
# Acceptance: the port against dlib on real LFW chips.

N_CHIPS = 200


@pytest.mark.slow
def test_port_matches_dlib_on_lfw_chips() -> None:
    dlib = pytest.importorskip("dlib")
    from PIL import Image

    from fiqa_bench.pipeline.paths import default_data_root, dlib_model_file

    root = default_data_root() / "lfw" / "images_deepfunneled"
    if not root.is_dir():
        pytest.skip(f"LFW images not found at {root}")
    files = sorted(root.glob("*/*.jpg"))
    if len(files) < N_CHIPS:
        pytest.skip(f"need {N_CHIPS} LFW images under {root}, found {len(files)}")
    picked = files[:: len(files) // N_CHIPS][:N_CHIPS]

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dlib_model_file("shape_predictor_5_face_landmarks.dat")))
    chips = []
    for f in picked:
        img = np.asarray(Image.open(f).convert("RGB"))
        dets = detector(img, 0)
        box = dets[0] if len(dets) else dlib.rectangle(70, 70, 180, 180)
        chips.append(dlib.get_face_chip(img, predictor(img, box), size=150, padding=0.25))
    chip_array = np.stack(chips)

    path = _model_path()
    reference = np.array(
        [np.asarray(d) for d in dlib.face_recognition_model_v1(str(path)).compute_face_descriptor(chips)]
    )
    net = load_dlib_resnet(path)
    with torch.inference_mode():
        out = [net(net.preprocess(torch.from_numpy(chip_array[i : i + 64]))).double().numpy()
               for i in range(0, len(chip_array), 64)]
    port = np.concatenate(out)

    cos = (port * reference).sum(1) / (np.linalg.norm(port, axis=1) * np.linalg.norm(reference, axis=1))
    print(f"\nport vs dlib on {len(cos)} LFW chips ({len({f.parent.name for f in picked})} people): "
          f"min cosine {cos.min():.12f}, max |diff| {np.abs(port - reference).max():.2e}")
    assert len(cos) == N_CHIPS
    assert cos.min() >= 0.9999, f"min cosine {cos.min()} at chip {int(cos.argmin())}"
    # Not a stated requirement, but float-rounding-level agreement is what a faithful port gives.
    assert np.abs(port - reference).max() < 1e-4
