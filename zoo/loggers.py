"""Experiment loggers: a no-op and Weights & Biases (offline unless asked otherwise)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np


class NoLogger:
    """``logger=none``: logs nothing."""

    def start(self, config: dict[str, Any], run_dir: str) -> None:
        pass

    def log(self, metrics: dict[str, Any], step: int, delays: np.ndarray | None = None) -> None:
        pass

    def finish(self, summary: dict[str, Any]) -> None:
        pass


class WandbLogger(NoLogger):
    """``logger=wandb``: config, per-epoch metrics (loss, accuracy, spike rate, dropped spikes) and the
    histogram of the learned delays. ``mode="offline"`` (default) writes the run under
    ``<run dir>/wandb`` and never touches the network; sync it later with ``wandb sync``."""

    def __init__(self, project: str = "delay-snn-zoo", mode: str = "offline", entity: str | None = None,
                 tags: list[str] | None = None):
        if mode not in ("offline", "online", "disabled"):
            raise ValueError(f"WandbLogger: `mode` must be offline, online or disabled, got {mode!r}")
        self.project, self.mode, self.entity, self.tags = project, mode, entity, list(tags or [])
        self.run = None

    def start(self, config, run_dir):
        import wandb

        self.run = wandb.init(project=self.project, entity=self.entity, mode=self.mode, dir=run_dir, config=config,
                              tags=self.tags, reinit="finish_previous")

    def log(self, metrics, step, delays=None):
        import wandb

        row = {k: v for k, v in metrics.items() if v is not None}  # e.g. val_accuracy without a validation split
        if delays is not None:
            row["delays"] = wandb.Histogram(np.asarray(delays).ravel())
        self.run.log(row, step=step)

    def finish(self, summary):
        self.run.summary.update({k: v for k, v in summary.items() if np.isscalar(v)})
        self.run.finish()
        self.run = None


def wandb_run_dir(run_dir: str) -> str | None:
    """The offline wandb run folder written under ``run_dir``, if any."""
    root = os.path.join(run_dir, "wandb")
    if not os.path.isdir(root):
        return None
    runs = sorted(d for d in os.listdir(root) if d.startswith("offline-run-"))
    return os.path.join(root, runs[-1]) if runs else None
