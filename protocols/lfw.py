"""LFW protocols: the SDD-FIQA paper's LFW setting (Sec. 4.1, Table 1, Fig. 4).

``lfw``: all 13,233 LFW images, every genuine (242,257) and impostor
(about 87.3 million) comparison of the deployed recognition model
(default ``dlib-resnet``), EVRC at FMR 1e-2, 1e-3 and 1e-4 with both
threshold policies, AOC per FMR (paper-compatible Eq. 13) with bootstrap
intervals, and a random-quality band over at least 20 seeds.

``lfw-devtest``: the same on the 3,708 View 1 test-people images (quick).

No image is scored by a model that saw its identity: a trained method is
**cross-fitted** over LFW's identity-disjoint View 1 people split, as the
dataset says (:data:`fiqa_bench.data.lfw.CROSS_FIT`): the model trained on
peopleDevTrain scores the peopleDevTest images and the one trained on
peopleDevTest scores the peopleDevTrain images.  A user checkpoint
(``--weights``) is used for every image as given, and the provenance says so.

The methods read the recognition model ``--model``; the errors are those of
``--deployed-model`` (default: the same model).  When they differ the run is
the paper's cross-model setting (Sec. 4.2.2, Tables 3 and 4) for that one
direction; the ``cross-model`` protocol runs every direction in one table.

``run`` evaluates one method and writes a results folder
(:mod:`fiqa_bench.protocol.evrc`): ``table.md`` (Table 1 layout),
``evrc-recomputed.png`` and ``evrc-fixed.png`` (Fig. 4 layout),
``scores.csv``, ``study.json`` and ``provenance.json``.  ``compare``
evaluates several on the same embeddings, comparisons, random band and
bootstrap replicates: ``table.md`` has a row per method and the matrix of
paired differences (which method beats which at 95%), the figures have a
curve per method, ``scores/<method>.csv`` hold each method's scores.
"""

from __future__ import annotations

from fiqa_bench.protocol import PROTOCOLS
from fiqa_bench.protocol.evrc import EVRCProtocol

LFW = EVRCProtocol("lfw", "SDD-FIQA's LFW setting: all 13,233 images, all-vs-all, FMR 1e-2/1e-3/1e-4, both "
                   "policies, cross-fitted", dataset="lfw", split="all", other_datasets=False)
LFW_DEVTEST = EVRCProtocol("lfw-devtest", "quick LFW check: the 3,708 View 1 test-people images", dataset="lfw",
                           split="devtest", other_datasets=False)

for _protocol in (LFW, LFW_DEVTEST):
    PROTOCOLS.add(_protocol.name, _protocol, description=_protocol.description)
