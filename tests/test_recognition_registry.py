"""Recognition models and face detectors as registries: cards read without building, each model built once
per reference and device in a process, and shared networks that refuse to be changed."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fiqa_bench import recognition
from fiqa_bench.cli import build_parser, main
from fiqa_bench.faces.align import AlignmentSettings
from fiqa_bench.faces.detector import DETECTORS, detector_card, detector_for_aligned
from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.recognition import (
    MODELS,
    ModelEntry,
    create_model,
    default_detector,
    dlib_resnet,
    lbp,
    model_card,
)
from fiqa_bench.recognition.base import TorchRecognitionModel

DAT_READS = "dlib .dat files read"


@pytest.fixture()
def constructions(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Every recognition model built while the test runs, by (card name, device), in a process that has built
    none yet; and how often dlib's ``.dat`` file is read (under :data:`DAT_READS`)."""
    built: Counter = Counter()
    monkeypatch.setattr(recognition, "_BUILT", {})
    torch_init, lbp_init, load_dat = TorchRecognitionModel.__init__, lbp.LBPModel.__init__, dlib_resnet.load_dlib_resnet

    def counted_torch(self: TorchRecognitionModel, *args: object, **kwargs: object) -> None:
        torch_init(self, *args, **kwargs)
        built[(self.card.name, self.device)] += 1

    def counted_lbp(self: lbp.LBPModel, *args: object, **kwargs: object) -> None:
        lbp_init(self, *args, **kwargs)
        built[(self.card.name, "any device")] += 1

    def counted_load(*args: object, **kwargs: object) -> nn.Module:
        built[DAT_READS] += 1
        return load_dat(*args, **kwargs)

    monkeypatch.setattr(TorchRecognitionModel, "__init__", counted_torch)
    monkeypatch.setattr(lbp.LBPModel, "__init__", counted_lbp)
    monkeypatch.setattr(dlib_resnet, "load_dlib_resnet", counted_load)
    return built


def test_cards_are_read_without_building(constructions: Counter, capsys: pytest.CaptureFixture):
    for entry in MODELS.entries():
        assert isinstance(entry.obj, ModelEntry) and entry.obj.card.name == entry.name
        assert entry.obj.card.detector in DETECTORS.names()
        assert default_detector(entry.name) == entry.obj.card.detector
    assert default_detector("faceplugin") == "retinaface" and default_detector("dlib") == "hog"
    assert model_card("iresnet50@/no/such/backbone.pth").embedding_dim == 512  # no file is opened
    assert RunContext(progress=False).for_model("mobilefacenet").alignment.detector == "retinaface"
    assert main(["list", "models"]) == 0
    assert "mobilefacenet-512" in capsys.readouterr().out
    assert constructions == Counter()


def test_a_builder_whose_model_contradicts_its_card_is_refused():
    card = model_card("lbp")
    liar = ModelEntry(card=type(card)(**{**card.__dict__, "template": "dlib150"}), build=lbp.make_lbp)
    with pytest.raises(RuntimeError, match="registered card says"):
        recognition._check_card(liar, lbp.make_lbp(None, "cpu"))
    recognition._check_card(MODELS.get("lbp"), lbp.make_lbp(None, "cpu"))


def test_detectors_are_a_registry_whose_cards_say_what_they_give():
    assert set(DETECTORS.names()) >= {"hog", "retinaface"}
    for name in DETECTORS.names():
        card = detector_card(name)
        assert card.name == name and "dlib-5" in card.landmarks
    hog, retina = detector_card("hog"), detector_card("retinaface")
    assert not hog.gives_points5 and not hog.uses_torch and not hog.named_in_digest
    assert retina.gives_points5 and retina.uses_torch and retina.named_in_digest
    aligned = detector_card("arcface112-aligned")  # reads insightface .bin crops: no network, no looking
    assert aligned.gives_points5 and not aligned.uses_torch and aligned.reads_aligned == "arcface112"
    assert detector_for_aligned("arcface112") == "arcface112-aligned" and detector_for_aligned("dlib150") is None
    assert hog.reads_aligned is None and retina.reads_aligned is None
    from fiqa_bench.method.distributed import _face_column_names

    assert "points5" in _face_column_names("retinaface") and "points5" not in _face_column_names("hog")
    args = ["score", "--method", "sharpness", "--dataset", "lfw", "--out", "x.csv"]
    assert build_parser().parse_args([*args, "--detector", "retinaface"]).detector == "retinaface"
    with pytest.raises(SystemExit):
        build_parser().parse_args([*args, "--detector", "mtcnn"])
    with pytest.raises(ValueError, match="unknown face detector 'mtcnn'; known: arcface112-aligned, hog, retinaface"):
        AlignmentSettings(detector="mtcnn")


def test_a_hog_alignment_worker_does_not_load_torch():
    """The detector registry and HOG's module are light: a pool worker aligning with HOG never imports torch."""
    code = ("import sys\n"
            "from fiqa_bench.faces.align import AlignmentSettings\n"
            "from fiqa_bench.faces.batch import _init_pool_worker\n"
            "settings = AlignmentSettings()\n"
            "settings.digest()\n"
            "_init_pool_worker(settings)\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_a_run_builds_each_model_once_per_reference_and_device(small_folder: Path, tmp_path: Path,
                                                                 constructions: Counter):
    """Training SDD, scoring with three methods that read dlib-resnet and embedding with lbp, in one process:
    one dlib-resnet (its ``.dat`` file read once) and one lbp; another device is another model."""
    common = ["--dataset", f"folder:{small_folder}", "--cache-dir", str(tmp_path / "cache"), "--quiet",
              "--workers", "1"]
    ckpt = tmp_path / "sdd.pt"
    assert main(["train", "--method", "sdd", *common, "--out", str(ckpt), "--set", "m=3", "--set",
                 "repetitions=2"]) == 0
    for method in (["sdd", "--weights", str(ckpt)], ["serfiq"], ["feature-norm"]):
        assert main(["score", "--method", *method, *common, "--out", str(tmp_path / f"{method[0]}.csv")]) == 0
    assert main(["embed", "--model", "lbp", *common, "--out", str(tmp_path / "lbp.npz")]) == 0
    assert constructions == Counter({("dlib-resnet", "cpu"): 1, DAT_READS: 1, ("lbp", "any device"): 1})

    shared = create_model("dlib-resnet")
    assert create_model("dlib") is shared and RunContext(progress=False).model("dlib") is shared
    elsewhere = create_model("dlib", device="meta")
    assert elsewhere is not shared and elsewhere.reference == "dlib-resnet"
    assert create_model("dlib-resnet", device="meta") is elsewhere
    assert constructions[("dlib-resnet", "meta")] == 1 and constructions[DAT_READS] == 2


def test_a_shared_network_refuses_to_change_and_a_copy_does_not(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(recognition, "_BUILT", {})
    model = create_model("dlib-resnet")
    network = model.network
    before = {k: v.clone() for k, v in network.state_dict().items()}
    with pytest.raises(RuntimeError, match="'dlib-resnet' is shared.*copy.deepcopy"):
        network.train()
    with pytest.raises(RuntimeError, match="load new weights into"):
        network.load_state_dict(before)
    with pytest.raises(RuntimeError, match="move or convert"):
        network.to(torch.float64)
    head = nn.Sequential(network, nn.Linear(128, 1))  # a larger module holding it, as a quality regressor does
    with pytest.raises(RuntimeError, match="shared"):
        head.train()
    with pytest.raises(RuntimeError, match="shared"):
        head.load_state_dict(head.state_dict())
    assert network.eval() is network and not network.training

    own = copy.deepcopy(network)
    own.train()
    with torch.no_grad():
        for p in own.parameters():
            p.add_(1.0)
    own.load_state_dict(before)
    own.to(torch.float64)
    assert not network.training
    for key, value in network.state_dict().items():
        assert torch.equal(value, before[key]), key
    chips = np.random.default_rng(0).integers(0, 256, (2, 150, 150, 3), dtype=np.uint8)
    assert np.isfinite(model.embed(chips)).all()
