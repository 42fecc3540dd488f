"""LFW protocols: the SDD-FIQA paper's LFW setting (Sec. 4.1, Table 1, Fig. 4).

``lfw``: all 13,233 LFW images, every genuine (242,257) and impostor
(about 87.3 million) comparison of the deployed recognition model
(default ``dlib-resnet``), EVRC at FMR 1e-2, 1e-3 and 1e-4 with both
threshold policies, AOC per FMR (paper-compatible Eq. 13) with bootstrap
intervals, and a random-quality band over at least 20 seeds.

``lfw-devtest``: the same on the 3,708 View 1 test-people images (quick).

No image is scored by a model that saw its identity: a trained method is
**cross-fitted** over LFW's identity-disjoint View 1 people split — the model
trained on peopleDevTrain scores the peopleDevTest images and the one trained
on peopleDevTest scores the peopleDevTrain images (the two splits hold all
5,749 people).  A user checkpoint (``--weights``) is used for every image
as given, and the provenance says so.

Results go to a folder: ``table.md`` (Table 1 layout), ``evrc.png``
(Fig. 4 layout), ``scores.csv``, ``study.json`` (curves, AOCs, intervals,
random band) and ``provenance.json``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from fiqa_bench.data import Dataset
from fiqa_bench.data.lfw import load_lfw
from fiqa_bench.evaluation import StudyConfig, run_study, study_markdown
from fiqa_bench.hashing import sha256_json
from fiqa_bench.method import PROTOCOLS, QualityMethod, create_method
from fiqa_bench.pipeline import embed_dataset
from fiqa_bench.recognition import create_model
from fiqa_bench.report.plots import plot_evrc
from fiqa_bench.report.provenance import provenance
from fiqa_bench.scoring import ScoreTable, score_dataset

#: split scored -> the View 1 split its scoring model was trained on.
CROSS_FIT = {"devtest": "lfw:devtrain", "devtrain": "lfw:devtest"}


@dataclass(frozen=True)
class LFWProtocol:
    """Which LFW images a run evaluates, and how they are cross-fitted."""

    name: str
    split: str
    folds: tuple[str, ...]

    def run(
        self,
        method: str,
        *,
        data_root: Path,
        cache_dir: Path,
        out_dir: Path,
        weights: Path | None = None,
        settings: Mapping[str, str] | None = None,
        model: str = "dlib-resnet",
        config: StudyConfig = StudyConfig(),
        workers: int | None = None,
        progress: bool = True,
    ) -> Path:
        """Evaluate ``method`` and write the results folder; returns its path."""
        say = _say if progress else (lambda message: None)
        dataset = load_lfw(data_root, self.split)
        say(f"{self.name}: embedding {len(dataset)} images with {model}")
        emb = embed_dataset(dataset, create_model(model), cache_dir, workers=workers, progress=progress)
        table, scorers = self._score(method, weights, settings or {}, dataset, data_root, cache_dir, workers,
                                     progress)
        if list(table.paths) != list(emb.paths):
            raise RuntimeError("internal error: score rows do not follow the dataset order")
        keep = ~emb.failed
        study = run_study(method, emb.embeddings[keep], emb.identities[keep], table.quality[keep], config, say,
                          checkpoint_dir=cache_dir / "studies")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        table.write_csv(out_dir / "scores.csv")
        (out_dir / "study.json").write_text(json.dumps(study.to_dict()) + "\n")
        header = [
            f"# {method} on {self.name}",
            "",
            f"{len(dataset)} LFW images ({self.split}), deployed model {model}; "
            f"{int(emb.failed.sum())} images failed upstream and were left out; "
            f"{int(np.isnan(table.quality[keep]).sum())} had no quality.",
            "Scored by: " + "; ".join(f"{s['images']} with {s['checkpoint'] or 'no checkpoint'}" for s in scorers)
            + ".",
            "",
        ]
        (out_dir / "table.md").write_text("\n".join(header) + study_markdown(study))
        discard = np.asarray(study.curves.curves[0].discard_requested)
        policy = config.policies[0]
        fnmr = {f: study.curves.get(policy, f).fnmr for f in config.fmrs}
        band = {f: tuple(np.nanpercentile(study.random_fnmr[(policy, f)], q, axis=0) for q in (5, 50, 95))
                for f in config.fmrs}
        plot_evrc(out_dir / "evrc.png", discard, {method: fnmr}, band,
                  title=f"EVRC on {self.name}, {model}, {policy} threshold")
        stamp = provenance(
            protocol=self.name, method=method, deployed_model=model,
            deployed_model_fingerprint=emb.meta["model_fingerprint"], scorers=scorers,
            dataset=dataset.name, dataset_list_sha256=sha256_json(emb.image_sha256.tolist()),
            alignment=emb.meta["alignment"], study=asdict(config),
        )
        (out_dir / "provenance.json").write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
        say(f"wrote {out_dir}/table.md, evrc.png, scores.csv, study.json, provenance.json")
        return out_dir

    def _score(
        self, method_name: str, weights: Path | None, settings: Mapping[str, str], dataset: Dataset,
        data_root: Path, cache_dir: Path, workers: int | None, progress: bool,
    ) -> tuple[ScoreTable, list[dict]]:
        """Scores of every image of the protocol split, cross-fitted when the method is trained."""
        probe = create_method(method_name, weights=weights, settings=settings)
        if not probe.card.trained or weights is not None:
            table = score_dataset(probe, dataset, cache_dir, workers=workers, progress=progress)
            return table, [_scorer(probe, len(table.paths), "all images (no cross-fitting)")]
        parts, scorers = [], []
        for fold in self.folds:
            method = create_method(method_name, trained_on=CROSS_FIT[fold], settings=settings)
            part = score_dataset(method, load_lfw(data_root, fold), cache_dir, workers=workers, progress=progress)
            parts.append(part)
            scorers.append(_scorer(method, len(part.paths), f"lfw:{fold} images"))
        return _merge(parts, dataset.paths), scorers


def _scorer(method: QualityMethod, n: int, scope: str) -> dict:
    return {"images": f"{n} {scope}", "checkpoint": method.card.weights if method.card.trained else "",
            "checkpoint_sha256": method.card.weights_sha256, "method_fingerprint": method.fingerprint()}


def _merge(parts: list[ScoreTable], order: list[Path]) -> ScoreTable:
    """Fold tables merged into the protocol's image order (every image exactly once)."""
    row_of = {}
    for t, part in enumerate(parts):
        for i, p in enumerate(part.paths):
            row_of[p] = (t, i)
    missing = [str(p) for p in order if str(p) not in row_of]
    if missing:
        raise RuntimeError(f"{len(missing)} images were scored by no fold, e.g. {missing[0]}")
    rows = [row_of[str(p)] for p in order]

    def pick(field: str) -> np.ndarray:
        return np.array([getattr(parts[t], field)[i] for t, i in rows])

    return ScoreTable(paths=np.array([str(p) for p in order]), identities=pick("identities"),
                      quality=pick("quality").astype(np.float64), native=pick("native").astype(np.float64),
                      reasons=pick("reasons").astype(str), method=parts[0].method)


def _say(message: str) -> None:
    print(f"[fiqa-bench] {message}", file=sys.stderr, flush=True)


LFW = LFWProtocol("lfw", "all", ("devtest", "devtrain"))
LFW_DEVTEST = LFWProtocol("lfw-devtest", "devtest", ("devtest",))

PROTOCOLS.add("lfw", LFW.run, description="SDD-FIQA's LFW setting: all 13,233 images, all-vs-all, "
              "FMR 1e-2/1e-3/1e-4, both policies, cross-fitted")
PROTOCOLS.add("lfw-devtest", LFW_DEVTEST.run, description="quick LFW check: the 3,708 View 1 test-people images")
