"""The ``fiqa-bench`` command line.

    fiqa-bench list {methods,models,datasets,protocols,detectors}
    fiqa-bench embed --model M --dataset D [--split S] --out FILE.npz
    fiqa-bench verify --model M --dataset lfw --split devtest --pairs devtest
    fiqa-bench train --method sdd --model dlib-resnet --dataset lfw --split devtrain [--out FILE.pt]
    fiqa-bench score --method sdd --dataset D [--split S] --out FILE.csv
    fiqa-bench run --method sdd --protocol lfw [--out DIR]
    fiqa-bench compare --methods sdd,serfiq,brisque (or all) --protocol lfw [--out DIR]
    fiqa-bench run --method sdd --protocol pairs --dataset bin:PATH.bin    (or lfw-view2, pairs:LIST)
    fiqa-bench benchmark --methods all --datasets lfw,lfw-view2,faces94 [--models A,B] [--train-on D]
    fiqa-bench export-bin --dataset lfw-view2 --out lfw.bin

Global options (before or after the command): ``--data-root`` (default
``$FIQA_BENCH_DATA`` or ``../shared/datasets``), ``--cache-dir`` (default
``$FIQA_BENCH_CACHE`` or ``~/.cache/fiqa-bench``), ``--chip-store``, ``--workers``, ``--quiet``.
``--plugin FILE.py|MODULE`` (repeatable, every command) loads methods, protocols, datasets, models or
detectors from outside the package before the command line is read; installed distributions add theirs
through entry points (:mod:`fiqa_bench.registry`).
Errors in the user's input (missing dataset, unknown name, bad checkpoint)
print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from fiqa_bench.faces.detector import DEFAULT_DETECTOR, DETECTORS
from fiqa_bench.pipeline.paths import CHIP_STORES, resolve_cache_dir, resolve_chip_store, resolve_data_root
from fiqa_bench.registry import Registry, UnknownNameError, load_plugin

if TYPE_CHECKING:
    from collections.abc import Iterable

    from fiqa_bench.data import Dataset
    from fiqa_bench.method import MethodSpec
    from fiqa_bench.pipeline.context import RunContext
    from fiqa_bench.protocol import Protocol, Request


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", default=None, help="folder holding the datasets "
                        "(default: $FIQA_BENCH_DATA or ../shared/datasets)")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default: $FIQA_BENCH_CACHE "
                        "or ~/.cache/fiqa-bench)")
    parser.add_argument("--workers", type=int, default=None, help="processes for face alignment, for the heads a "
                        "study trains on first use and for its bootstrap (default: CPU count, at most 8)")
    parser.add_argument("--device", default="cpu", help="torch device for recognition models (default cpu)")
    parser.add_argument("--detector", default=None, choices=DETECTORS.names(),
                        help="face detector (default: the recognition model's own: dlib-resnet hog, "
                        "mobilefacenet-512 retinaface)")
    parser.add_argument("--chip-store", default=None, choices=CHIP_STORES,
                        help="how the cache keeps aligned chips: raw (66 KB per dlib150 chip, fastest reuse), "
                        "webp (lossless, about 3.6x smaller) or none (cut again from the image when needed); "
                        "the same results with each (default: $FIQA_BENCH_CHIP_STORE or raw)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _plugin_option(parser: argparse.ArgumentParser, default: object = argparse.SUPPRESS) -> None:
    """``--plugin``: read by :func:`load_plugins` before the parser is built (its choices may name plugins)."""
    parser.add_argument("--plugin", action="append", default=default, metavar="FILE.py|MODULE",
                        help="load methods, protocols, datasets, models or detectors from this Python file or "
                        "module (repeatable; also $FIQA_BENCH_PLUGINS); installed packages add theirs through "
                        "the fiqa_bench.* entry points")


def load_plugins(argv: list[str]) -> None:
    """Load every ``--plugin`` of ``argv`` (anywhere on the line), before the parser lists the registries."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    _plugin_option(pre, default=[])
    for spec in pre.parse_known_args(argv)[0].plugin:
        load_plugin(spec)


def _protocol_models(parser: argparse.ArgumentParser) -> None:
    """The options every protocol run takes: the models and the dataset."""
    parser.add_argument("--model", default="dlib-resnet", help="recognition model the methods read, and the "
                        "deployed one unless --deployed-model names another")
    parser.add_argument("--deployed-model", default=None, help="recognition model whose errors are counted "
                        "(default: --model); another model makes a cross-model run (SDD-FIQA Tables 3, 4)")
    parser.add_argument("--dataset", default=None, help="dataset of protocols that take one (evrc, bias ...): "
                        "'folder:PATH' or a registered dataset")
    parser.epilog = ("A protocol's own options (e.g. bias: --attributes CSV) follow the others; fiqa-bench list "
                     "protocols shows them.")


def _train_on(parser: argparse.ArgumentParser) -> None:
    """``--train-on``: where trained methods' heads are trained."""
    parser.add_argument("--train-on", default=None, help="train the learned methods' heads on this dataset "
                        "(lfw:devtrain, faces94, folder:PATH, bin:PATH ...) and score every image with them; "
                        "refused when it shares people with the scored dataset (default: the shipped heads, "
                        "cross-fitted where the dataset allows)")


def _protocol_options(extra: list[str], protocol: Protocol) -> dict:
    """The protocol's own options among the arguments the common parser left (``--name VALUE``), parsed by the
    protocol; anything else is an error naming the argument and the protocol's options."""
    given: dict[str, str] = {}
    rest = list(extra)
    while rest:
        flag = rest.pop(0)
        name, sep, value = flag.partition("=")
        if not name.startswith("--") or len(name) < 3:
            raise ValueError(f"unrecognized argument {flag!r}")
        if not sep:
            if not rest:
                raise ValueError(f"option {name} of protocol {protocol.name!r} needs a value")
            value = rest.pop(0)
        given[name[2:].replace("-", "_")] = value
    return protocol.parse_options(given)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fiqa-bench", description="Face Image Quality Assessment benchmark")
    _plugin_option(parser)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list registered methods, protocols, datasets, models or detectors")
    p.add_argument("what", choices=list(REGISTRIES))

    for name, helptext in (("embed", "embed a dataset with a recognition model"),
                           ("verify", "verification accuracy on a dataset's pair list")):
        p = sub.add_parser(name, help=helptext)
        _common(p)
        p.add_argument("--model", required=True, help="recognition model (fiqa-bench list models)")
        p.add_argument("--weights", default=None, help="checkpoint for models that load one")
        p.add_argument("--dataset", required=True, help="'lfw' or 'folder:PATH'")
        p.add_argument("--split", default=None, help="dataset split (lfw: all, devtrain, devtest)")
        if name == "embed":
            p.add_argument("--out", required=True, type=Path, help="output .npz")
        else:
            p.add_argument("--pairs", default="devtest", help="pair list of the dataset (lfw: view2, "
                           "devtrain, devtest)")
    p = sub.add_parser("train", help="train a learned FIQA method (e.g. SDD-FIQA's regressor)")
    _common(p)
    p.add_argument("--method", required=True, help="method to train, NAME or NAME[key=value,...] (fiqa-bench list "
                   "methods)")
    p.add_argument("--model", default="dlib-resnet", help="recognition model it learns from (a name, or "
                   "NAME@CHECKPOINT for your weights, e.g. iresnet50@backbone.pth)")
    p.add_argument("--dataset", required=True, help="'lfw' or 'folder:PATH'")
    p.add_argument("--split", default=None, help="dataset split")
    p.add_argument("--mode", default=None, help="head (frozen backbone, CPU) or full (fine-tune, GPU)")
    p.add_argument("--epochs", default=None, help="training epochs (full mode)")
    p.add_argument("--schedule", default=None, help="learning-rate schedule: paper or official")
    p.add_argument("--seed", default=None, help="training seed")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="method-specific option, e.g. m=24, repetitions=12, variant=signed (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="checkpoint to write "
                   "(default: <cache>/trained/<method>-<model>-<dataset>.pt)")

    p = sub.add_parser("score", help="score every image of a dataset with a FIQA method")
    _common(p)
    p.add_argument("--method", required=True, help="FIQA method, NAME or NAME[key=value,...] (fiqa-bench list "
                   "methods); --set adds settings")
    p.add_argument("--weights", default=None, help="checkpoint of a trained method")
    p.add_argument("--trained-on", default=None, help="use the shipped model trained on this dataset, "
                   "e.g. lfw:devtest")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="method setting, e.g. seed=3, variant=pos-only, model=dlib-resnet (repeatable)")
    p.add_argument("--dataset", required=True, help="'lfw' or 'folder:PATH'")
    p.add_argument("--split", default=None, help="dataset split")
    p.add_argument("--out", type=Path, default=None, help="output CSV: path, identity, quality, native, face, reason "
                   "(default results/scores/<dataset>-<method>.csv)")

    p = sub.add_parser("run", help="evaluate a FIQA method under a protocol (tables, figure, scores)")
    _common(p)
    p.add_argument("--method", required=True, help="FIQA method, NAME or NAME[key=value,...] (fiqa-bench list "
                   "methods); --set adds settings")
    p.add_argument("--protocol", required=True, help="protocol (fiqa-bench list protocols)")
    p.add_argument("--weights", default=None, help="checkpoint of a trained method (disables cross-fitting)")
    _train_on(p)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="method setting, e.g. variant=pos-only (repeatable)")
    _protocol_models(p)
    p.add_argument("--random-seeds", type=int, default=20, help="random-quality seeds for the band")
    p.add_argument("--n-boot", type=int, default=100, help="bootstrap replicates per AOC (0 = none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random band and the bootstrap")
    p.add_argument("--out", type=Path, default=None, help="results folder (default results/<protocol>-<method>)")

    p = sub.add_parser("compare", help="evaluate several FIQA methods on one protocol: one table, figures per "
                       "threshold policy, and which method beats which")
    _common(p)
    p.add_argument("--methods", required=True, help="comma-separated methods, each optionally with settings "
                   "in brackets (sdd,sdd[variant=pos-only],serfiq), or 'all'")
    p.add_argument("--protocol", required=True, help="protocol (fiqa-bench list protocols)")
    _protocol_models(p)
    _train_on(p)
    p.add_argument("--random-seeds", type=int, default=20, help="random-quality seeds for the band")
    p.add_argument("--n-boot", type=int, default=100, help="paired bootstrap replicates (0 = none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random band and the bootstrap")
    p.add_argument("--out", type=Path, default=None, help="results folder (default results/compare-<protocol>)")
    p = sub.add_parser("benchmark", help="the methods on several datasets and models: one table per dataset, "
                       "then mean ranks, Friedman test, critical-difference diagram and Kendall tau across them")
    _common(p)
    p.add_argument("--methods", required=True, help="comma-separated methods (as for compare), or 'all'")
    p.add_argument("--datasets", required=True, help="comma-separated datasets: identity sets are compared all "
                   "against all (lfw, lfw:devtest, faces94, folder:PATH), pair-list sets on their pairs "
                   "(lfw-view2, bin:PATH, pairs:LIST)")
    p.add_argument("--models", default="dlib-resnet,mobilefacenet-512",
                   help="comma-separated recognition models; each is read by the methods and deployed")
    _train_on(p)
    p.add_argument("--random-seeds", type=int, default=20, help="random-quality seeds for the band")
    p.add_argument("--n-boot", type=int, default=0, help="paired bootstrap replicates per block (default 0: the "
                   "verdict rests on the ranks across blocks)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random band and the bootstrap")
    p.add_argument("--out", type=Path, default=Path("results") / "benchmark", help="results folder "
                   "(default results/benchmark)")

    p = sub.add_parser("export-bin", help="write a dataset's pair list as an insightface .bin of the project's "
                       "own 112x112 ArcFace chips (PNG)")
    _common(p)
    p.add_argument("--dataset", required=True, help="a dataset with a pair list (lfw-view2, pairs:LIST, lfw ...)")
    p.add_argument("--split", default=None, help="dataset split")
    p.add_argument("--pair-list", default=None, help="which of its pair lists (default: the one it is evaluated "
                   "on; lfw: view2, devtrain, devtest)")
    p.add_argument("--out", required=True, type=Path, help="the .bin file to write")

    p = sub.add_parser("paper", help="regenerate the SDD-FIQA paper's tables and figures (results/paper/)")
    _common(p)
    p.add_argument("--table", type=int, action="append", help="table number (1-4), repeatable")
    p.add_argument("--figure", type=int, action="append", help="figure number (4-7), repeatable")
    p.add_argument("--all", action="store_true", help="every table and figure the data allows")
    p.add_argument("--models", default="dlib-resnet,mobilefacenet-512",
                   help="the two recognition models: the first is the quality and deployed model of the "
                        "same-model tables, the second the other side of the cross-model ones")
    p.add_argument("--random-seeds", type=int, default=20, help="random-quality seeds for the band")
    p.add_argument("--n-boot", type=int, default=100, help="bootstrap replicates (0 = none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random band, bootstrap and templates")
    p.add_argument("--out", type=Path, default=Path("results") / "paper", help="output folder (default results/paper)")
    for command in sub.choices.values():
        _plugin_option(command)
    return parser


def _context(args: argparse.Namespace, model: str | None = None) -> RunContext:
    """The run context the common options describe; the face detector defaults to ``model``'s own."""
    from fiqa_bench.pipeline.context import RunContext, default_workers
    from fiqa_bench.faces.align import AlignmentSettings

    detector = args.detector
    if detector is None:
        from fiqa_bench.recognition import default_detector

        detector = default_detector(model) if model else DEFAULT_DETECTOR
    return RunContext(cache_dir=resolve_cache_dir(args.cache_dir), data_root=resolve_data_root(args.data_root),
                      alignment=AlignmentSettings(detector=detector), workers=args.workers or default_workers(),
                      device=args.device, progress=not args.quiet, detector_chosen=args.detector is not None,
                      chip_store=resolve_chip_store(args.chip_store))


def _method_model(method) -> str | None:  # noqa: ANN001 - a QualityMethod
    """The recognition model a method reads (its card's ``embeddings:``, ``backbone:`` or ``stages:``), if any."""
    return method.card.input.model


def _protocol_lines(protocol: Protocol) -> list[str]:
    """``fiqa-bench list protocols``'s lines for a protocol's own options."""
    return [f"    {o.flag} VALUE  {o.help}" for o in protocol.options]


#: ``fiqa-bench list WHAT``: the module and name of each registry.
REGISTRIES = {"methods": ("fiqa_bench.method", "METHODS"), "protocols": ("fiqa_bench.protocol", "PROTOCOLS"),
              "datasets": ("fiqa_bench.data", "DATASETS"), "models": ("fiqa_bench.recognition.registry", "MODELS"),
              "detectors": ("fiqa_bench.faces.detector", "DETECTORS")}


def _registry(what: str) -> Registry:
    """The registry ``fiqa-bench list WHAT`` reads (looked up when called, so a swapped registry is the one seen)."""
    import importlib

    module, name = REGISTRIES[what]
    return getattr(importlib.import_module(module), name)


def cmd_list(args: argparse.Namespace) -> int:
    registry = _registry(args.what)
    entries = registry.entries()
    if not entries:
        print(f"no {args.what} registered yet")
        return 0
    width = max(len(e.name) for e in entries)
    for e in entries:
        alias = f"  (aliases: {', '.join(e.aliases)})" if e.aliases else ""
        origin = f"  [plugin: {e.origin}]" if e.origin else ""
        print(f"{e.name:<{width}}  {e.description}{alias}{origin}")
        if args.what == "protocols":
            for line in _protocol_lines(e.obj):
                print(line)
    return 0


def _say_dataset_notes(dataset: Dataset) -> None:
    """What the dataset loader skipped (e.g. a folder link that loops), on stderr."""
    for note in dataset.notes:
        print(f"fiqa-bench: note: {note}", file=sys.stderr)


def _image_counts(n_images: int, keys: Iterable[str], reasons: Iterable[str]) -> str:
    """``"N images (U unique files: K byte-identical copies, computed once)"`` (what the progress bars
    count) and how many were converted or too small when read."""
    from fiqa_bench.pipeline.embedding import count_load_notes

    unique = len(set(keys))
    copies = n_images - unique
    dup = f" ({unique} unique files: {copies} byte-identical cop{'ies' if copies != 1 else 'y'}, computed once)"
    return (f"{n_images} images{dup if copies else ''}, {count_load_notes(reasons)} converted or too small "
            f"for a detector (see the reasons)")


def _embeddings(args: argparse.Namespace):  # noqa: ANN202
    from fiqa_bench.data import load_dataset
    from fiqa_bench.pipeline.embedding import embed_dataset

    context = _context(args, f"{args.model}@{args.weights}" if args.weights else args.model)
    dataset = load_dataset(args.dataset, context.data_root, args.split, context.cache_dir)
    _say_dataset_notes(dataset)
    context = context.for_dataset(dataset)
    result = embed_dataset(dataset, context.model(args.model, args.weights), context)
    return dataset, result


def cmd_embed(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    _, result = _embeddings(args)
    result.save(args.out)
    meta = result.meta
    print(f"wrote {args.out}: {_image_counts(meta['n_images'], result.image_sha256, result.reasons)}, "
          f"{meta['n_failed']} failed, "
          f"{meta['n_fallback_box']} with no detected face (fallback box), model {meta['model']}, "
          f"{time.perf_counter() - start:.1f} s")
    for path, reason in zip(result.paths[result.failed], result.reasons[result.failed]):
        print(f"  failed: {path}: {reason}", file=sys.stderr)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    import numpy as np

    from fiqa_bench.data import DatasetError
    from fiqa_bench.metrics.verification import best_threshold_accuracy, kfold_accuracy

    dataset, result = _embeddings(args)
    pairs = dataset.pairs.get(args.pairs)
    if not pairs:
        raise DatasetError(f"{dataset.name} has no pairs named {args.pairs!r} in this split; "
                           f"available: {sorted(k for k, v in dataset.pairs.items() if v)}")
    first = np.array([p.first for p in pairs])
    second = np.array([p.second for p in pairs])
    genuine = np.array([p.genuine for p in pairs])
    folds = np.array([p.fold for p in pairs])
    emb = result.embeddings
    usable = ~(result.failed[first] | result.failed[second])
    scores = np.einsum("ij,ij->i", emb[first[usable]], emb[second[usable]])
    acc = best_threshold_accuracy(scores, genuine[usable])
    in_pairs = np.unique(np.r_[first, second])
    summary = {"dataset": dataset.name, "pairs": args.pairs, "model": result.meta["model"],
               "detector": result.meta["detector"], "accuracy": acc.accuracy, "threshold": acc.threshold,
               "n_genuine": acc.n_genuine, "n_impostor": acc.n_impostor,
               "pairs_dropped_failed_image": int((~usable).sum()),
               "images_in_pairs": int(len(in_pairs)),
               "images_in_pairs_without_face_found": int(sum(not f.startswith("found") for f in result.face[in_pairs]))}
    if len(np.unique(folds)) > 1:
        k = kfold_accuracy(scores, genuine[usable], folds[usable])
        summary |= {"kfold_mean_accuracy": k.mean, "kfold_sd": k.sd, "kfold_standard_error": k.standard_error,
                    "kfold_accuracies": k.fold_accuracies.tolist(), "kfold_thresholds": k.thresholds.tolist()}
    print(json.dumps(summary, indent=2))
    return 0


def _options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes KEY=VALUE, got {pair!r}")
        options[key] = value
    return options


def _method_spec(args: argparse.Namespace, weights: str | None = None) -> MethodSpec:
    """``--method`` in any of its forms (``NAME`` or ``NAME[key=value,...]``) with the ``--set`` pairs added.

    Raises:
        ValueError: a setting given both in brackets and with ``--set``.
    """
    from fiqa_bench.method import MethodSpec

    spec = MethodSpec.parse(args.method, Path(weights) if weights else None)
    extra = _options(args.set)
    twice = sorted(set(spec.settings) & set(extra))
    if twice:
        raise ValueError(f"setting {', '.join(twice)} of {args.method!r} is given twice (in brackets and with --set)")
    return MethodSpec(spec.name, {**spec.settings, **extra}, spec.weights)


def cmd_train(args: argparse.Namespace) -> int:
    from fiqa_bench.data import load_dataset
    from fiqa_bench.method import TRAINERS

    spec = _method_spec(args)
    method = spec.name
    if method not in TRAINERS:
        raise ValueError(f"method {method!r} is not trained; trained methods: {', '.join(TRAINERS.names())}")
    options = dict(spec.settings)
    for key in ("mode", "epochs", "schedule", "seed"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    from fiqa_bench.method.distributed import current, init_if_launched
    from fiqa_bench.pipeline.stores import trained_checkpoint

    args.device = init_if_launched(args.device)  # under torchrun: one process of a group; rank 0 writes
    rank = current()[0]
    args.quiet = args.quiet or rank != 0
    context = _context(args, args.model)
    dataset = load_dataset(args.dataset, context.data_root, args.split, context.cache_dir)
    out = args.out or trained_checkpoint(context.cache_dir, method, args.model, dataset.name)
    start = time.perf_counter()
    record = TRAINERS.get(method)(dataset, args.model, context, out, options)
    if rank == 0:
        print(f"wrote {out} (sha256 {record['sha256'][:16]}...) and {out.with_suffix('.json').name}: "
              f"{record.get('n_labelled', '?')} labelled images, {time.perf_counter() - start:.1f} s")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    import numpy as np

    from fiqa_bench.data import load_dataset
    from fiqa_bench.method import create_method
    from fiqa_bench.pipeline.embedding import count_fallbacks
    from fiqa_bench.pipeline.scoring import UPSTREAM, score_dataset
    from fiqa_bench.protocol.scoring import file_name

    start = time.perf_counter()
    spec = _method_spec(args)
    method = create_method(spec.name, args.weights, args.trained_on, spec.settings)
    context = _context(args, _method_model(method))
    dataset = load_dataset(args.dataset, context.data_root, args.split, context.cache_dir)
    _say_dataset_notes(dataset)
    context = context.for_dataset(dataset)
    out = args.out or Path("results") / "scores" / f"{file_name(dataset.name)}-{file_name(spec.label)}.csv"
    table = score_dataset(method, dataset, context)
    table.write_csv(out)
    missing = int(np.isnan(table.quality).sum())
    unreadable = int(sum(r.startswith(UPSTREAM) for r in table.reasons.tolist()))
    fallback = count_fallbacks(table.reasons)
    keys = context.file_keys.of(dataset.paths)  # the run's keys, hashed while scoring: no file is read again
    print(f"wrote {out}: {_image_counts(len(table.quality), keys, table.reasons)}, {missing} without a "
          f"quality score ({unreadable} unreadable, {missing - unreadable} refused by the method), {fallback} "
          f"with no face found by {context.alignment.detector} (scored on the fallback box: see the face column), "
          f"{time.perf_counter() - start:.1f} s")
    return 0


def _request(args: argparse.Namespace, protocol: Protocol, out: Path) -> Request:
    """The protocol request the command line describes."""
    from fiqa_bench.protocol import Request
    from fiqa_bench.protocol.study import StudyConfig

    return Request(_context(args, args.deployed_model or args.model), out, model=args.model,
                   deployed_model=args.deployed_model, dataset=args.dataset,
                   config=StudyConfig(random_seeds=args.random_seeds, n_boot=args.n_boot, seed=args.seed),
                   options=_protocol_options(args.extra, protocol), train_on=args.train_on)


def _evaluate(args: argparse.Namespace, default_out: Callable[[str], str],
              evaluate: Callable[[Protocol, Request], Path]) -> int:
    """Run ``evaluate(protocol, request)`` for the command line's protocol and print the table it wrote; the
    results folder is ``--out``, else ``results/<default_out(protocol name)>``."""
    from fiqa_bench.protocol import PROTOCOLS

    protocol = PROTOCOLS.get(args.protocol)
    request = _request(args, protocol, args.out or Path("results") / default_out(protocol.name))
    start = time.perf_counter()
    folder = evaluate(protocol, request)
    print((folder / "table.md").read_text())
    print(f"results in {folder} ({time.perf_counter() - start:.0f} s)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    spec = _method_spec(args, args.weights)
    return _evaluate(args, lambda name: f"{name}-{spec.label}", lambda protocol, request: protocol.run(spec, request))


def cmd_compare(args: argparse.Namespace) -> int:
    from fiqa_bench.method import parse_methods

    specs = parse_methods(args.methods)
    return _evaluate(args, lambda name: f"compare-{name}", lambda protocol, request: protocol.compare(specs, request))


def cmd_benchmark(args: argparse.Namespace) -> int:
    from fiqa_bench.method import parse_methods
    from fiqa_bench.protocol.benchmark import run_benchmark
    from fiqa_bench.protocol.study import StudyConfig

    specs = parse_methods(args.methods)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    config = StudyConfig(random_seeds=args.random_seeds, n_boot=args.n_boot, seed=args.seed)
    start = time.perf_counter()
    folder = run_benchmark(specs, datasets=datasets, models=models, context=_context(args), out_dir=args.out,
                           config=config, train_on=args.train_on)
    print((folder / "README.md").read_text())
    print(f"results in {folder} ({(time.perf_counter() - start) / 60:.1f} min)")
    return 0


def cmd_export_bin(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from fiqa_bench.data import DatasetError, load_dataset
    from fiqa_bench.pipeline.export import export_bin

    context = _context(args)
    if args.detector is None:  # insightface cut its crops on a detector's five ArcFace points
        context = context.but(alignment=replace(context.alignment, detector="retinaface"))
    dataset = load_dataset(args.dataset, context.data_root, args.split, context.cache_dir)
    name = args.pair_list or dataset.pair_list
    if name is None or name not in dataset.pairs:
        raise DatasetError(f"{dataset.name}: name one of its pair lists with --pair-list "
                           f"({', '.join(dataset.pairs) or 'it has none'})")
    start = time.perf_counter()
    written, left_out = export_bin(dataset, dataset.pairs[name], context, args.out)
    print(f"wrote {args.out}: {written} pairs of {dataset.name} ({name}) as 112x112 arcface112 PNG chips cut after "
          f"{context.alignment.detector}; {left_out} pairs left out (an image failed upstream), "
          f"{time.perf_counter() - start:.1f} s")
    return 0


def cmd_paper(args: argparse.Namespace) -> int:
    from fiqa_bench.protocol.study import StudyConfig
    from fiqa_bench.protocols.paper import parse_items, regenerate

    items = parse_items(args.table, args.figure, args.all)
    models = tuple(m.strip() for m in args.models.split(","))
    if len(models) != 2:
        raise ValueError(f"--models takes two recognition models, got {args.models!r}")
    config = StudyConfig(random_seeds=args.random_seeds, n_boot=args.n_boot, seed=args.seed)
    start = time.perf_counter()
    folder = regenerate(items, context=_context(args, models[0]), out_dir=args.out, models=models, config=config)
    print(f"wrote {', '.join(items)} to {folder}/ (index: {folder / 'README.md'}), "
          f"{(time.perf_counter() - start) / 60:.1f} min")
    return 0


#: The commands whose arguments may end with the chosen protocol's own options.
PROTOCOL_COMMANDS = ("run", "compare")
COMMANDS = {"run": cmd_run, "compare": cmd_compare, "list": cmd_list, "embed": cmd_embed, "verify": cmd_verify,
            "train": cmd_train, "score": cmd_score, "benchmark": cmd_benchmark, "export-bin": cmd_export_bin,
            "paper": cmd_paper}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    load_plugins(argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in PROTOCOL_COMMANDS:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    from fiqa_bench.data import DatasetError

    try:
        return COMMANDS[args.command](args)
    except (DatasetError, UnknownNameError, FileNotFoundError, ValueError) as err:
        print(f"fiqa-bench: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fiqa-bench: interrupted; finished shards are cached, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
