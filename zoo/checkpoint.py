"""Orbax checkpoints of a training run: the latest (for resuming) and the best k (by a metric)."""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class Checkpoints:
    """``directory/last`` (one checkpoint, every epoch) and ``directory/best`` (the ``keep_best`` highest
    by ``metric``). Each holds the array leaves of the training state (model parameters and optimiser
    state, in `jax.tree_util` order) and a JSON item (epoch, history, RNG and data-order state).

    Orbax writes each checkpoint to a temporary directory and renames it when complete, so a run
    killed while saving leaves the previous checkpoint intact.
    """

    def __init__(self, directory: str, keep_best: int = 3, metric: str = "val_accuracy"):
        if keep_best < 1:
            raise ValueError(f"Checkpoints: `keep_best` must be >= 1, got {keep_best}")
        self.directory, self.metric = os.path.abspath(directory), metric
        # Two managers save the same step: with several processes their cross-process barriers would
        # share names ("_async_commit_complete.<step>") and collide, so each gets its own key prefix.
        self.last = ocp.CheckpointManager(
            os.path.join(self.directory, "last"),
            options=ocp.CheckpointManagerOptions(
                max_to_keep=1, create=True, cleanup_tmp_directories=True,
                multiprocessing_options=ocp.options.MultiprocessingOptions(barrier_sync_key_prefix="last")))
        self.best = ocp.CheckpointManager(
            os.path.join(self.directory, "best"),
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep_best, create=True, cleanup_tmp_directories=True,
                best_fn=lambda m: m[metric], best_mode="max",
                multiprocessing_options=ocp.options.MultiprocessingOptions(barrier_sync_key_prefix="best")))

    def save(self, epoch: int, state: Any, meta: dict[str, Any], metrics: dict[str, float]) -> None:
        if metrics.get(self.metric) is None:  # e.g. val_accuracy of a run without a validation split
            raise ValueError(f"Checkpoints: the best checkpoints are ranked by {self.metric!r}, which epoch {epoch} "
                             f"did not measure (it has {sorted(k for k, v in metrics.items() if v is not None)}); "
                             "without a validation split rank them by train_accuracy")
        leaves = {f"{i:05d}": np.asarray(x) for i, x in enumerate(jax.tree_util.tree_leaves(state))}
        args = ocp.args.Composite(state=ocp.args.StandardSave(leaves), meta=ocp.args.JsonSave(meta))
        self.last.save(epoch, args=args)
        self.best.save(epoch, args=args, metrics={self.metric: float(metrics[self.metric])})
        self.last.wait_until_finished()
        self.best.wait_until_finished()

    def latest_epoch(self) -> int | None:
        return self.last.latest_step()

    def restore(self, like: Any, which: str = "last", epoch: int | None = None) -> tuple[Any, dict[str, Any]]:
        """The training state shaped like ``like`` (its tree structure and leaf shapes) and the JSON meta."""
        manager = self.last if which == "last" else self.best
        epoch = epoch if epoch is not None else (manager.latest_step() if which == "last" else manager.best_step())
        if epoch is None:
            raise FileNotFoundError(f"no checkpoint in {os.path.join(self.directory, which)}")
        restored = manager.restore(epoch, args=ocp.args.Composite(state=ocp.args.StandardRestore(),
                                                                  meta=ocp.args.JsonRestore()))
        template, treedef = jax.tree_util.tree_flatten(like)
        leaves = [restored.state[k] for k in sorted(restored.state)]
        if len(leaves) != len(template):
            raise ValueError(f"checkpoint {manager.directory}/{epoch} holds {len(leaves)} arrays, the model and "
                             f"optimiser have {len(template)}: it was written for another configuration")
        for i, (saved, want) in enumerate(zip(leaves, template)):
            if np.shape(saved) != np.shape(want):
                path = jax.tree_util.keystr(jax.tree_util.tree_flatten_with_path(like)[0][i][0])
                raise ValueError(f"checkpoint {manager.directory}/{epoch}: leaf {path} has shape {np.shape(saved)}, "
                                 f"the model expects {np.shape(want)}")
        leaves = [np.asarray(x).astype(np.asarray(w).dtype) for x, w in zip(leaves, template)]
        return jax.tree_util.tree_unflatten(treedef, leaves), dict(restored.meta)

    def close(self) -> None:
        self.last.close()
        self.best.close()
