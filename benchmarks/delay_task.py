"""A recipe on generated data with and without delays over several seeds: test accuracy, mean ± std.

Usage:
    python benchmarks/delay_task.py --seeds 5 --out benchmarks/delay_task_cpu.json
    python benchmarks/delay_task.py --seeds 5 --out benchmarks/yinyang_eventprop_cpu.json -- \
        model=lif_network trainer=eventprop dataset=yinyang ...

Each run is the recipe of `python train.py` composed from configs/ with the overrides after ``--``
(none: the default recipe, the delay task), with the seed, and for the ablation
`model.init_delay=0 optim.lr_delays=0` (every delay fixed at zero). Test accuracy is on a freshly
generated set (another generator seed) of `--test-examples` examples; each run also records its training
accuracy over the last epoch (as `train.py` prints it), its validation accuracy, training seconds and the
commit it ran from (`code`). ``--jobs N`` trains N runs at a time, each in its own process (the results
do not depend on it). ``--first-seed`` and ``--ablations``
pick a subset of the runs, e.g. to try a change of recipe on seeds a benchmark does not report:
    python benchmarks/delay_task.py --first-seed 100 --seeds 1 --ablations delays --out try.json -- ...
``--resume`` carries over the runs `--out` already holds (a benchmark is saved after every run) and trains
only the missing ones; it refuses a file measured with another recipe or with runs this command would not make.
``--reuse FILE`` carries over the runs of another benchmark whose resolved config (recipe, ablation and seed
composed as `python train.py` would run them) is the same as this command's, e.g. the no-delay runs after a
change of ``optim.lr_delays``, which the ablation sets to 0 anyway; the file records which runs were reused
and the command that measured them.
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
from omegaconf import OmegaConf

from processes import completed
from recipes import ABLATIONS, carried_over, code_version, compose_recipe, initial_model, save, xla_flags


def seeded(overrides: list[str], seed: int) -> list[str]:
    return overrides + [f"seed={seed}", f"dataset.seed={seed}"]


def run(overrides: list[str], test_examples: int, seed: int, ablation: str, code: str | None) -> dict:
    """One seed of one model; ``code`` is the commit the benchmark runs from (`code_version`)."""
    cfg = compose_recipe(seeded(overrides, seed))
    data = instantiate(cfg.dataset).load()
    model = initial_model(cfg, data, seed, ablation)
    start = time.perf_counter()
    model, metrics = instantiate(cfg.trainer).fit(model, data, seed=seed, log=lambda _: None)
    seconds = time.perf_counter() - start
    test = instantiate(cfg.dataset, seed=10_000 + seed, examples=test_examples).load()
    # compiled, in chunks: the test set at once would hold every example's arrival tables in memory
    logits, _ = eqx.filter_jit(lambda m, x: jax.lax.map(lambda e: m(*e), x, batch_size=512))(
        model, (test.spikes, test.times))
    return {"seed": seed, "train_accuracy": metrics["history"][-1]["train_accuracy"],
            "val_accuracy": metrics["val_accuracy"], "train_seconds": seconds,
            "test_accuracy": float((np.asarray(logits).argmax(-1) == test.labels).mean()), "code": code,
            "xla_flags": xla_flags()}


def reused(parser: argparse.ArgumentParser, args: argparse.Namespace, ablations: dict, seeds: range,
           held: set) -> dict:
    """The runs of ``args.reuse`` whose resolved config equals the one this command would train for them,
    other than the ``held`` ``(ablation, seed)`` pairs, with the command that measured them:
    ``{"command": ..., "runs": {ablation: [run, ...]}}``."""
    with open(args.reuse) as f:
        other = json.load(f)
    before = parser.parse_args(shlex.split(other["command"])[2:])
    for what, then, now in [("--test-examples", before.test_examples, args.test_examples),
                            ("device", other["device"], str(jax.devices()[0]))]:
        if then != now:
            parser.error(f"--reuse: {args.reuse} was measured with {what} {then}, not {now}")
    if "reused" in other:  # its reused runs were measured by yet another command: take them from there
        parser.error(f"--reuse: {args.reuse} itself reused runs of `{other['reused']['command']}`; reuse from "
                     "the file that measured them")
    carried = {}
    for name, runs in other["runs"].items():
        if name not in ablations:
            continue
        for r in runs:
            if r["seed"] not in seeds or (name, r["seed"]) in held:
                continue
            then = compose_recipe(seeded(before.overrides + ABLATIONS[name], r["seed"]))
            now = compose_recipe(seeded(args.overrides + ablations[name], r["seed"]))
            if OmegaConf.to_container(then, resolve=True) == OmegaConf.to_container(now, resolve=True):
                carried.setdefault(name, []).append(r)
    return {"command": other["command"], "runs": carried}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds: --first-seed and the ones after it")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--ablations", nargs="+", choices=list(ABLATIONS), default=list(ABLATIONS),
                        help="which models to train (default: all)")
    parser.add_argument("--test-examples", type=int, default=2048)
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at a time, each in its own process")
    parser.add_argument("--out", required=True)
    parser.add_argument("--resume", action="store_true", help="keep the runs --out holds, train the missing ones")
    parser.add_argument("--reuse", metavar="FILE",
                        help="carry over the runs of another benchmark file whose resolved config is this command's")
    parser.add_argument("overrides", nargs="*", help="train.py overrides (after --)")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.seeds < 1 or args.first_seed < 0:
        parser.error(f"--jobs and --seeds must be at least 1 and --first-seed at least 0, got --jobs {args.jobs} "
                     f"--seeds {args.seeds} --first-seed {args.first_seed}")
    argv = list(argv if argv is not None else sys.argv[1:])
    # a resumed benchmark is the same measurement as an uninterrupted one: record the command without the
    # flag; so is one that reuses runs of the same resolved config, recorded under "reused"
    kept = [a for i, a in enumerate(argv) if a not in ("--resume", "--reuse") and not a.startswith("--reuse=")
            and (i == 0 or argv[i - 1] != "--reuse")]
    results = {"command": "python benchmarks/delay_task.py " + shlex.join(kept),
               "device": str(jax.devices()[0]), "runs": {}, "summary": {}}
    ablations = {name: ABLATIONS[name] for name in args.ablations}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    results["runs"] = {name: [] for name in ablations}
    if args.resume and os.path.exists(args.out):
        with open(args.out) as f:
            previous = json.load(f)
        results["runs"] = carried_over(parser, args, previous, ["overrides", "test_examples"], "seed", seeds,
                                       "--seeds/--first-seed/--ablations")
        if "reused" in previous:
            results["reused"] = previous["reused"]
    if args.reuse:
        held = {(name, r["seed"]) for name, runs in results["runs"].items() for r in runs}
        other = reused(parser, args, ablations, seeds, held)
        fresh = other["runs"]
        if fresh and results.get("reused", {}).get("command", other["command"]) != other["command"]:
            parser.error(f"--reuse: {args.out} already holds runs reused from another benchmark "
                         f"({results['reused']['command']}); reuse from one at a time")
        for name, runs in fresh.items():
            results["runs"][name] = sorted(results["runs"][name] + runs, key=lambda r: r["seed"])
            results.setdefault("reused", {"command": other["command"], "runs": {}})["runs"].setdefault(
                name, []).extend(sorted(r["seed"] for r in runs))
    done = {(name, r["seed"]) for name, runs in results["runs"].items() for r in runs}
    code = code_version(outputs=[args.out])
    calls = [(name, run, (args.overrides + overrides, args.test_examples, seed, name, code))
             for name, overrides in ablations.items() for seed in seeds if (name, seed) not in done]

    def record(name: str, result: dict) -> None:
        results["runs"][name] = sorted(results["runs"][name] + [result], key=lambda r: r["seed"])
        print(name, json.dumps(result), flush=True)
        save(results, args.out)  # after every run: an interrupted benchmark keeps what it measured

    if args.jobs == 1:
        for name, fn, fn_args in calls:
            record(name, fn(*fn_args))
    else:
        for name, result in completed(calls, args.jobs):
            record(name, result)
    for name, overrides in ablations.items():
        accs = np.array([r["test_accuracy"] for r in results["runs"][name]])
        results["summary"][name] = {"test_accuracy_mean": float(accs.mean()), "test_accuracy_std": float(accs.std()),
                                    "seeds": args.seeds, "overrides": overrides}
        print(name, json.dumps(results["summary"][name]), flush=True)
    save(results, args.out)


if __name__ == "__main__":
    main()
