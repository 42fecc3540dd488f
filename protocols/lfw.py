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

The methods read the recognition model ``--model``; the errors are those of
``--deployed-model`` (default: the same model).  When they differ the run is
the paper's cross-model setting (Sec. 4.2.2, Tables 3 and 4) for that one
direction; the ``cross-model`` protocol runs every direction in one table.

``run`` evaluates one method and writes a results folder (see
:mod:`fiqa_bench.protocol.evrc`): ``table.md`` (Table 1 layout),
``evrc-recomputed.png`` and ``evrc-fixed.png`` (Fig. 4 layout),
``scores.csv``, ``study.json`` and ``provenance.json``.  ``compare``
evaluates several on the same embeddings, comparisons, random band and
bootstrap replicates: ``table.md`` has a row per method and the matrix of
paired differences (which method beats which at 95%), the figures have a
curve per method, ``scores/<method>.csv`` hold each method's scores.

A method is named as on the command line, optionally with settings in
brackets: ``sdd``, ``sdd[variant=pos-only]``, ``serfiq[passes=50]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.data import DatasetError
from fiqa_bench.data.lfw import load_lfw
from fiqa_bench.protocol.study import StudyConfig
from fiqa_bench.method import MethodSpec
from fiqa_bench.protocol import PROTOCOLS
from fiqa_bench.protocol.evrc import OneOrSeveral, EVRCRun, Scoring, evaluate, study

#: split scored -> the View 1 split its scoring model was trained on.
CROSS_FIT = {"devtest": "lfw:devtrain", "devtrain": "lfw:devtest"}


@dataclass(frozen=True)
class LFWProtocol(OneOrSeveral):
    """Which LFW images a run evaluates, and how they are cross-fitted."""

    name: str
    split: str
    folds: tuple[str, ...]
    description: str


    def compare(self, methods: list[MethodSpec], *, context: RunContext, out_dir: Path, model: str = "dlib-resnet",
                deployed_model: str | None = None, dataset: str | None = None,
                config: StudyConfig = StudyConfig()) -> Path:
        """Evaluate several methods on the same comparisons, random band and bootstrap replicates."""
        self._refuse_dataset(dataset)
        return evaluate(methods, protocol=self.name, dataset=load_lfw(context.data_root, self.split),
                        scoring=self.scoring(context), context=context, out_dir=out_dir, quality_model=model,
                        deployed_model=deployed_model or model, config=config)

    def study(self, methods: list[MethodSpec], *, context: RunContext, quality_models: list[str],
              deployed_model: str, config: StudyConfig) -> EVRCRun:
        """The study of :meth:`compare` with each method on each quality model, not written (for protocols
        that combine several)."""
        return study(methods, protocol=self.name, dataset=load_lfw(context.data_root, self.split),
                     scoring=self.scoring(context), context=context, quality_models=quality_models,
                     deployed_model=deployed_model, config=config)

    def scoring(self, context: RunContext) -> Scoring:
        """Cross-fitting over the View 1 people split."""
        folds = tuple((load_lfw(context.data_root, fold), CROSS_FIT[fold]) for fold in self.folds)
        return Scoring(folds, "Trained methods are cross-fitted over LFW's identity-disjoint View 1 people split: "
                              "no image is scored by a model trained on its identity.")

    def _refuse_dataset(self, dataset: str | None) -> None:
        if dataset not in (None, "lfw"):
            raise DatasetError(f"protocol {self.name!r} runs on LFW only; for {dataset!r} use --protocol evrc")


LFW = LFWProtocol("lfw", "all", ("devtest", "devtrain"), "SDD-FIQA's LFW setting: all 13,233 images, "
                  "all-vs-all, FMR 1e-2/1e-3/1e-4, both policies, cross-fitted")
LFW_DEVTEST = LFWProtocol("lfw-devtest", "devtest", ("devtest",),
                          "quick LFW check: the 3,708 View 1 test-people images")

for _protocol in (LFW, LFW_DEVTEST):
    PROTOCOLS.add(_protocol.name, _protocol, description=_protocol.description)
