"""The GraphDef reader, the PyTorch port of TensorFlow graphs, and the lightqnet method.

Fast tests run hand-built protobuf messages and small graphs.  The port is
checked against TensorFlow's own outputs stored in
``tests/data/lightqnet_reference.npz`` (made by
``benchmarks/lightqnet_reference.py`` in a separate environment with
TensorFlow; TensorFlow is not needed here): on synthetic chips regenerated
from the stored seed, and on real LFW chips cut again from ``../shared``
(the fixture holds their paths, faces and landmarks, not their pixels).

Tolerances, absolute on the sigmoid output:

* 1e-5 on the synthetic chips, which numpy's seeded generator makes
  bit for bit alike on every machine (the port agrees to about 3e-7).
* 1e-3 on the LFW chips, which are cut here: ``cv2.warpAffine`` picks its
  bilinear kernel by CPU (AVX2 with FMA, SSE4.1, baseline), so a chip cut on
  another machine than the reference's may differ by one grey level in a few
  pixels.  Measured on an AMD EPYC against the Intel Xeon that made the
  reference: 14 of the 20 chips differ, and the outputs by at most 5.8e-5
  (1.2e-7 on the 6 identical chips).  What a defect costs, measured on the
  same chips: red and blue swapped 1.9e-2 or more, a chip shifted by one
  pixel 1.1e-2 or more, every pixel one grey level brighter 1e-3 to 2e-3.
  Whether the aligner still finds the same faces is checked apart, exactly,
  on the integer box and landmarks that decide where a chip is cut.
"""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from fiqa_bench.faces.templates import DLIB_5_POINTS, LIGHTQNET_POINTS, get_template
from fiqa_bench.formats.graphdef import DType, GraphDefError, Node, parse_graphdef
from fiqa_bench.formats.graphdef_torch import GraphModule, TFConv2d, conv_weight_from_tf, tf_same_padding
from fiqa_bench.methods.lightqnet import SHA256, LightQNet, model_file, network_input
from fiqa_bench.pipeline.paths import default_models_root

REFERENCE = Path(__file__).parent / "data" / "lightqnet_reference.npz"
TOLERANCE = 1e-5
#: On chips cut on this machine (see the module docstring for the measurements behind it).
LFW_TOLERANCE = 1e-3
WIDTHS = tuple(SHA256)


# ------------------------------------------------------------------------------------
# A tiny protobuf writer, to build test messages apart from the reader's declarations (the field
# numbers below are written out from TensorFlow's .proto files).

def varint(value: int) -> bytes:
    """A varint as protobuf writes it: groups of 7 bits, low first (negatives as 64-bit two's complement)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, value: int | bytes | str, wire: int | None = None) -> bytes:
    """One field: an int as a varint, bytes/str as length-delimited, or ``wire`` 5 with 4 raw bytes."""
    if wire == 5:
        return varint(number << 3 | 5) + value
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def shape_msg(*dims: int) -> bytes:
    return b"".join(field(2, field(1, d)) for d in dims)


def tensor_msg(array: np.ndarray, as_content: bool = True) -> bytes:
    dtype = {np.float32: 1, np.int32: 3, np.int64: 9}[array.dtype.type]
    out = field(1, dtype) + field(2, shape_msg(*array.shape))
    if as_content:
        return out + field(4, array.astype(array.dtype.newbyteorder("<")).tobytes())
    if array.dtype == np.float32:
        return out + field(5, struct.pack(f"<{array.size}f", *array.ravel()))
    return out + field(7 if dtype == 3 else 10, b"".join(varint(int(v)) for v in array.ravel()))


def attr(key: str, value_field: bytes) -> bytes:
    return field(5, field(1, key) + field(2, value_field))


def node_msg(name: str, op: str, inputs: tuple[str, ...] = (), attrs: bytes = b"") -> bytes:
    return field(1, field(1, name) + field(2, op) + b"".join(field(3, i) for i in inputs) + attrs)


def const(name: str, array: np.ndarray, as_content: bool = True) -> bytes:
    value = attr("value", field(8, tensor_msg(array, as_content)))
    return node_msg(name, "Const", (), attr("dtype", field(6, 1)) + value)


def ints(key: str, values: list[int]) -> bytes:
    return attr(key, field(1, field(3, b"".join(varint(v) for v in values))))  # a packed list


# ------------------------------------------------------------------------------------
# The GraphDef reader.

@pytest.mark.parametrize("value, raw", [(0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"),
                                        (150, b"\x96\x01"), (-2, b"\xfe" + b"\xff" * 8 + b"\x01")])
def test_the_test_writer_writes_protobuf_varints(value: int, raw: bytes):
    """7 bits a byte, low group first, the high bit set when more follow; a negative int64 takes ten bytes."""
    assert varint(value) == raw


def test_hand_built_graphdef_is_read():
    weights = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    message = (
        node_msg("input", "Placeholder", (), attr("dtype", field(6, 1))
                 + attr("shape", field(7, shape_msg(-1, 96, 96, 3))))
        + const("w", weights)
        + const("listed", np.array([0.5, 0.5, 0.5, 0.5], np.float32)[:1], as_content=False)
        + const("shape", np.array([-1, 4], np.int32), as_content=False)
        + const("big", np.array([-(2**40), 7], np.int64), as_content=False)
        + node_msg("conv", "Conv2D", ("input", "w:0", "^input"),
                   attr("padding", field(2, "SAME")) + ints("strides", [1, 2, 2, 1])
                   + attr("epsilon", field(4, struct.pack("<f", 2e-5), wire=5)) + attr("is_training", field(5, 0))
                   + attr("offset", field(3, -3)) + attr("T", field(6, 1))
                   + attr("unpacked", field(1, field(3, 4) + field(3, 5))))
        + field(4, field(1, 27))  # GraphDef.versions: skipped
        + field(15, b"unknown")  # an unknown field: skipped
    )
    nodes = {n.name: n for n in parse_graphdef(message)}
    assert list(nodes) == ["input", "w", "listed", "shape", "big", "conv"]
    assert nodes["input"].attrs == {"dtype": DType.DT_FLOAT, "shape": (-1, 96, 96, 3)}
    np.testing.assert_array_equal(nodes["w"].attrs["value"], weights)
    assert nodes["w"].attrs["value"].dtype == np.float32
    np.testing.assert_array_equal(nodes["listed"].attrs["value"], [0.5])
    np.testing.assert_array_equal(nodes["shape"].attrs["value"], [-1, 4])
    np.testing.assert_array_equal(nodes["big"].attrs["value"], [-(2**40), 7])
    conv = nodes["conv"]
    assert conv.op == "Conv2D" and conv.inputs == ("input", "w:0", "^input")
    assert conv.attrs["padding"] == "SAME" and conv.attrs["strides"] == [1, 2, 2, 1]
    assert conv.attrs["epsilon"] == float(np.float32(2e-5)) and conv.attrs["is_training"] is False
    assert conv.attrs["offset"] == -3 and conv.attrs["T"] is DType.DT_FLOAT and conv.attrs["unpacked"] == [4, 5]


def test_a_short_value_list_fills_the_shape_with_its_last_value():
    tensor = field(1, 1) + field(2, shape_msg(2, 3)) + field(5, struct.pack("<2f", 1.0, 2.0))
    nodes = parse_graphdef(node_msg("c", "Const", (), attr("value", field(8, tensor))))
    np.testing.assert_array_equal(nodes[0].attrs["value"], [[1, 2, 2], [2, 2, 2]])


def test_every_declared_attribute_field_is_read():
    """The attribute and tensor fields the LightQNet graphs do not use, written with TensorFlow's numbers
    (``attr_value.proto``, ``tensor.proto``, ``tensor_shape.proto``): each lands where the reader declares it."""
    attrs = (attr("strings", field(1, field(2, "a") + field(2, b"\xff")))
             + attr("floats", field(1, field(4, struct.pack("<2f", 0.5, -1.5))))
             + attr("bools", field(1, field(5, bytes([1, 0]))))
             + attr("types", field(1, field(6, varint(1) + varint(9))))
             + attr("shapes", field(1, field(7, shape_msg(2, 3)) + field(7, field(3, 1))))
             + attr("tensors", field(1, field(8, tensor_msg(np.array([1.5, 2.5], np.float32)))))
             + attr("bytes", field(2, b"\xff\x00")) + attr("placeholder", field(9, "T"))
             + attr("empty", b"") + attr("func", field(10, field(1, "f")))
             + attr("double", field(8, field(1, 2) + field(2, shape_msg(2)) + field(6, struct.pack("<2d", 0.1, -2))))
             + attr("flags", field(8, field(1, 10) + field(2, shape_msg(3)) + field(11, bytes([1, 0, 1])))))
    got = parse_graphdef(node_msg("n", "Op", (), attrs))[0].attrs
    assert got["strings"] == ["a", b"\xff"] and got["floats"] == [0.5, -1.5] and got["bools"] == [True, False]
    assert got["types"] == [DType.DT_FLOAT, DType.DT_INT64] and got["shapes"] == [(2, 3), None]
    assert len(got["tensors"]) == 1 and got["tensors"][0].tolist() == [1.5, 2.5]
    assert got["bytes"] == b"\xff\x00" and got["placeholder"] == "T"
    assert got["empty"] is None and got["func"] is None
    assert got["double"].dtype == np.float64 and got["double"].tolist() == [0.1, -2.0]
    assert got["flags"].dtype == np.bool_ and got["flags"].tolist() == [True, False, True]


@pytest.mark.parametrize("message, match", [
    (b"\x0a\x05ab", "protobuf cannot parse it as a GraphDef"),  # a field running past the end
    (b"\x0b", "protobuf cannot parse it as a GraphDef"),  # wire type 3 (a group)
    (b"\x0a", "protobuf cannot parse it as a GraphDef"),  # a truncated varint
    (node_msg("a", b"\xff"), "protobuf cannot parse it as a GraphDef"),  # an op that is not UTF-8
    (node_msg("a", ""), "a node without a name or op"),
    (node_msg("c", "Const", (), attr("value", field(8, field(1, 1) + field(2, shape_msg(-1))))),
     r"node 'c', attribute 'value': a constant tensor needs a fully known shape, got \(-1,\)"),
    (node_msg("c", "Const", (), attr("value", field(8, field(1, 1) + field(2, shape_msg(2))
                                                     + field(5, struct.pack("<3f", 1, 2, 3))))),
     r"tensor of shape \(2,\) has 3 listed values"),
    (node_msg("c", "Const", (), attr("value", field(8, field(1, 1) + field(2, shape_msg(2)) + field(4, b"\0" * 5)))),
     "tensor_content holds 5 bytes"),
    (node_msg("c", "Const", (), attr("value", field(8, field(1, 7)))), "data type 7 is not supported"),
    (node_msg("a", "Relu") + node_msg("a", "Relu"), "duplicate node names"),
])
def test_malformed_messages_are_clear_errors(message: bytes, match: str):
    with pytest.raises(GraphDefError, match=match):
        parse_graphdef(message)


# ------------------------------------------------------------------------------------
# TensorFlow semantics in PyTorch.

@pytest.mark.parametrize("size, kernel, stride, pads", [(96, 3, 2, (0, 1)), (95, 3, 2, (1, 1)), (96, 3, 1, (1, 1)),
                                                        (96, 5, 2, (1, 2)), (6, 1, 1, (0, 0)), (4, 3, 4, (0, 0))])
def test_tf_same_padding(size: int, kernel: int, stride: int, pads: tuple[int, int]):
    assert tf_same_padding(size, kernel, stride) == pads


def naive_conv_nhwc(x: np.ndarray, w: np.ndarray, stride: int, pads: tuple[int, int]) -> np.ndarray:
    """TensorFlow's Conv2D written out: NHWC input, HWIO filter, zero padding (before, after) on both axes."""
    x = np.pad(x, ((0, 0), pads, pads, (0, 0)))
    kh, kw = w.shape[:2]
    oh, ow = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, w.shape[3]))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride : i * stride + kh, j * stride : j * stride + kw, :]
            out[:, i, j] = np.einsum("nhwc,hwco->no", patch, w)
    return out


@pytest.mark.parametrize("depthwise", [False, True])
def test_same_convolution_pads_the_bottom_right_on_even_inputs(depthwise: bool):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    w = rng.normal(size=(3, 3, 3, 2 if depthwise else 4)).astype(np.float32)
    if depthwise:  # depthwise = a full convolution whose filter is zero across channels
        dense = np.zeros((3, 3, 3, 6), np.float32)
        for c in range(3):
            dense[:, :, c, 2 * c : 2 * c + 2] = w[:, :, c, :]
        expected = naive_conv_nhwc(x, dense, 2, (0, 1))
    else:
        expected = naive_conv_nhwc(x, w, 2, (0, 1))
    conv = TFConv2d(conv_weight_from_tf(w, depthwise), (2, 2), (1, 1), "SAME", 3 if depthwise else 1)
    got = conv(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def small_graph(rng: np.random.Generator) -> tuple[bytes, list[np.ndarray]]:
    """A graph and its batch-norm constants: input (N,6,6,2) -> Conv2D 3x3/2 SAME -> FusedBatchNorm -> Relu6
    -> Add to itself -> AvgPool 3x3 -> Reshape -> MatMul -> BiasAdd -> Sigmoid, and an unused branch."""
    f32 = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    bn = [f32(4), f32(4), f32(4), np.abs(f32(4)) + 0.5]
    nhwc = attr("data_format", field(2, "NHWC"))
    return (
        node_msg("input", "Placeholder", (), attr("shape", field(7, shape_msg(-1, 6, 6, 2))))
        + const("w", f32(3, 3, 2, 4)) + node_msg("w/read", "Identity", ("w",))
        + b"".join(const(f"bn{i}", a) for i, a in enumerate(bn))
        + const("shape", np.array([-1, 4], np.int32)) + const("fc", f32(4, 1)) + const("b", f32(1))
        + node_msg("conv", "Conv2D", ("input", "w/read"), nhwc + attr("padding", field(2, "SAME"))
                   + ints("strides", [1, 2, 2, 1]))
        + node_msg("bn", "FusedBatchNorm", ("conv", "bn0", "bn1", "bn2", "bn3"),
                   nhwc + attr("epsilon", field(4, struct.pack("<f", 1e-3), wire=5)))
        + node_msg("act", "Relu6", ("bn",)) + node_msg("sum", "AddV2", ("act", "act"))
        + node_msg("pool", "AvgPool", ("sum",), nhwc + attr("padding", field(2, "VALID"))
                   + ints("ksize", [1, 3, 3, 1]) + ints("strides", [1, 1, 1, 1]))
        + node_msg("flat", "Reshape", ("pool", "shape")) + node_msg("mm", "MatMul", ("flat", "fc"))
        + node_msg("logit", "BiasAdd", ("mm", "b")) + node_msg("out", "Sigmoid", ("logit",))
        + node_msg("unused", "Relu", ("input",))
    ), bn


def test_graph_module_follows_tensorflow_semantics():
    rng = np.random.default_rng(1)
    message, (gamma, beta, mean, var) = small_graph(rng)
    nodes = {n.name: n for n in parse_graphdef(message)}
    x = rng.normal(size=(5, 6, 6, 2)).astype(np.float32)
    x_before = x.copy()
    conv = naive_conv_nhwc(x, nodes["w"].attrs["value"], 2, (0, 1))
    eps = float(np.float32(1e-3))
    act = np.clip((conv - mean) * gamma / np.sqrt(var + eps) + beta, 0, 6)
    logit = (2 * act).mean(axis=(1, 2)) @ nodes["fc"].attrs["value"] + nodes["b"].attrs["value"]
    expected = 1 / (1 + np.exp(-logit))
    for fold in (True, False):
        module = GraphModule(list(nodes.values()), "input", "out", fold_batch_norm=fold)
        assert (("bn", "FusedBatchNorm") in module.steps) is not fold
        assert "unused" not in dict(module.steps)
        np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(), expected, atol=1e-5)
    assert np.array_equal(x, x_before)  # nothing writes into the caller's input


def test_a_convolution_read_twice_keeps_its_batch_norm():
    rng = np.random.default_rng(2)
    f32 = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    nodes = [Node("input", "Placeholder", (), {"shape": (-1, 4, 4, 2)}),
             Node("w", "Const", (), {"value": f32(1, 1, 2, 3)}),
             *[Node(f"bn{i}", "Const", (), {"value": np.abs(f32(3)) + 0.5}) for i in range(4)],
             Node("conv", "Conv2D", ("input", "w"), {"padding": "VALID", "strides": [1, 1, 1, 1]}),
             Node("conv/read", "Identity", ("conv",)),
             Node("bn", "FusedBatchNorm", ("conv/read", "bn0", "bn1", "bn2", "bn3"), {"epsilon": 1e-3}),
             Node("out", "Add", ("bn", "conv"))]
    folded, plain = (GraphModule(nodes, "input", "out", fold_batch_norm=f) for f in (True, False))
    assert ("bn", "FusedBatchNorm") in folded.steps
    x = torch.from_numpy(f32(2, 4, 4, 2))
    np.testing.assert_array_equal(folded(x).detach().numpy(), plain(x).detach().numpy())


def test_activations_never_overwrite_the_callers_input():
    nodes = [Node("input", "Placeholder", (), {"shape": (-1, 3)}), Node("r", "Relu", ("input",)),
             Node("s", "Add", ("r", "r")), Node("out", "Relu6", ("s",))]
    module = GraphModule(nodes, "input", "out")
    x = torch.tensor([[-1.0, 2.0, 5.0]])
    np.testing.assert_array_equal(module(x).numpy(), [[0.0, 4.0, 6.0]])
    np.testing.assert_array_equal(x.numpy(), [[-1.0, 2.0, 5.0]])


def test_unsupported_operations_name_the_node():
    nodes = [Node("input", "Placeholder"), Node("odd", "Erf", ("input",))]
    with pytest.raises(ValueError, match="node 'odd': operation 'Erf' is not supported"):
        GraphModule(nodes, "input", "odd")
    nodes = [Node("input", "Placeholder"), Node("bn", "FusedBatchNorm", ("input:1",))]
    with pytest.raises(ValueError, match="reads output 1 of 'input'"):
        GraphModule(nodes, "input", "bn")


# ------------------------------------------------------------------------------------
# The method: files, preprocessing, template.

@pytest.fixture(scope="session")
def lightqnet_dir() -> Path:
    folder = default_models_root() / "lightqnet"
    if not folder.is_dir():
        pytest.skip(f"LightQNet's official models not found under {folder} (set FIQA_BENCH_MODELS)")
    return folder


@pytest.fixture(scope="session")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="session")
def networks(lightqnet_dir: Path) -> dict[str, LightQNet]:
    return {w: LightQNet(width=w) for w in WIDTHS}


@pytest.fixture(scope="session")
def maker():
    """``benchmarks/lightqnet_reference.py``, which made the fixture: its input generator and chip digest."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "lightqnet_reference.py"
    spec = importlib.util.spec_from_file_location("lightqnet_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_missing_model_folder_is_named(tmp_path: Path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=f"model folder {missing} does not exist"):
        LightQNet(model_dir=str(missing))
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'lightqnet-dm050.pb'} does not exist"):
        LightQNet(width="dm050", model_dir=str(tmp_path))
    with pytest.raises(ValueError, match="width must be one of dm100, dm050, dm025"):
        model_file("dm075", tmp_path)


def test_models_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("FIQA_BENCH_MODELS", str(tmp_path))
    assert default_models_root() == tmp_path
    monkeypatch.delenv("FIQA_BENCH_MODELS")
    monkeypatch.setenv("FIQA_BENCH_DATA", str(tmp_path / "datasets"))
    assert default_models_root() == tmp_path / "models"


def test_a_file_with_the_wrong_hash_is_refused(tmp_path: Path):
    (tmp_path / "lightqnet-dm100.pb").write_bytes(b"\x0a\x00 not the official graph")
    with pytest.raises(ValueError, match=rf"{tmp_path / 'lightqnet-dm100.pb'}: sha256 [0-9a-f]{{64}} is not that "
                                         rf"of the official lightqnet-dm100.pb \({SHA256['dm100']}\)"):
        LightQNet(model_dir=str(tmp_path))


def test_input_is_bgr_scaled_around_128():
    chip = np.zeros((1, 96, 96, 3), np.uint8)
    chip[..., 0], chip[..., 1], chip[..., 2] = 0, 128, 255  # R, G, B
    x = network_input(chip)
    assert x.dtype == np.float32 and x.shape == (1, 96, 96, 3)
    np.testing.assert_array_equal(x[0, 0, 0], [127 / 128, 0.0, -1.0])  # B, G, R
    with pytest.raises(ValueError, match=r"\(N, 96, 96, 3\) chips, got shape \(1, 112, 112, 3\)"):
        network_input(np.zeros((1, 112, 112, 3), np.uint8))


def test_template_puts_dlib_eye_centres_on_lightqnet_eyes():
    target = get_template("lightqnet96").target_points()
    eyes = np.array([target[2:4].mean(0), target[0:2].mean(0)])  # subject's right eye first (image left)
    np.testing.assert_allclose(eyes, LIGHTQNET_POINTS[:2] * 0.96, atol=1e-9)
    # a similarity of dlib's template: distances keep their ratios
    d = np.linalg.norm(target[:, None] - target[None], axis=2)
    d0 = np.linalg.norm(DLIB_5_POINTS[:, None] - DLIB_5_POINTS[None], axis=2)
    np.testing.assert_allclose(d / d[0, 2], d0 / d0[0, 2], atol=1e-9)


def test_card(networks: dict[str, LightQNet]):
    card = networks["dm100"].card
    assert card.needs == "chips:lightqnet96" and card.higher_is_better and not card.trained
    assert card.weights_sha256 == SHA256["dm100"] and "lightqnet-dm100.pb" in card.weights
    assert len({m.fingerprint() for m in networks.values()}) == 3


# ------------------------------------------------------------------------------------
# The port against TensorFlow's outputs.

@pytest.mark.reference
@pytest.mark.parametrize("width", WIDTHS)
def test_port_matches_tensorflow_on_synthetic_chips(width: str, networks: dict[str, LightQNet],
                                                    reference: dict[str, np.ndarray], maker):
    chips = maker.synthetic_chips(int(reference["synthetic_seed"]), int(reference["synthetic_count"]))
    assert maker.chip_digest(chips) == str(reference["synthetic_sha256"]), "the synthetic generator changed"
    got = networks[width].native_score(chips)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, reference[f"synthetic_{width}"], rtol=0, atol=TOLERANCE)


def test_folding_batch_norm_changes_nothing_that_matters(networks: dict[str, LightQNet], lightqnet_dir: Path):
    from fiqa_bench.formats.graphdef import read_graphdef

    x = torch.from_numpy(network_input(np.random.default_rng(3).integers(0, 256, (8, 96, 96, 3), dtype=np.uint8)))
    plain = GraphModule(read_graphdef(lightqnet_dir / "lightqnet-dm100.pb"), "input", "confidence_st",
                        fold_batch_norm=False)
    assert sum(op == "FusedBatchNorm" for _, op in plain.steps) == 34
    assert not any(op == "FusedBatchNorm" for _, op in networks["dm100"].network.steps)
    with torch.inference_mode():
        np.testing.assert_allclose(networks["dm100"].network(x).numpy(), plain(x).numpy(), atol=1e-6)


@pytest.fixture(scope="module")
def lfw_aligned(lfw_root: Path, reference: dict[str, np.ndarray], maker) -> tuple[np.ndarray, list]:
    """The reference's LFW images cut to ``lightqnet96`` as the reference script cut them (its ``lfw_chips``:
    the pipeline's own aligner, ``align_images``, what ``ensure_chips`` runs): the chips and each image's face."""
    chips, _, faces = maker.lfw_chips(lfw_root / "lfw" / "images_deepfunneled", list(reference["lfw_paths"]), 1)
    return chips, faces


@pytest.mark.reference
def test_aligner_finds_the_reference_faces(lfw_aligned: tuple[np.ndarray, list], reference: dict[str, np.ndarray]):
    """Box and landmarks are integers from dlib's HOG detector and shape predictor, one prebuilt binary on
    every machine: equal to the reference's, so the chips below are cut from the same points."""
    faces = lfw_aligned[1]
    boxes = np.array([face.box for face in faces])
    landmarks = np.stack([face.landmarks for face in faces])
    moved = [p for p, b, rb, m, rm in zip(reference["lfw_paths"], boxes, reference["lfw_boxes"], landmarks,
                                          reference["lfw_landmarks"]) if (b != rb).any() or (m != rm).any()]
    assert not moved, f"the aligner no longer finds the reference's faces in {moved}"


@pytest.mark.reference
def test_port_matches_tensorflow_on_lfw_chips(lfw_aligned: tuple[np.ndarray, list], networks: dict[str, LightQNet],
                                              reference: dict[str, np.ndarray]):
    chips = lfw_aligned[0]
    for width in WIDTHS:
        np.testing.assert_allclose(networks[width].native_score(chips), reference[f"lfw_{width}"], rtol=0,
                                   atol=LFW_TOLERANCE, err_msg=width)
