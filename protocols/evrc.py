"""``evrc``: the EVRC/AOC study of the LFW protocol on any labelled dataset (``--dataset``).

``fiqa-bench run --method M --protocol evrc --dataset folder:PATH`` (or any
registered dataset, ``fiqa-bench list datasets``) embeds every image with the
deployed model, compares all against all (genuine = same identity label),
and reports the EVRC at FMR 1e-2/1e-3/1e-4 under both threshold policies,
the paper-compatible AOC (SDD-FIQA Eq. 13) with identity-bootstrap intervals
and the random band, exactly as ``lfw`` does (:mod:`fiqa_bench.protocol.evrc`).

Trained methods are scored as the dataset allows: cross-fitted where it has
identity-disjoint parts with their own shipped models (LFW: ``--dataset lfw``
gives the ``lfw`` protocol's numbers), else every image by the shipped model
trained on LFW's peopleDevTrain
(:data:`fiqa_bench.method.learned.DEFAULT_TRAINED_ON`), and the table and
provenance say so: such a result is a fair test only if the dataset's people
are not among those 4,038 LFW people.

Identities are what the dataset says (a folder dataset: the first-level
subfolder).  Identities with one image take part only as impostors; a
dataset with no identity of two or more images has no genuine comparison
and is refused with that count.
"""

from __future__ import annotations

from fiqa_bench.protocol import PROTOCOLS
from fiqa_bench.protocol.evrc import EVRCProtocol

EVRC = EVRCProtocol("evrc", "the EVRC/AOC study on any labelled dataset (--dataset folder:PATH ...), cross-fitted "
                    "where the dataset allows, else shipped models")
PROTOCOLS.add(EVRC.name, EVRC, description=EVRC.description)
