"""k-fold cross-validation of a train.py recipe, with and without delays: accuracy, epoch time, samples/s.

Usage (the N-MNIST measurement in the README):
    python benchmarks/cross_validate.py --folds 5 --out benchmarks/nmnist_cv_cpu.json -- \
        dataset=nmnist dataset.root=../shared/data model.hidden=128 max_delay=8 queue=scheduled \
        queue.capacity=2048 trainer.epochs=30 trainer.batch_size=32 trainer.val_fraction=0.1 augment=shift \
        trainer.augment.max_shift=1 optim.cosine_decay=true

The overrides after ``--`` compose the recipe from configs/ exactly as `python train.py` would. The
dataset is loaded once and split into ``--folds`` stratified folds (`SpikeDataset.folds`); each fold
is tested once by a model trained on the others, and the trainer's validation split comes out of those
training folds only (no test example is ever seen in training or model selection). The ablation adds
``model.init_delay=0 optim.lr_delays=0``: every delay fixed at zero, everything else equal.
``init_from=`` starts every fold from a pretrained model, as in `train.py` (e.g. one trained on
``dataset=saccades``, never on the recordings cross-validated here); ``--ablation-override
no_delays:init_from=...`` gives the ablation its own starting point (one trained without delays).
``--only-folds 0`` trains and tests only that fold, exactly as the full run would: a probe of a recipe
change at a fifth of the cost (`report.py` shows such a partial result only as a probe, beside the
recipe's result on the same fold). ``--resume`` keeps the folds `--out` already holds (the file is saved
after every fold) and trains only the missing ones; it refuses a file measured with another recipe, folds,
seed, device or `XLA_FLAGS` (each run records its own, `xla_flags`, beside its commit, `code`: on CPU the
flags set the threading, hence the order of summation), with another ``--ablation-override`` for a model it
holds runs of, or holding folds this command would not train. So a file of the delayed model's folds alone
(``--ablations delays``) is completed by ``--resume`` with the ablation's own starting point.
``--seed`` draws the folds and, unless the recipe sets ``seed=``, the model's seed (initial weights and data
order): ``-- <recipe> seed=1`` trains the same folds from other weights, to see how far a fold's accuracy
moves with the seed alone. ``--jobs N`` trains N folds at a time, each in its own process (the accuracies
do not depend on it; the epoch times are each process's own, on the cores it shares with the others).
For a model with feature maps (``model=delayed_conv``) each fold also records ``silent_maps``: per
convolution block, the trained model's maps that spike on none of the fold's first 100 training
recordings (as `silent_maps.py` counts them).
``--save-models DIR`` keeps each fold's trained network (``DIR/<model>_fold<i>.eqx``, written atomically;
the run records the path as ``model_file``). ``--ensemble-with FILE`` tests each fold's network together
with the network FILE's run saved for that fold (`Ensemble`: the log of their mean class probability): FILE
must be a run of the same recipe, folds and ablation overrides from another model seed (``-- <recipe>
seed=1``), so the two networks differ only by their seed. ``test_accuracy`` is then the ensemble's, and
``single_network_test_accuracy`` this command's network alone; training the ensemble cost both runs' time.

Saccade-pretrained (the README's second table): pretrain twice on simulated saccades, with delays
(``hydra.run.dir=runs/saccades``) and without (add ``model.init_delay=0 optim.lr_delays=0``,
``hydra.run.dir=runs/saccades_nodelay``):
    python train.py dataset=saccades model.hidden=128 max_delay=8 queue=scheduled queue.capacity=3072 \
        trainer.epochs=15 trainer.batch_size=32 trainer.val_fraction=0.1 augment=shift trainer.augment.max_shift=1 \
        optim.cosine_decay=true hydra.run.dir=runs/saccades
    python benchmarks/cross_validate.py --folds 5 --out benchmarks/nmnist_cv_saccades_cpu.json \
        --ablation-override no_delays:init_from=runs/saccades_nodelay -- <the recipe above> init_from=runs/saccades
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time

import equinox as eqx
import jax
import numpy as np
from hydra.utils import instantiate

from zoo.models import Ensemble, ShiftAveraged

from processes import completed
from recipes import (ABLATIONS, carried_over, code_version, compose_recipe, initial_model, save, seeded, silent_maps,
                     xla_flags)


def save_model(model, path: str) -> None:
    """Write a trained network atomically (temporary file, then rename): never a half-written one."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    eqx.tree_serialise_leaves(path + ".tmp", model)
    os.replace(path + ".tmp", path)


def run_fold(cfg, train, test, ablation: str, code: str | None, test_time_shift: int = 0,
             model_file: str | None = None, partner_file: str | None = None) -> dict:
    """Train ``cfg`` (seeded by its ``seed``: weights and data order) on ``train``, test on ``test``;
    ``code`` is the commit the benchmark runs from (`code_version`). With ``test_time_shift`` s > 0 the
    model tested is the trained network averaged over its views shifted by up to s pixels (`ShiftAveraged`);
    the network's own accuracy is kept beside it as ``single_view_test_accuracy``. ``model_file``: where to
    keep the trained network. ``partner_file``: a network of the same architecture trained on this fold from
    another seed; the model tested is then the two's `Ensemble`, the network's own accuracy kept beside it as
    ``single_network_test_accuracy``."""
    seed = cfg.seed
    model = initial_model(cfg, train, seed, ablation)
    trainer = instantiate(cfg.trainer)
    start = time.perf_counter()
    model, metrics = trainer.fit(model, train, seed=seed, log=lambda _: None)
    seconds = time.perf_counter() - start
    if model_file:
        save_model(model, model_file)
    tested = Ensemble([model, eqx.tree_deserialise_leaves(partner_file, model)]) if partner_file else model
    tested = ShiftAveraged(tested, test.frame, test_time_shift) if test_time_shift else tested
    logits, stats = jax.jit(jax.vmap(tested))(test.spikes, test.times)
    single_view = {}
    if test_time_shift or partner_file:
        alone, _ = jax.jit(jax.vmap(model))(test.spikes, test.times)
        key = "single_network_test_accuracy" if partner_file else "single_view_test_accuracy"
        single_view = {key: float((np.asarray(alone).argmax(-1) == test.labels).mean())}
    kept = {k: v for k, v in (("model_file", model_file), ("ensemble_partner_file", partner_file)) if v}
    epochs = metrics["history"]
    fitted = len(train) - int(round(trainer.val_fraction * len(train)))  # as SurrogateTrainer.fit splits
    trained_per_epoch = (fitted // trainer.batch_size) * trainer.batch_size
    # the first epoch includes compilation; the steady state is the rest
    steady = [h["seconds"] for h in epochs[1:]] or [epochs[0]["seconds"]]
    return {"test_accuracy": float((np.asarray(logits).argmax(-1) == test.labels).mean()),
            **single_view, "test_examples": len(test), "train_examples": len(train),
            "final_val_accuracy": metrics["val_accuracy"],
            "train_seconds": seconds, "epoch_seconds": float(np.median(steady)),
            "samples_per_second": trained_per_epoch / float(np.median(steady)), "history": epochs,
            # the test's own delivery: a spike dropped there changes the accuracy this run reports
            "test_dropped_spikes": int(np.asarray(stats["dropped"]).sum()),
            # a conv model's maps that spike on none of the fold's first 100 training recordings once trained
            **({"silent_maps": silent_maps(model, train.subset(np.arange(min(100, len(train)))).spikes)}
               if hasattr(model, "map_spikes") else {}),
            **kept, "code": code, "xla_flags": xla_flags()}


def fold_task(overrides: list[str], folds: int, fold_seed: int, fold: int, ablation: str, code: str | None,
              test_time_shift: int = 0, model_file: str | None = None, partner_file: str | None = None) -> dict:
    """One fold of one model from the recipe alone, as a spawned process runs it: the same data, folds and
    run as in the loop of one process."""
    cfg = compose_recipe(overrides)
    train, test = instantiate(cfg.dataset).load().folds(folds, seed=fold_seed)[fold]
    return {"fold": fold, **run_fold(cfg, train, test, ablation, code, test_time_shift, model_file, partner_file)}


def ablation_overrides(parser: argparse.ArgumentParser, items: list[str]) -> dict[str, list[str]]:
    """Each ablation's own overrides, from ``--ablation-override ABLATION:OVERRIDE`` items (in order)."""
    extra = {name: [] for name in ABLATIONS}
    for item in items:
        name, _, override = item.partition(":")
        if name not in extra or not override:
            parser.error(f"--ablation-override {item!r}: expected ABLATION:OVERRIDE with ABLATION one of {list(extra)}")
        extra[name].append(override)
    return extra


def ensemble_partners(parser: argparse.ArgumentParser, args: argparse.Namespace, extra: dict[str, list[str]],
                      only) -> dict[tuple[str, int], str]:
    """For ``--ensemble-with FILE``: the network FILE's run saved for each (model, fold) this command trains,
    checked to differ from this command's only by its seed: same recipe but ``seed=``, folds, fold seed and
    ablation overrides; another model seed; a saved network (``--save-models``) that exists for each fold.
    Anything else is a command-line error naming it."""
    with open(args.ensemble_with) as f:
        other = json.load(f)
    before = parser.parse_args(shlex.split(other["command"])[2:])

    def but_seed(overrides):
        return [o for o in overrides if not o.startswith("seed=")]

    mismatch = [what for what, ours, theirs in [
        ("recipe (other than seed=)", but_seed(args.overrides), but_seed(before.overrides)),
        ("--folds", args.folds, before.folds), ("--seed (the folds)", args.seed, before.seed),
        ("--ablation-override", extra, ablation_overrides(parser, before.ablation_override))] if ours != theirs]
    if mismatch:
        parser.error(f"--ensemble-with {args.ensemble_with}: its run differs by {', '.join(mismatch)}; an ensemble "
                     "partner is the same recipe, folds and ablation overrides from another model seed")

    def model_seed(overrides, fold_seed):
        return [o for o in seeded(overrides, fold_seed) if o.startswith("seed=")]

    if model_seed(args.overrides, args.seed) == model_seed(before.overrides, before.seed):
        parser.error(f"--ensemble-with {args.ensemble_with}: its networks have this command's seed, so they are "
                     "this command's networks; give the recipe another seed= (e.g. -- <recipe> seed=1)")
    partners = {}
    for name in args.ablations:
        saved = {r["fold"]: r.get("model_file") for r in other["runs"].get(name, [])}
        for i in only:
            if not saved.get(i) or not os.path.isfile(saved[i]):
                parser.error(f"--ensemble-with {args.ensemble_with}: no saved {name} network for fold {i} "
                             f"({saved.get(i) or 'its run has no model_file: run it with --save-models DIR'})")
            partners[name, i] = saved[i]
    return partners


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0,
                        help="fold assignment; also weights and data order unless the recipe sets seed=")
    parser.add_argument("--ablations", nargs="+", default=list(ABLATIONS), choices=list(ABLATIONS))
    parser.add_argument("--ablation-override", action="append", default=[], metavar="ABLATION:OVERRIDE",
                        help="an override for one ablation only, e.g. no_delays:init_from=runs/saccades_nodelay")
    parser.add_argument("--only-folds", type=int, nargs="+", default=None, metavar="FOLD",
                        help="train and test only these folds (0 .. folds-1), as the full run would")
    parser.add_argument("--jobs", type=int, default=1, help="folds trained at a time, each in its own process")
    parser.add_argument("--test-time-shift", type=int, default=0, metavar="S",
                        help="test each fold's network averaged over its views shifted by up to S pixels "
                             "(ShiftAveraged; frame datasets); 0: the network alone")
    parser.add_argument("--save-models", default=None, metavar="DIR",
                        help="keep each fold's trained network as DIR/<model>_fold<i>.eqx (for --ensemble-with)")
    parser.add_argument("--ensemble-with", default=None, metavar="FILE",
                        help="test each fold's network with the one FILE's run saved for it (the same recipe "
                             "from another seed=): the two's Ensemble")
    parser.add_argument("--out", required=True)
    parser.add_argument("--resume", action="store_true", help="keep the folds --out holds, train the missing ones")
    parser.add_argument("overrides", nargs="*", help="train.py overrides (after --)")
    args = parser.parse_args(argv)
    extra = ablation_overrides(parser, args.ablation_override)
    only = range(args.folds) if args.only_folds is None else sorted(set(args.only_folds))
    if not set(only) <= set(range(args.folds)):
        parser.error(f"--only-folds {args.only_folds}: folds are numbered 0 .. {args.folds - 1}")
    if args.test_time_shift < 0:
        parser.error(f"--test-time-shift {args.test_time_shift}: must be a non-negative number of pixels")
    if args.test_time_shift and args.ensemble_with:
        parser.error("--test-time-shift and --ensemble-with: give one; each is measured against the network alone")
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: must be at least 1")
    # the partner file is a result too: a resumed partner run rewrites it, which changes no code
    code = code_version(outputs=[args.out] + ([args.ensemble_with] if args.ensemble_with else []))
    base = compose_recipe(args.overrides)
    data = instantiate(base.dataset).load()
    folds = data.folds(args.folds, seed=args.seed)
    # a resumed run is the same measurement as an uninterrupted one: the command is recorded without the flag
    results = {"command": "python benchmarks/cross_validate.py " + shlex.join(a for a in argv if a != "--resume"),
               "device": str(jax.devices()[0]), "cpu_count": os.cpu_count(), "dataset": base.dataset._target_,
               "examples": len(data), "folds": args.folds, "runs": {}, "summary": {}}
    # the model's seed is the folds' unless the recipe sets its own
    recipes = {name: seeded(args.overrides + ABLATIONS[name] + extra[name], args.seed) for name in args.ablations}
    partners = ensemble_partners(parser, args, extra, only) if args.ensemble_with else {}

    def model_file(name: str, fold: int) -> str | None:
        return os.path.join(args.save_models, f"{name}_fold{fold}.eqx") if args.save_models else None

    def fold_options(name: str, fold: int) -> tuple:
        return args.test_time_shift, model_file(name, fold), partners.get((name, fold))
    results["runs"] = {name: [] for name in args.ablations}
    if args.resume and os.path.exists(args.out):
        # an ablation's own overrides change only its runs: a file of the delayed model's folds alone can be
        # completed by a command that gives the ablation its starting point (the run is what both would make)
        own = ("--ablation-override", lambda a: ablation_overrides(parser, a.ablation_override))
        with open(args.out) as f:
            settings = ["overrides", "folds", "seed", "test_time_shift", "ensemble_with"]
            results["runs"] = carried_over(parser, args, json.load(f), settings, "fold", only,
                                           "--only-folds/--ablations", per_model=own)
    done = {(name, r["fold"]) for name, runs in results["runs"].items() for r in runs}
    todo = {name: [i for i in only if (name, i) not in done] for name in recipes}

    def record(name: str, run: dict) -> None:
        results["runs"][name] = sorted(results["runs"][name] + [run], key=lambda r: r["fold"])
        print(name, f"fold {run['fold']}", json.dumps({k: v for k, v in run.items() if k != "history"}), flush=True)
        save(results, args.out)  # after every fold: an interrupted run keeps what it measured

    if args.jobs == 1:
        for name, overrides in recipes.items():
            cfg = compose_recipe(overrides)
            for i in todo[name]:
                record(name, {"fold": i, **run_fold(cfg, *folds[i], name, code, *fold_options(name, i))})
    else:
        calls = [(name, fold_task, (overrides, args.folds, args.seed, i, name, code, *fold_options(name, i)))
                 for name, overrides in recipes.items() for i in todo[name]]
        for name, run in completed(calls, args.jobs):
            record(name, run)
    for name, runs in results["runs"].items():
        accs = np.array([r["test_accuracy"] for r in runs])
        results["summary"][name] = {
            "test_accuracy_mean": float(accs.mean()), "test_accuracy_std": float(accs.std()),
            "epoch_seconds": float(np.mean([r["epoch_seconds"] for r in runs])),
            "samples_per_second": float(np.mean([r["samples_per_second"] for r in runs])),
            "epochs": len(runs[0]["history"]), "overrides": ABLATIONS[name] + extra[name]}
        print(name, json.dumps(results["summary"][name]), flush=True)
    save(results, args.out)


if __name__ == "__main__":
    main()
