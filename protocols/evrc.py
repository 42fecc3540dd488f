"""``evrc``: the EVRC/AOC study of the LFW protocol on any labelled dataset (``--dataset``).

``fiqa-bench run --method M --protocol evrc --dataset folder:PATH`` (or any
registered dataset, ``fiqa-bench list datasets``) embeds every image with the
deployed model, compares all against all (genuine = same identity label),
and reports the EVRC at FMR 1e-2/1e-3/1e-4 under both threshold policies,
the paper-compatible AOC (SDD-FIQA Eq. 13) with identity-bootstrap intervals
and the random band, exactly as ``lfw`` does (:mod:`fiqa_bench.protocol.evrc`).

No cross-fitting is possible on a dataset the shipped models never saw: a
trained method scores every image with its shipped model trained on LFW's
peopleDevTrain (:data:`fiqa_bench.method.learned.DEFAULT_TRAINED_ON`), and the
table and provenance say so.  The result is a fair test only if the dataset's
people are not among those 4,038 LFW people; for LFW itself use ``--protocol
lfw``, which cross-fits (this protocol refuses LFW).

Identities are what the dataset says (a folder dataset: the first-level
subfolder).  Identities with one image take part only as impostors; a
dataset with no identity of two or more images has no genuine comparison
and is refused with that count.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.data import Dataset, DatasetError, load_dataset
from fiqa_bench.protocol.study import StudyConfig
from fiqa_bench.method.learned import DEFAULT_TRAINED_ON
from fiqa_bench.method import MethodSpec
from fiqa_bench.protocol import PROTOCOLS
from fiqa_bench.protocol.evrc import OneOrSeveral, Scoring, evaluate


def checked_dataset(spec: str | None, context: RunContext) -> Dataset:
    """The dataset ``spec`` names, refused when it cannot give an EVRC study (with the reason)."""
    if not spec:
        raise DatasetError("protocol 'evrc' needs --dataset (e.g. folder:PATH; fiqa-bench list datasets)")
    if spec.partition(":")[0] == "lfw":
        raise DatasetError("for LFW use --protocol lfw: it cross-fits trained methods over LFW's people split, "
                           "which this protocol cannot")
    dataset = load_dataset(spec, context.data_root)
    if not len(dataset):
        raise DatasetError(f"{dataset.name} holds no image")
    counts = Counter(dataset.identities)
    if not any(n >= 2 for n in counts.values()):
        raise DatasetError(f"{dataset.name}: none of its {len(counts)} identities has two or more images, so there "
                           f"is no genuine comparison to study")
    return dataset


@dataclass(frozen=True)
class EVRCOnDataset(OneOrSeveral):
    """The LFW study on a dataset named at run time."""

    name: str = "evrc"
    description: str = ("the EVRC/AOC study on any labelled dataset (--dataset folder:PATH ...), shipped models, "
                        "no cross-fitting")


    def compare(self, methods: list[MethodSpec], *, context: RunContext, out_dir: Path, model: str = "dlib-resnet",
                deployed_model: str | None = None, dataset: str | None = None,
                config: StudyConfig = StudyConfig()) -> Path:
        """Evaluate several methods on ``dataset`` on the same comparisons and replicates."""
        data = checked_dataset(dataset, context)
        note = (f"No cross-fitting was possible: trained methods scored every image with their shipped model "
                f"trained on {DEFAULT_TRAINED_ON} (LFW peopleDevTrain, 4,038 people). The result is fair only if "
                f"{data.name}'s identities are disjoint from those people.")
        return evaluate(methods, protocol=self.name, dataset=data, scoring=Scoring((), note), context=context,
                        out_dir=out_dir, quality_model=model, deployed_model=deployed_model or model, config=config)


EVRC = EVRCOnDataset()
PROTOCOLS.add(EVRC.name, EVRC, description=EVRC.description)
