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
