"""A conventional (non-spiking) CNN on the same folds' event-count frames: what the recordings allow
without spikes, as a reference for the N-MNIST cross-validation of the spiking models.

Usage (the README's reference row: the conv recipe's data, folds, trainer, augmentation and optimiser):
    python benchmarks/frame_cnn_reference.py --folds 5 --out benchmarks/nmnist_cv_frame_cnn_cpu.json -- \
        dataset=nmnist dataset.root=../shared/data dataset.raster.spatial_factor=1.0 trainer.epochs=30 \
        trainer.batch_size=32 trainer.val_fraction=0.1 augment=shift trainer.augment.max_shift=1 \
        optim.cosine_decay=true optim=adamw optim.weight_decay=0.1 optim.lr=0.001
(the other rows: the same with ``--time-bins 3``, ``--time-bins 30``, or ``optim.lr=0.01``, the spiking recipe's
rate, under which one fold diverges; each file's ``command`` is its own).

Each example's spikes are summed over ``--time-bins`` equal spans of its steps (1: the whole recording; 3:
about one per saccade) into one frame per polarity and span, log1p-scaled, and classified by
the spiking conv model's topology with ReLU units in place of LIF neurons and no delays: ``--features``
convolutions of ``--kernel`` x ``--kernel``, each followed by 2x2 max-pooling, then ``--hidden`` units and
the classes. The folds are `SpikeDataset.folds` with ``--seed``, as `cross_validate.py` draws them, and the
recipe's trainer (`SurrogateTrainer`: its validation split, augmentation of the event rasters, optimiser and
epochs) trains it, so the only difference from the spiking runs is the model. Accuracy of each held-out fold,
mean ± std over folds, in ``--out`` (JSON, laid out as `cross_validate.py`'s); then
``python benchmarks/report.py --frame-cnn FILE [FILE ...] --readme README.md`` tabulates them.
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
import jax.numpy as jnp
import numpy as np
from hydra.utils import instantiate
from jaxtyping import Array, Float, PRNGKeyArray

from recipes import code_version, compose_recipe, save, xla_flags

MODEL = "frame_cnn"  # the results' one model, in the layout of cross_validate.py's (runs and summary by model)


class FrameCNN(eqx.Module):
    """Event-count frames -> [conv, ReLU, 2x2 max-pool] per entry of ``features`` -> ReLU hidden -> logits.
    Called on one example's rasters ``(steps, polarities * height * width)``, as the spiking models are, and
    returns their ``(logits, stats)`` pair (no spikes and no queue: zero counts)."""

    convs: tuple[eqx.nn.Conv2d, ...]
    hidden: eqx.nn.Linear
    out: eqx.nn.Linear
    frame: tuple[int, int, int] = eqx.field(static=True)
    time_bins: int = eqx.field(static=True)

    def __init__(self, frame: tuple[int, int, int], classes: int, *, features: tuple[int, ...], kernel: int,
                 hidden: int, time_bins: int, key: PRNGKeyArray):
        keys = jax.random.split(key, len(features) + 2)
        channels, (_, height, width) = (frame[0] * time_bins, *features), frame
        self.convs = tuple(eqx.nn.Conv2d(c_in, c_out, kernel, padding="SAME", key=k)
                           for c_in, c_out, k in zip(channels[:-1], channels[1:], keys))
        flat = features[-1] * (height >> len(features)) * (width >> len(features))
        self.hidden = eqx.nn.Linear(flat, hidden, key=keys[-2])
        self.out = eqx.nn.Linear(hidden, classes, key=keys[-1])
        self.frame, self.time_bins = frame, time_bins

    def __call__(self, spikes: Float[Array, "steps channels"], times=None, *,
                 key=None) -> tuple[Float[Array, " classes"], dict]:
        del times, key  # frames binned in time; deterministic
        spans = jnp.array_split(spikes.astype(jnp.float32), self.time_bins)  # steps into time_bins spans
        x = jnp.log1p(jnp.stack([s.sum(0) for s in spans])).reshape(-1, *self.frame[1:])
        for conv in self.convs:
            x = jax.nn.relu(conv(x))
            x = x[:, : x.shape[1] // 2 * 2, : x.shape[2] // 2 * 2]
            x = x.reshape(x.shape[0], x.shape[1] // 2, 2, x.shape[2] // 2, 2).max((2, 4))
        logits = self.out(jax.nn.relu(self.hidden(x.reshape(-1))))
        return logits, {"dropped": jnp.zeros((), jnp.int32), "spikes": jnp.zeros(())}


def run_fold(cfg, args, train, test, code: str | None) -> dict:
    model = FrameCNN(train.frame, train.classes, features=tuple(args.features), kernel=args.kernel,
                     hidden=args.hidden, time_bins=args.time_bins, key=jax.random.PRNGKey(args.seed))
    trainer = instantiate(cfg.trainer)
    start = time.perf_counter()
    model, metrics = trainer.fit(model, train, seed=args.seed, log=lambda _: None)
    seconds = time.perf_counter() - start
    logits, _ = jax.jit(jax.vmap(model))(test.spikes, test.times)
    return {"test_accuracy": float((np.asarray(logits).argmax(-1) == test.labels).mean()),
            "test_examples": len(test), "train_examples": len(train), "final_val_accuracy": metrics["val_accuracy"],
            "final_train_accuracy": metrics["history"][-1]["train_accuracy"], "train_seconds": seconds,
            "history": metrics["history"], "code": code, "xla_flags": xla_flags()}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="fold assignment, initial weights and data order")
    parser.add_argument("--features", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--kernel", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--time-bins", type=int, default=1, help="frames per polarity, each summing a span of steps")
    parser.add_argument("--out", required=True)
    parser.add_argument("overrides", nargs="*", help="train.py overrides (after --): data, trainer, optimiser")
    args = parser.parse_args(argv)
    code = code_version(outputs=[args.out])
    cfg = compose_recipe(args.overrides)
    data = instantiate(cfg.dataset).load()
    if data.frame is None:
        parser.error(f"{cfg.dataset._target_} has no frame shape (polarities, height, width) to classify")
    if not 1 <= args.time_bins <= data.steps:
        parser.error(f"--time-bins {args.time_bins}: must lie in [1, {data.steps}] (the data's steps)")
    results = {"command": "python benchmarks/frame_cnn_reference.py " + shlex.join(argv),
               "device": str(jax.devices()[0]), "cpu_count": os.cpu_count(), "dataset": cfg.dataset._target_,
               "examples": len(data), "folds": args.folds, "runs": {MODEL: []}, "summary": {}}
    for i, (train, test) in enumerate(data.folds(args.folds, seed=args.seed)):
        run = {"fold": i, **run_fold(cfg, args, train, test, code)}
        results["runs"][MODEL].append(run)
        print(f"fold {i}", json.dumps({k: v for k, v in run.items() if k != "history"}), flush=True)
        save(results, args.out)  # after every fold: an interrupted run keeps what it measured
    accs = np.array([r["test_accuracy"] for r in results["runs"][MODEL]])
    results["summary"][MODEL] = {"test_accuracy_mean": float(accs.mean()), "test_accuracy_std": float(accs.std())}
    print(json.dumps(results["summary"][MODEL]), flush=True)
    save(results, args.out)


if __name__ == "__main__":
    main()
