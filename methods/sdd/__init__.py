"""SDD-FIQA: Similarity Distribution Distance (Ou et al., CVPR 2021).

Quality pseudo-labels (paper Eqs. 7-10, :mod:`fiqa_bench.methods.sdd.labels`):
for each training image ``x``, the cosine similarities to ``m`` images of its
own identity (``S^P``) and to ``m`` images of other identities (``S^N``) are
collected, and the label is the Wasserstein distance between the two
empirical distributions,

    Q_x = mean_k  delta[ WD(S^P_{x,k} || S^N_{x,k}) ],
    delta[l] = 100 (l - min L) / (max L - min L),

averaged over ``K`` random draws, each min-max scaled to [0, 100] over the
set.  A regression network (the recognition backbone without its embedding
layer, dropout 0.5, one linear output) is then trained on the labels with the
Huber loss (Eq. 12; :mod:`fiqa_bench.method.training`), and its output
is the quality: higher is better.

The shipped models: ``dlib-resnet`` backbone, ``head`` mode (the backbone is
frozen; an ensemble of five small heads on its pooled stage features is
learned, see :mod:`fiqa_bench.method.training` for why and how it was
chosen), one trained on LFW peopleDevTrain
and one on LFW peopleDevTest, so that every LFW image can be scored by a
model that never saw its identity (the ``lfw`` protocol cross-fits).  Each
file in ``methods/weights/`` has a ``.json`` beside it with its sha256, the
training log and the command that reproduces it.  The ablation variants of
the labels (paper Fig. 6: ``pos-only``, ``neg-only``, ``signed``) are the
setting ``variant``; Pos-Only is shipped too.

Loading, training and checkpoints are the shared machinery of
:mod:`fiqa_bench.method.learned`; this file holds the labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fiqa_bench.method.learned import LearnedQualityMethod, RegressionObjective, TrainingSet, register_learned
from fiqa_bench.methods.sdd.labels import DRAWS, VARIANTS, sdd_pseudo_labels

PAPER = "F.-Z. Ou et al., SDD-FIQA: Unsupervised Face Image Quality Assessment with Similarity Distribution Distance, CVPR 2021"


@dataclass(frozen=True)
class SDDLabels(RegressionObjective):
    """SDD-FIQA's pseudo-labels (paper: m = 24, K = 12), regressed with the Huber loss.

    Attributes:
        m: similarities per image and draw.
        repetitions: K, the number of draws averaged.
        label_seed: seed of the draws.
        variant: "sdd" (the paper's WD), "pos-only", "neg-only" or "signed" (the ablations).
        draws: the random-draw scheme (:func:`~fiqa_bench.methods.sdd.labels.sdd_pseudo_labels`):
            "auto" (default: "sequential", the shipped models' labels, in one
            process; "per-chunk", shared by the processes, under torchrun),
            "sequential" or "per-chunk" (``--set draws=per-chunk`` reproduces in
            one process the labels of a torchrun training).
    """

    method: ClassVar[str] = "sdd"
    selectors: ClassVar[tuple[str, ...]] = ("variant",)

    m: int = 24
    repetitions: int = 12
    label_seed: int = 0
    variant: str = "sdd"
    draws: str = "auto"

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"sdd: variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.draws not in ("auto", *DRAWS):
            raise ValueError(f"sdd: draws must be one of auto, {', '.join(DRAWS)}, got {self.draws!r}")

    def resolved_draws(self) -> str:
        """The scheme the labels are drawn with here: "auto" is "per-chunk" under a process group of
        several processes, else "sequential"."""
        if self.draws != "auto":
            return self.draws
        from fiqa_bench.method.distributed import is_distributed

        return "per-chunk" if is_distributed() else "sequential"

    def settings(self) -> dict:
        """m, repetitions, label_seed, variant, and ``draws`` only when it is "per-chunk" (so the records
        and cache keys of sequential labels, every shipped model's, are those written before it existed)."""
        out = super().settings()
        del out["draws"]
        draws = self.resolved_draws()
        return out | ({"draws": draws} if draws != "sequential" else {})

    def labels(self, data: TrainingSet) -> np.ndarray:
        """Eqs. 7-10 on the training embeddings; NaN for identities with one image."""
        return sdd_pseudo_labels(data.embeddings, data.identities, m=self.m, repetitions=self.repetitions,
                                 seed=self.label_seed, variant=self.variant, draws=self.resolved_draws()).labels


class SDDFIQA(LearnedQualityMethod):
    """SDD-FIQA's quality regressor, loaded from a checkpoint (settings ``variant`` and ``model``).

    A ``head`` checkpoint reads the recognition model's pooled stage outputs
    (``needs = stages:<model>``); a ``full`` one carries a fine-tuned backbone
    and reads aligned chips.  Native output: predicted quality on the
    pseudo-labels' 0-100 scale, higher = better.
    """

    objective = SDDLabels
    paper = PAPER


register_learned(SDDFIQA, "SDD-FIQA (CVPR 2021): Wasserstein pseudo-labels + quality regression", aliases=("sdd-fiqa",))
