"""``pairs``: the EDC/EVRC study on a verification pair list, as FIQA papers compute it on LFW, AgeDB-30, CFP-FP ...

``fiqa-bench run --method M --protocol pairs --dataset bin:/data/agedb_30.bin`` (or ``lfw-view2``,
``pairs:LIST``, or any dataset with a named pair list: ``--dataset lfw --pair-list view2``) compares only the
listed pairs, genuine or impostor as the list says:

* the threshold at each FMR comes from the listed impostor pairs: ``fixed`` once on all of them (ISO/IEC
  29794-1 EDC), ``recomputed`` on those that remain at each discard fraction (SER-FIQ, MagFace, CR-FIQA);
* the discard axis is the fraction of *genuine comparisons* discarded by pair quality ``min(q_a, q_b)``
  (ISO/IEC 29794-1's EDC; ``axis="comparisons"`` of :mod:`fiqa_bench.metrics.discard`), so a pair list
  whose images repeat (an insightface ``.bin`` stores each pair's two images anew) and the same pairs read
  from a folder of unique images give the same curve;
* AOC (paper-compatible Eq. 13 on that axis) with bootstrap intervals over the identities (a ``.bin``'s
  pseudo-identities: the images its genuine pairs join) and the random band, and the ISO/IEC 29794-1 pAUC
  up to 20% discarded;
* the rule of every study: a threshold must rest on at least ``--min-false-matches`` (default 10) false
  matches, so with LFW View 2's 3,000 impostor pairs only FMR 1e-2 (30) is reported; FMR 1e-3 (3) and 1e-4
  (0) are n/a and the table says how many false matches they would rest on.  ``--min-false-matches 1``
  reports them as the papers do, on 3 impostors' scores.

Trained methods are scored as the dataset allows (LFW View 2: cross-fitted over LFW's View 1 people split;
a ``.bin``: the shipped heads, with the note that this is fair only if its people are not LFW's
peopleDevTrain) or by heads trained on ``--train-on``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from fiqa_bench.data import Dataset, DatasetError, Pair
from fiqa_bench.protocol import PROTOCOLS, Option, Request
from fiqa_bench.protocol.evrc import EVRCProtocol
from fiqa_bench.protocol.study import StudyConfig


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"--min-false-matches must be >= 1, got {value}")
    return value


@dataclass(frozen=True)
class PairListProtocol(EVRCProtocol):
    """The EVRC study on the listed pairs of a dataset (see the module docstring)."""

    options: tuple[Option, ...] = (
        Option("pair_list", "which of the dataset's pair lists to compare (default: the one a pair-list set is "
                            "evaluated on; lfw: view2, devtrain or devtest)"),
        Option("min_false_matches", "the fewest false matches a threshold may rest on (default 10)", _positive_int),
    )

    def checked(self, dataset: Dataset) -> Dataset:
        if not len(dataset):
            raise DatasetError(f"{dataset.name} holds no image")
        return dataset

    def pairs(self, dataset: Dataset, request: Request) -> Sequence[Pair]:
        """The pair list named by ``--pair-list``, else the one the dataset is evaluated on.

        Raises:
            DatasetError: the dataset has no such list, or it lacks genuine or impostor pairs.
        """
        name = request.options.get("pair_list") or dataset.pair_list
        if name is None:
            lists = ", ".join(dataset.pairs) or "none"
            raise DatasetError(f"{dataset.name} is an identity set: name one of its pair lists with --pair-list "
                               f"(its lists: {lists}), or compare all against all with --protocol evrc")
        if name not in dataset.pairs:
            raise DatasetError(f"{dataset.name} has no pair list {name!r}; its lists: "
                               f"{', '.join(dataset.pairs) or 'none'}")
        pairs = dataset.pairs[name]
        genuine = sum(p.genuine for p in pairs)
        if not genuine or genuine == len(pairs):
            raise DatasetError(f"pair list {name!r} of {dataset.name} has {genuine} genuine and "
                               f"{len(pairs) - genuine} impostor pairs; the study needs both")
        return pairs

    def study_config(self, request: Request) -> StudyConfig:
        """The request's settings on the genuine-comparisons axis, with ``--min-false-matches``."""
        rule = request.options.get("min_false_matches", request.config.min_false_matches)
        return replace(request.config, axis="comparisons", min_false_matches=rule)


PAIRS = PairListProtocol("pairs", "EDC/EVRC on a verification pair list (.bin, lfw-view2, pairs:LIST, --pair-list): "
                         "thresholds from the listed impostors, fixed and recomputed, AOC and ISO pAUC")
PROTOCOLS.add(PAIRS.name, PAIRS, description=PAIRS.description)
