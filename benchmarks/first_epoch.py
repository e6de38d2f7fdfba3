"""One fold of a cross-validation recipe, trained for its first epoch only: that epoch's row of the
history (the row `cross_validate.py` records, bit for bit under the same code and XLA flags) and the
spikes per test recording of the whole network before and after it.

Why: a network whose spikes all stop can never learn again when its layers are delivered by
`queues.Scheduled`, since a neuron that does not spike makes no event and events carry the only
gradient. The first epoch is where that happened (fold 1 of the N-MNIST conv recipe with
`model.hidden=256`), so this measures, in minutes instead of a fold's half hour, whether a change of the
recipe keeps the network spiking through it.

    python benchmarks/first_epoch.py --folds 5 --fold 1 --out first_epoch.json -- <train.py overrides>
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

import equinox as eqx
import jax
import numpy as np
from hydra.utils import instantiate

from recipes import code_version, compose_recipe, first_epochs, initial_model, save, seeded, xla_flags


def spikes_per_recording(model, spikes, times) -> float:
    """Every neuron's spikes (the model's ``stats["spikes"]``), mean over the recordings."""
    _, stats = eqx.filter_jit(jax.vmap(model))(spikes, times)
    return float(np.asarray(stats["spikes"]).mean())


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0, help="fold assignment; also weights and data order, "
                                                             "unless the recipe sets seed=, as in cross_validate.py")
    parser.add_argument("--recordings", type=int, default=10, help="test recordings whose spikes are counted")
    parser.add_argument("--out", required=True)
    parser.add_argument("overrides", nargs="*", help="train.py overrides (after --)")
    args = parser.parse_args(argv)
    if not 0 <= args.fold < args.folds:
        parser.error(f"--fold {args.fold}: folds are numbered 0 .. {args.folds - 1}")
    code = code_version(outputs=[args.out])
    cfg = compose_recipe(seeded(args.overrides, args.seed))
    train, test = instantiate(cfg.dataset).load().folds(args.folds, seed=args.seed)[args.fold]
    test = test.subset(np.arange(min(args.recordings, len(test))))
    model = initial_model(cfg, train, cfg.seed, "delays")
    [after], [row] = first_epochs(instantiate(cfg.trainer), model, train, cfg.seed, epochs=1)
    result = {"command": "python benchmarks/first_epoch.py " + shlex.join(argv), "device": str(jax.devices()[0]),
              "fold": args.fold, "first_epoch": row, "test_recordings": len(test),
              "spikes_per_recording_before": spikes_per_recording(model, test.spikes, test.times),
              "spikes_per_recording_after": spikes_per_recording(after, test.spikes, test.times),
              "code": code, "xla_flags": xla_flags()}
    print(json.dumps(result), flush=True)
    save(result, args.out)


if __name__ == "__main__":
    main()
