"""What the recipe benchmarks share: composing a train.py recipe, the no-delay ablation, saving results."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Container, Iterable

from hydra import compose, initialize_config_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

import zoo.hub  # noqa: E402
from train import build_model, initial_weights  # noqa: E402

__all__ = ["ABLATIONS", "ROOT", "carried_over", "code_version", "compose_recipe", "first_epochs", "initial_model", "save",
           "xla_flags"]

# every delay fixed at zero, everything else equal (the zoo's no-delay twins are trained so too)
ABLATIONS = {"delays": [], "no_delays": list(zoo.registry.NO_DELAYS)}


def initial_model(cfg, data, seed: int, ablation: str):
    """The model `python train.py` would start from: built from ``cfg`` and ``seed``, with the weights of
    ``cfg.init_from`` when given. The no-delay ablation fixes every delay at its initial value (0), so a
    starting point with learned delays would quietly turn it into a frozen-delay model: refused."""
    model = build_model(cfg, data, seed)
    if not cfg.get("init_from"):
        return model
    loaded = initial_weights(cfg.init_from, model)
    if ablation == "no_delays":
        fresh, start = zoo.hub.leaf_paths(model), zoo.hub.leaf_paths(loaded)
        learned = [k for k in fresh if "delay" in k and not np.array_equal(fresh[k], start[k])]
        if learned:
            raise ValueError(f"init_from={cfg.init_from} has learned delays ({', '.join(learned)}); the no-delay "
                             "ablation needs a starting point trained without delays (cross_validate.py: "
                             "--ablation-override no_delays:init_from=A_NO_DELAY_MODEL)")
    return loaded


def code_version(outputs: Iterable[str] = (), root: str = ROOT) -> str | None:
    """The commit the code runs from (``+changes`` when tracked files differ from it), recorded with each
    run so a result can be traced to the simulation that made it; None outside a git checkout.

    A benchmark asks once, as it starts: its processes import the code then, so a commit made while it
    trains is not the code it runs. ``outputs`` (the benchmark's own result files, which a resumed run
    rewrites after every run while they are tracked) are results, not code: they do not count as changes."""
    def git(*args):
        return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=60)
    try:
        head, top = git("rev-parse", "--short=12", "HEAD"), git("rev-parse", "--show-toplevel")
        if head.returncode or top.returncode:
            return None
        inside = [os.path.relpath(os.path.realpath(p), os.path.realpath(top.stdout.strip())) for p in outputs]
        excluded = [f":(top,exclude){p}" for p in inside if p.split(os.sep)[0] != os.pardir]
        status = git("status", "--porcelain", "--untracked-files=no", "--", ":(top)", *excluded)
    except (OSError, subprocess.SubprocessError):
        return None
    if status.returncode:
        return None
    return head.stdout.strip() + ("+changes" if status.stdout.strip() else "")


def xla_flags() -> str:
    """The ``XLA_FLAGS`` a run computes under, recorded with it beside its code: on XLA:CPU they choose the
    threading, hence the order of summation, and a training run amplifies that (stop 25: fold 0 of the
    full-resolution N-MNIST conv recipe, same code and recipe in one process: 97.00 % under XLA's default threads,
    95.00 % single-threaded; the first epoch's loss already differs)."""
    return os.environ.get("XLA_FLAGS", "")


def seeded(overrides: list[str], seed: int) -> list[str]:
    """``overrides`` with ``seed=<seed>`` (the model's weights and data order) unless they set their own."""
    return overrides if any(o.startswith("seed=") for o in overrides) else [*overrides, f"seed={seed}"]


def compose_recipe(overrides: list[str]):
    """The config `python train.py <overrides>` would run."""
    with initialize_config_dir(config_dir=os.path.join(ROOT, "configs"), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def carried_over(parser: argparse.ArgumentParser, args: argparse.Namespace, previous: dict, settings: list[str],
                 unit: str, wanted: Container[int], widen: str,
                 per_model: tuple[str, Callable[[argparse.Namespace], dict]] | None = None) -> dict:
    """The runs of ``previous`` (what ``args.out`` holds, for ``--resume``), checked to be runs of this
    command: each of ``settings`` (``args`` attributes: the overrides and the flags that change a run) as
    this command has it, the same device, and only models of ``args.ablations`` whose ``unit`` (``"seed"``
    or ``"fold"``) is in ``wanted``. ``per_model`` is a flag that changes one model's runs only, with what
    it sets per model (e.g. ``--ablation-override``): it must match only for the models ``previous`` holds
    runs of, so a file of one model's runs can be completed with the other's own setting. Anything else is
    a command-line error naming it, suggesting ``widen`` (the flags that choose runs) or another ``--out``:
    a resumed benchmark is the same measurement as an uninterrupted one, never a mix of two."""
    before = parser.parse_args(shlex.split(previous["command"])[2:])
    if per_model:
        flag, of = per_model
        then, now = of(before), of(args)
        for name in sorted(name for name, rs in previous["runs"].items() if rs and then[name] != now[name]):
            parser.error(f"--resume: {args.out} holds {name} runs measured with {flag} {then[name]}, not {now[name]}")
    compared = [(name if name == "overrides" else "--" + name.replace("_", "-"), getattr(before, name),
                 getattr(args, name)) for name in settings]
    for what, then, now in compared + [("device", previous["device"], str(jax.devices()[0]))]:
        if then != now:
            parser.error(f"--resume: {args.out} was measured with {what} {then}, not {now}")
    # runs made before the flags were recorded (no "xla_flags") cannot be compared
    flags = sorted({r["xla_flags"] for rs in previous["runs"].values() for r in rs if "xla_flags" in r} - {xla_flags()})
    if flags:
        parser.error(f"--resume: {args.out} holds runs measured under XLA_FLAGS={flags[0]!r}, this process has "
                     f"XLA_FLAGS={xla_flags()!r}: set the same to continue it")
    runs = {name: previous["runs"].get(name, []) for name in args.ablations}
    outside = sorted({f"{name} {unit} {r[unit]}" for name, rs in previous["runs"].items() for r in rs
                      if name not in runs or r[unit] not in wanted})
    if outside:
        parser.error(f"--resume: {args.out} holds runs this command does not make ({', '.join(outside)}); "
                     f"widen {widen} or write to another --out")
    return runs


class _EpochsDone(Exception):
    pass


def first_epochs(trainer, model, train, seed: int, epochs: int) -> tuple[list, list[dict]]:
    """``model`` trained by ``trainer`` on ``train`` for the first ``epochs`` of its run, under the full run's
    learning-rate schedule (the trainer's own epoch count): the model after each of them and each one's
    history row, as `cross_validate.py` would record them."""
    import tempfile

    import equinox as eqx

    from zoo.checkpoint import Checkpoints
    if not 1 <= epochs <= trainer.epochs:
        raise ValueError(f"epochs {epochs}: must lie in [1, trainer.epochs = {trainer.epochs}]")
    rows = []

    def log(line: str) -> None:
        row = json.loads(line)
        if "epoch" in row:
            rows.append(row)
            if row["epoch"] == epochs + 1:  # epoch K's checkpoint is written once its row is logged
                raise _EpochsDone

    with tempfile.TemporaryDirectory() as directory:
        # every epoch kept (ranked by a metric every run logs), to restore each
        checkpoints = Checkpoints(directory, keep_best=epochs, metric="train_accuracy")
        try:
            trainer.fit(model, train, seed=seed, log=log, checkpoints=checkpoints)
        except _EpochsDone:
            pass
        params, static = eqx.partition(model, eqx.is_array)
        # the optimiser state only as the template of the checkpoint's tree: its shape is the same for any
        # number of updates (the learning-rate schedule's), so 1 will do
        template = (params, trainer.optimizer(model, 1).init(params))
        trained = [eqx.combine(checkpoints.restore(template, which="best", epoch=e)[0][0], static)
                   for e in range(1, epochs + 1)]
        checkpoints.close()
    return trained, rows[:epochs]


def silent_maps(model, spikes) -> list[int]:
    """Per convolution block of ``model`` (`DelayedConv.map_spikes`), the feature maps that spike on none
    of the recordings ``spikes``: under `queues.Scheduled` such a map gets no gradient from the loss."""
    counts = eqx.filter_jit(jax.vmap(lambda m, s: m.map_spikes(s), in_axes=(None, 0)))(model, spikes)
    return [int((np.asarray(block).sum(0) == 0).sum()) for block in counts]


def save(results: dict, path: str) -> None:
    """Write ``results`` as JSON atomically (temporary file, then rename): called after every run, so an
    interrupted benchmark keeps what it measured and never leaves a half-written file."""
    with open(path + ".tmp", "w") as f:
        json.dump(results, f, indent=2)
    os.replace(path + ".tmp", path)
