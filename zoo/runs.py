"""train.py run directories: the trained model and config they hold, and their export to the zoo format."""

from __future__ import annotations

import json
import os
import shlex
from typing import Any

import equinox as eqx
import numpy as np
from hydra.utils import instantiate
from omegaconf import OmegaConf

from .build import build_model
from .hub import Pretrained


def load_run(run_dir: str):
    """``(model, cfg, data)``: the trained model of a train.py run directory, the config it was trained
    with, and its training dataset (which gives the input sizes)."""
    config_path = os.path.join(run_dir, ".hydra", "config.yaml")
    weights_path = os.path.join(run_dir, "model.eqx")
    for path in (config_path, weights_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found; a run directory is one written by train.py")
    cfg = OmegaConf.load(config_path)
    data = instantiate(cfg.dataset).load()
    skeleton = build_model(cfg.model, channels=data.channels, classes=data.classes, frame=data.frame,
                           queue_cfg=cfg.get("queue"), seed=cfg.seed)
    return eqx.tree_deserialise_leaves(weights_path, skeleton), cfg, data


def export_run(run_dir: str, name: str, recipe: list[str] | tuple[str, ...]) -> Pretrained:
    """The `Pretrained` of a train.py run: its weights, and a config that rebuilds them without the data."""
    model, cfg, data = load_run(run_dir)
    container = lambda node: OmegaConf.to_container(node, resolve=True)  # noqa: E731
    metrics_path = os.path.join(run_dir, "metrics.json")
    metrics = {}
    if os.path.isfile(metrics_path):
        with open(metrics_path) as f:
            metrics = json.load(f)
    config: dict[str, Any] = {
        "name": name, "model": container(cfg.model), "queue": container(cfg.queue) if "queue" in cfg else None,
        "inputs": {"channels": data.channels, "classes": data.classes,
                   "frame": list(data.frame) if data.frame is not None else None, "steps": int(data.spikes.shape[1])},
        "dataset": container(cfg.dataset), "seed": int(cfg.seed), "recipe": "python train.py " + shlex.join(recipe),
        "training": {"history": metrics.get("history", []), "val_accuracy": metrics.get("val_accuracy"),
                     "examples": len(data), "trainer": cfg.trainer._target_},
        "variants": {}, "example_raster": example_raster(data),
    }
    return Pretrained(model, config)


def example_raster(data, index: int = 0) -> dict[str, Any]:
    """Input events of one example (step and channel of each), for the model card's raster plot."""
    steps, channels = np.nonzero(np.asarray(data.spikes[index]) > 0)
    return {"times": steps.tolist(), "channels": channels.tolist(), "label": f"class {int(data.labels[index])}"}
