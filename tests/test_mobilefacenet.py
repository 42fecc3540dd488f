"""The ONNX reader and the PyTorch port of faceplugin's MobileFaceNet (``mobilefacenet-512``).

Fast tests use hand-built models (``onnx.helper``), random weights, and copies of
the published ``fr_feature.onnx`` edited in a temporary folder (never in the
repository).  The acceptance test compares the port with onnxruntime running
the file as exported (batch 1) on 200 LFW images spread over the whole set,
aligned to the ``arcface112`` template: every chip's cosine must be at least
0.9999.  Measured on 2 CPU cores (onnxruntime 1.32, torch 2.14) on 512
chips of 452 people (``benchmarks/bench_mobilefacenet.py`` compares as many
as asked): min cosine 0.999999999998918 (1 - 1.1e-12), max |difference|
9.2e-7 on values up to about 0.8; most of the test's time is cutting the
chips (hence ``slow``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from fiqa_bench.formats.onnx_graph import OnnxError, parse_model, read_onnx
from fiqa_bench.recognition.mobilefacenet import (
    MODEL_DIR,
    MODEL_FILE,
    SHA256,
    STAGE_WIDTHS,
    MobileFaceNet,
    layer_plan,
    load_mobilefacenet,
    onnx_state_dict,
)
from fiqa_bench.pipeline.paths import default_models_root

N_CHIPS = 200


@pytest.fixture(scope="session")
def model_path() -> Path:
    path = default_models_root() / MODEL_DIR / MODEL_FILE
    if not path.is_file():
        pytest.skip(f"faceplugin's {MODEL_FILE} not found at {path} (set FIQA_BENCH_MODELS)")
    return path


@pytest.fixture(scope="session")
def model_bytes(model_path: Path) -> bytes:
    return model_path.read_bytes()


@pytest.fixture(scope="session")
def model():
    from fiqa_bench.recognition import create_model

    return create_model("mobilefacenet-512")


def _chips(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------
# Editing a serialised model (for the tests: a copy in tmp_path).

def rewrite_initializers(data: bytes, edit: Callable[[str, np.ndarray], np.ndarray]) -> bytes:
    """``data`` (a ModelProto) with each initializer replaced by ``edit(name, array)``."""
    model = onnx.load_model_from_string(data)
    for tensor in model.graph.initializer:
        tensor.CopyFrom(numpy_helper.from_array(edit(tensor.name, numpy_helper.to_array(tensor)), tensor.name))
    return model.SerializeToString()


# ------------------------------------------------------------------------------------
# The ONNX reader.

def test_hand_built_model_is_read():
    weight = np.arange(6, dtype=np.float32).reshape(2, 3, 1, 1) / 7
    listed = helper.make_tensor("shape", TensorProto.INT64, [2], [1, -1])  # int64_data, not raw_data
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="Conv_0", strides=[2, 2], group=1, alpha=0.25,
                            mode="constant", scales=[1.0, 2.0])
    constant = helper.make_node("Constant", [], ["c"], name="Constant_0",
                                value=helper.make_tensor("v", TensorProto.FLOAT16, [2], [0.5, -2.0]))
    branch = helper.make_graph([helper.make_node("Identity", ["c"], ["b"])], "branch", [], [])
    choice = helper.make_node("If", ["cond"], ["o"], name="If_0", then_branch=branch, else_branch=branch)
    reshape = helper.make_node("Reshape", ["y", "shape"], ["z"], name="Reshape_0")
    graph = helper.make_graph([conv, constant, choice, reshape], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", None])],
                              initializer=[numpy_helper.from_array(weight, "w"), listed])
    proto = helper.make_model(graph, producer_name="pytorch", opset_imports=[helper.make_opsetid("", 9)])
    proto.ir_version = 7
    model = parse_model(proto.SerializeToString())
    assert (model.ir_version, model.opset, model.producer_name) == (7, 9, "pytorch")
    g = model.graph
    assert g.name == "g" and [n.op_type for n in g.nodes] == ["Conv", "Constant", "If", "Reshape"]
    node = g.nodes[0]
    assert node.inputs == ("x", "w") and node.outputs == ("y",) and node.name == "Conv_0"
    assert node.attrs == {"strides": [2, 2], "group": 1, "alpha": 0.25, "mode": "constant", "scales": [1.0, 2.0]}
    value = g.nodes[1].attrs["value"]
    assert value.dtype == np.float16 and value.tolist() == [0.5, -2.0]
    then_branch = g.nodes[2].attrs["then_branch"]
    assert then_branch.name == "branch" and [n.op_type for n in then_branch.nodes] == ["Identity"]
    np.testing.assert_array_equal(g.initializers["w"], weight)
    assert g.initializers["w"].dtype == np.float32 and g.initializers["w"].flags.writeable
    np.testing.assert_array_equal(g.initializers["shape"], [1, -1])
    assert g.data_inputs[0].shape == ("N", 3, 4, 4)
    assert g.outputs[0].name == "z" and g.outputs[0].shape == ("N", None)


def _model_with(*initializers: TensorProto, nodes: tuple[onnx.NodeProto, ...] = (),
                sparse: tuple[onnx.SparseTensorProto, ...] = ()) -> bytes:
    graph = helper.make_graph(list(nodes), "g", [], [], initializer=list(initializers),
                              sparse_initializer=list(sparse))
    return helper.make_model(graph).SerializeToString()


def _tensor(name: str, data_type: int = TensorProto.FLOAT, **values) -> TensorProto:
    return TensorProto(name=name, data_type=data_type, dims=[values.pop("size", 1)], **values)


def _external_tensor() -> TensorProto:
    tensor = _tensor("e", size=3, data_location=TensorProto.EXTERNAL)
    tensor.external_data.add(key="location", value="weights.bin")
    return tensor


def _sparse_tensor() -> onnx.SparseTensorProto:
    return helper.make_sparse_tensor(numpy_helper.from_array(np.ones(1, np.float32), "s"),
                                     numpy_helper.from_array(np.array([0], np.int64), "i"), [3])


def _sparse_attribute() -> onnx.NodeProto:
    node = helper.make_node("Constant", [], ["y"], name="c")
    node.attribute.append(helper.make_attribute("sparse_value", _sparse_tensor()))
    return node


@pytest.mark.parametrize("message, match", [
    (b"\x3a\x05ab", "protobuf cannot parse it"),  # field 7 (graph) runs past the end
    (b"\x0b", "protobuf cannot parse it"),  # wire type 3 (a group)
    (_model_with(_tensor("t", size=4, raw_data=b"\0" * 12)),
     r"tensor 't' \(data type 1, dims \(4,\)\): cannot reshape"),
    (_model_with(_tensor("l", size=3, float_data=[1.0])), r"tensor 'l' \(data type 1, dims \(3,\)\)"),
    (_model_with(_external_tensor()), "tensor 'e': its data is stored in an external file"),
    (_model_with(_tensor("u", TensorProto.UNDEFINED, raw_data=b"\0")), "tensor 'u'.*UNDEFINED"),
    (_model_with(_tensor("x", 99, raw_data=b"\0")), "tensor 'x': data type 99 is not an ONNX TensorProto.DataType"),
    (_model_with(sparse=(_sparse_tensor(),)), "sparse initializers are not supported"),
    (_model_with(nodes=(_sparse_attribute(),)), r"node 'c' \(Constant\): attribute 'sparse_value': type SPARSE_TENSOR"),
    (_model_with(_tensor("", raw_data=b"\0" * 4)), "an initializer without a name"),
    (_model_with(_tensor("d", raw_data=b"\0" * 4), _tensor("d", raw_data=b"\0" * 4)), "two initializers named 'd'"),
    (b"\x08\x07", "no graph"),  # ir_version 7 and nothing else
])
def test_malformed_models_are_clear_errors(message: bytes, match: str):
    with pytest.raises(OnnxError, match=match):
        parse_model(message)


def test_the_published_file_is_read(model_path: Path):
    model = read_onnx(model_path)
    g = model.graph
    assert (model.opset, model.producer_name, model.producer_version) == (9, "pytorch", "1.10")
    counts = {op: sum(n.op_type == op for n in g.nodes) for op in ("Conv", "PRelu", "Add", "Reshape")}
    assert counts == {"Conv": 50, "PRelu": 33, "Add": 12, "Reshape": 1} and len(g.nodes) == 96
    assert g.data_inputs[0].shape == (1, 3, 112, 112) and g.outputs[0].shape == (1, 512)
    assert sum(a.size for a in g.initializers.values() if a.dtype == np.float32) == 1_190_336


# ------------------------------------------------------------------------------------
# The network.

def test_layer_plan_matches_the_module():
    plan = layer_plan()
    counts = {op: sum(s.op == op for s in plan) for op in ("Conv", "PRelu", "Add", "Reshape")}
    assert counts == {"Conv": 50, "PRelu": 33, "Add": 12, "Reshape": 1}
    keys = {f"{s.name}.{p}" for s in plan if s.op in ("Conv", "PRelu")
            for p in (("weight", "bias") if s.op == "Conv" else ("weight",))}
    assert keys == set(MobileFaceNet().state_dict())


def test_shapes_with_random_weights():
    torch.manual_seed(0)
    net = MobileFaceNet().eval()
    for p in net.parameters():
        p.normal_(0, 0.05)
    x = net.preprocess(torch.from_numpy(_chips(3)))
    with torch.inference_mode():
        b = net.backbone(x)
        e = net.embedding(b)
        stages = net.stage_outputs(x)
    assert b.shape == (3, 512) and e.shape == (3, 512)
    assert [tuple(s.shape[1:]) for s in stages] == [(64, 56, 56), (64, 28, 28), (128, 14, 14), (512, 7, 7)]
    assert tuple(s.shape[1] for s in stages) == STAGE_WIDTHS
    assert sum(p.numel() for p in net.parameters()) == 1_190_336


def test_preprocess_is_the_exports_input():
    net = MobileFaceNet()
    chips = torch.from_numpy(_chips(2))
    x = net.preprocess(chips)
    expected = ((chips.numpy().astype(np.float32) - 127.5) / 128.0).transpose(0, 3, 1, 2)
    assert x.shape == (2, 3, 112, 112) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_array_equal(x.numpy(), expected)
    with pytest.raises(ValueError, match="uint8"):
        net.preprocess(chips.float())
    with pytest.raises(ValueError, match=r"\(N, 112, 112, 3\)"):
        net.preprocess(chips[:, :100])


def test_registry_factory(model):
    from fiqa_bench.recognition.registry import MODELS

    assert MODELS.canonical("faceplugin") == "mobilefacenet-512" == model.reference
    assert model.card.template == "arcface112" and model.card.embedding_dim == 512 and model.chip_size == 112
    assert "/" not in model.card.weights
    chips = _chips(5)
    emb = model.embed(chips)
    assert emb.shape == (5, 512) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert model.backbone_features(chips).shape == (5, 512)
    assert model.stage_features(chips).shape == (5, 64 + 64 + 128 + 512)
    assert model.embed(chips[:0]).shape == (0, 512)
    assert model.fingerprint() == MODELS.get("faceplugin").build(None, "cpu").fingerprint()


def test_batch_size_does_not_change_embeddings(model):
    chips = _chips(64, seed=1)
    model.batch_size = 64
    whole = model.embed(chips)
    model.batch_size = 1
    try:
        single = model.embed(chips)
    finally:
        model.batch_size = 64
    assert np.abs(whole - single).max() <= 1e-5


def test_flushing_tiny_weights_does_not_change_the_output(model_path: Path):
    """The ~200k parameters below 1e-10 the loader zeroes: outputs as with the file's exact values."""
    exact = load_mobilefacenet(model_path, flush_below=0)
    flushed = load_mobilefacenet(model_path)
    assert sum(int((p == 0).sum()) for p in flushed.parameters()) > sum(int((p == 0).sum()) for p in exact.parameters())
    x = flushed.preprocess(torch.from_numpy(_chips(2, seed=3)))
    with torch.inference_mode():
        assert float((exact(x) - flushed(x)).abs().max()) <= 1e-6


# ------------------------------------------------------------------------------------
# Files: hash, mismatching architecture, user files.

def test_a_file_with_the_wrong_hash_is_refused(model_bytes: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from fiqa_bench.recognition.registry import MODELS

    build = MODELS.get("mobilefacenet-512").build  # create_model would hand out the model built earlier
    folder = tmp_path / MODEL_DIR
    folder.mkdir()
    monkeypatch.setenv("FIQA_BENCH_MODELS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"{folder / MODEL_FILE} do not exist"):
        build(None, "cpu")
    (folder / MODEL_FILE).write_bytes(model_bytes[:-1] + bytes([model_bytes[-1] ^ 1]))
    with pytest.raises(ValueError, match=rf"{folder / MODEL_FILE}: sha256 [0-9a-f]{{64}} is not that of "
                                         rf"faceplugin's fr_feature.onnx \({SHA256}\)"):
        build(None, "cpu")


def test_a_corrupted_tensor_shape_is_named(model_bytes: bytes, tmp_path: Path):
    from fiqa_bench.recognition import create_model

    graph = read_onnx("<test>", model_bytes).graph
    node = graph.nodes[[s.name for s in layer_plan()].index("backbone.conv_4.2.dw.conv")]
    target = node.inputs[1]  # the (256, 1, 3, 3) depthwise weight
    path = tmp_path / "bad.onnx"
    path.write_bytes(rewrite_initializers(model_bytes, lambda name, a: a.reshape(128, 2, 3, 3) if name == target else a))
    with pytest.raises(ValueError) as info:
        create_model(f"mobilefacenet-512@{path}")
    message = str(info.value)
    assert str(path) in message and repr(target) in message and node.name in message
    assert "has shape (128, 2, 3, 3), expected (256, 1, 3, 3)" in message
    assert "backbone.conv_4.2.dw.conv" in message


def test_a_wrong_prelu_slope_is_named(model_bytes: bytes):
    graph = read_onnx("<test>", model_bytes).graph
    prelu = graph.nodes[1]
    slope = prelu.inputs[1]
    bad = dataclasses.replace(graph, initializers={**graph.initializers, slope: np.ones((32, 1, 1), np.float32)})
    with pytest.raises(ValueError, match=rf"tensor '{slope}' \(PRelu node 'PRelu_1', MobileFaceNet "
                                         rf"backbone.conv1.prelu\) has shape \(32, 1, 1\), expected \(64, 1, 1\)"):
        onnx_state_dict(bad, "model.onnx")


@pytest.mark.parametrize("index, change, match", [
    (6, {"strides": [1, 1]}, r"Conv node 'Conv_6' \(MobileFaceNet backbone.conv_23.dw.conv\) has strides "
                             r"\[1, 1\], expected \[2, 2\]"),
    (2, {"pads": [0, 0, 0, 0]}, "has pads"),
    (2, {"group": 1}, "has group 1, expected 64"),
])
def test_wrong_conv_attributes_are_named(model_bytes: bytes, index: int, change: dict, match: str):
    graph = read_onnx("<test>", model_bytes).graph
    nodes = list(graph.nodes)
    nodes[index] = dataclasses.replace(nodes[index], attrs={**nodes[index].attrs, **change})
    with pytest.raises(ValueError, match=match):
        onnx_state_dict(dataclasses.replace(graph, nodes=tuple(nodes)), "model.onnx")


def test_a_different_graph_is_refused(model_bytes: bytes):
    graph = read_onnx("<test>", model_bytes).graph
    nodes = list(graph.nodes)
    with pytest.raises(ValueError, match=r"node 1 \(Conv 'Conv_2'\): expected a PRelu node"):
        onnx_state_dict(dataclasses.replace(graph, nodes=(nodes[0],) + tuple(nodes[2:])), "model.onnx")
    add = nodes[14]
    assert add.op_type == "Add"
    nodes[14] = dataclasses.replace(add, inputs=(add.inputs[1], add.inputs[1]))
    with pytest.raises(ValueError, match="expected the input and the output of bottleneck backbone.conv_3.0"):
        onnx_state_dict(dataclasses.replace(graph, nodes=tuple(nodes)), "model.onnx")
    with pytest.raises(ValueError, match="the graph ends after 95 nodes"):
        onnx_state_dict(dataclasses.replace(graph, nodes=graph.nodes[:-1]), "model.onnx")


def test_not_an_onnx_file(tmp_path: Path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x0b not protobuf")
    with pytest.raises(ValueError, match="not an ONNX model this reader understands"):
        load_mobilefacenet(path)
    with pytest.raises(FileNotFoundError, match="nowhere.onnx"):
        load_mobilefacenet(tmp_path / "nowhere.onnx")


def test_a_user_file_of_the_same_architecture_loads(model, model_bytes: bytes, tmp_path: Path):
    from fiqa_bench.recognition import create_model

    embedding_bias = read_onnx("<test>", model_bytes).graph.nodes[-2].inputs[2]
    path = tmp_path / "mine.onnx"
    path.write_bytes(rewrite_initializers(model_bytes, lambda name, a: a + 0.5 if name == embedding_bias else a))
    mine = create_model(f"faceplugin@{path}")
    assert mine.reference == f"mobilefacenet-512@{path}" and mine.card.weights == "mine.onnx (user ONNX file)"
    assert mine.fingerprint() != model.fingerprint()
    chips = _chips(2)
    assert np.abs(mine.embed(chips) - model.embed(chips)).max() > 1e-3
    np.testing.assert_allclose(mine.backbone_features(chips), model.backbone_features(chips))


# ------------------------------------------------------------------------------------
# Acceptance: the port against onnxruntime on real LFW chips.

@pytest.mark.slow
def test_port_matches_onnxruntime_on_lfw_chips(model_path: Path, lfw_root: Path, tmp_path: Path):
    ort = pytest.importorskip("onnxruntime")
    from fiqa_bench.pipeline.context import RunContext
    from fiqa_bench.data import Dataset, load_dataset
    from fiqa_bench.pipeline.embedding import dataset_chips

    lfw = load_dataset("lfw", lfw_root, "all")
    picked = lfw.samples[:: len(lfw) // N_CHIPS][:N_CHIPS]  # every k-th image: spread over the alphabet
    dataset = Dataset("lfw[every k-th]", lfw.root, picked)
    chips, failed, _ = dataset_chips(dataset, "arcface112", RunContext(tmp_path / "cache", progress=False))
    chips = chips[~failed]
    assert len(chips) == N_CHIPS  # no image of this sample fails to load

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    x = (chips.astype(np.float32) - 127.5) / 128.0
    reference = np.concatenate([session.run(None, {"input": np.ascontiguousarray(x[i : i + 1].transpose(0, 3, 1, 2))})[0]
                                for i in range(len(chips))]).astype(np.float64)  # batch 1, as exported

    net = load_mobilefacenet()
    with torch.inference_mode():
        port = np.concatenate([net(net.preprocess(torch.from_numpy(chips[i : i + 64]))).double().numpy()
                               for i in range(0, len(chips), 64)])
    cos = (port * reference).sum(1) / (np.linalg.norm(port, axis=1) * np.linalg.norm(reference, axis=1))
    print(f"\nport vs onnxruntime on {len(cos)} LFW chips ({len({s.identity for s in picked})} people): "
          f"min cosine {cos.min():.15f}, max |diff| {np.abs(port - reference).max():.2e}")
    assert cos.min() >= 0.9999, f"min cosine {cos.min()} at chip {int(cos.argmin())}"
    # Not a stated requirement, but float-rounding-level agreement is what a faithful port gives.
    assert np.abs(port - reference).max() < 1e-4


def test_one_pass_gives_the_embedding_and_the_stage_features(model):
    """Hooks on the stage ends and on the (micro-batched) backbone see each batch as ``stage_outputs`` and
    ``backbone`` compute it: the same bits as separate passes, over a partial last batch and micro-batches."""
    chips = np.random.default_rng(6).integers(0, 256, (70, 112, 112, 3), dtype=np.uint8)
    out = model.embed_in_one_pass(chips, ("embedding", "stages", "backbone"))
    np.testing.assert_array_equal(out["embedding"], model.embed(chips))
    np.testing.assert_array_equal(out["stages"], model.stage_features(chips))
    np.testing.assert_array_equal(out["backbone"], model.backbone_features(chips))
    assert list(model.embed_in_one_pass(chips[:2], ("backbone", "embedding"))) == ["backbone", "embedding"]
