"""Feature maps of a convolutional SNN (`model=delayed_conv`) that never spike: per block, the maps with
no spike on any of a fold's first training recordings, before training and after each of its first
epochs (under the full run's learning-rate schedule), or in a trained zoo model.

Why: with `queues.Scheduled` a map that does not spike sends no event, and events carry the only
gradient that reaches it, so a map silenced once stays silent; how many maps an epoch silences is
what a change of the recipe's first updates is to be judged by, in minutes rather than a full run.

    python benchmarks/silent_maps.py --folds 5 --fold 0 --epochs 2 --out silent.json -- <train.py overrides>
    python benchmarks/silent_maps.py --model delayed_conv.nmnist --out silent_zoo.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

import jax
import numpy as np
from hydra.utils import instantiate

import zoo
from recipes import code_version, compose_recipe, first_epochs, initial_model, save, seeded, silent_maps, xla_flags


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="a zoo model to measure instead of training a fold")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0, help="fold assignment; also weights and data order, "
                                                             "unless the recipe sets seed=, as in cross_validate.py")
    parser.add_argument("--epochs", type=int, default=1, help="epochs trained, of the recipe's trainer.epochs")
    parser.add_argument("--recordings", type=int, default=100, help="training recordings the maps are run on")
    parser.add_argument("--out", required=True)
    parser.add_argument("overrides", nargs="*", help="train.py overrides (after --)")
    args = parser.parse_args(argv)
    if args.model and args.overrides:
        parser.error("--model measures a trained zoo model as it is: give no overrides")
    if not 0 <= args.fold < args.folds:
        parser.error(f"--fold {args.fold}: folds are numbered 0 .. {args.folds - 1}")
    code = code_version(outputs=[args.out])
    pretrained = zoo.load_pretrained(args.model) if args.model else None
    overrides = shlex.split(pretrained.config["recipe"])[2:] if pretrained else args.overrides  # after "python train.py"
    cfg = compose_recipe(seeded(overrides, args.seed))
    train, _ = instantiate(cfg.dataset).load().folds(args.folds, seed=args.seed)[args.fold]
    # a zoo model trained on every recording: any of them is one of its training recordings
    model = pretrained.model if pretrained else initial_model(cfg, train, cfg.seed, "delays")
    rows = [None]  # the history row of each epoch measured; none before training
    if not hasattr(model, "map_spikes"):
        parser.error(f"{type(model).__name__} has no feature maps (model=delayed_conv has)")
    if not 1 <= args.epochs < cfg.trainer.epochs:
        parser.error(f"--epochs {args.epochs}: must lie in [1, trainer.epochs - 1 = {cfg.trainer.epochs - 1}]")
    probe = train.subset(np.arange(min(args.recordings, len(train)))).spikes
    silent = [silent_maps(model, probe)]
    if not args.model:
        trained, history = first_epochs(instantiate(cfg.trainer), model, train, cfg.seed, args.epochs)
        silent += [silent_maps(m, probe) for m in trained]
        rows += history
    maps = [conv.out_channels for conv in model.convs]
    result = {"command": "python benchmarks/silent_maps.py " + shlex.join(argv), "device": str(jax.devices()[0]),
              "model": args.model, "fold": None if args.model else args.fold, "training_recordings": len(probe),
              "maps": maps, "epochs": [{"epoch": None if args.model else e, "silent_maps": s, "history": row}
                                       for e, (s, row) in enumerate(zip(silent, rows))],
              "code": code, "xla_flags": xla_flags()}
    print(json.dumps(result), flush=True)
    save(result, args.out)


if __name__ == "__main__":
    main()
