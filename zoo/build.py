"""A model from its config: the one place where a `model` config (Hydra's ``_target_`` form) meets the
runtime facts it needs (input sizes, event frame, queue), for train.py, evaluate.py and the Hub loader."""

from __future__ import annotations

import inspect
from typing import Any

import jax
from hydra.utils import instantiate


def build_model(model_cfg: Any, *, channels: int, classes: int, frame: tuple[int, ...] | None = None,
                queue_cfg: Any = None, seed: int = 0):
    """The model of ``model_cfg`` for inputs of ``channels`` (and ``frame``, for models that take one)
    and ``classes`` outputs, with initial weights drawn from ``seed``.

    Runtime objects go in as Python arguments rather than through OmegaConf: the event frame shape for
    models that take one, and the queue (``queue_cfg``) for models that deliver through one
    (`ExactLIFNetwork` knows every arrival in advance and takes none).
    """
    build = instantiate(model_cfg, _partial_=True)
    accepts = inspect.signature(build.func).parameters
    extra = {}
    if "frame" in accepts:
        if frame is None:
            raise ValueError(f"model {build.func.__name__} needs event frames; this dataset has none")
        extra["frame"] = tuple(frame)
    if "queue" in accepts:
        if queue_cfg is None:
            raise ValueError(f"model {build.func.__name__} delivers through a queue; give a `queue` config")
        extra["queue"] = instantiate(queue_cfg)
    return build(channels=channels, classes=classes, key=jax.random.PRNGKey(seed), **extra)


def reconfigured(model, *, queue_cfg: Any = None, dtype: Any = None):
    """``model`` with every queue rebuilt from ``queue_cfg`` (each keeping its own ``max_delay``) and
    its floating-point leaves cast to ``dtype``; either left as is when None. The weights are the same:
    this is how a variant (`zoo.autotune`) or a benchmarked queue kind is applied."""
    import equinox as eqx
    import jax.numpy as jnp

    from .models import swap_queues

    if queue_cfg is not None:
        model = swap_queues(model, lambda max_delay: instantiate(queue_cfg, max_delay=max_delay))
    if dtype is not None:
        model = jax.tree_util.tree_map(lambda x: x.astype(jnp.dtype(dtype)) if eqx.is_inexact_array(x) else x, model)
    return model
