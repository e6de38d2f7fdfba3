"""Train a delay-learning SNN: `python train.py [model=...] [dataset=...] [queue=...] [trainer.epochs=...]`."""

from __future__ import annotations

import inspect
import json
import os

import equinox as eqx
import hydra
import jax
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate, to_absolute_path
from omegaconf import DictConfig, OmegaConf

from zoo.checkpoint import Checkpoints


def build_model(cfg: DictConfig, data, seed: int):
    """The model of ``cfg.model`` for ``data``, with initial weights drawn from ``seed``.

    Runtime objects go in as Python arguments rather than through OmegaConf: the sizes and the event
    frame shape (for models that take one) from the dataset, and ``cfg.queue`` for models that deliver
    through a queue (`ExactLIFNetwork` knows every arrival in advance and takes none).
    """
    build = instantiate(cfg.model, _partial_=True)
    accepts = inspect.signature(build.func).parameters
    extra = {}
    if "frame" in accepts:
        if data.frame is None:
            raise ValueError(f"model {build.func.__name__} needs event frames; this dataset has none")
        extra["frame"] = data.frame
    if "queue" in accepts:
        extra["queue"] = instantiate(cfg.queue)
    return build(channels=data.channels, classes=data.classes, key=jax.random.PRNGKey(seed), **extra)


def init_weights_path(init_from: str) -> str:
    """The weights file of ``init_from``: a train.py run directory or a ``.eqx`` file."""
    path = to_absolute_path(init_from)
    candidate = os.path.join(path, "model.eqx") if os.path.isdir(path) else path
    if not os.path.isfile(candidate):
        raise FileNotFoundError(f"init_from={init_from}: {candidate} not found; give a train.py run directory or a "
                                ".eqx weights file (zoo names and Hub ids arrive with the model zoo)")
    return candidate


def select_platform(platform: str, distributed: DictConfig | None = None) -> None:
    """Use the ``device`` group's backend, joining the ``distributed`` cluster first (it must precede
    any computation); fail loudly if this machine has no backend of that kind."""
    jax.config.update("jax_platforms", platform)
    if distributed:
        instantiate(distributed)  # jax.distributed.initialize(...)
    try:
        jax.devices()
    except RuntimeError as exc:
        raise RuntimeError(f"device={platform}: no {platform} backend on this machine ({exc}); choose device=cpu "
                           "or install the jax build for your accelerator") from exc


@hydra.main(config_path="configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    select_platform(cfg.device.platform, cfg.get("distributed"))
    main_process = jax.process_index() == 0  # with several processes, one writes the outputs
    if main_process:
        print(f"{jax.device_count()} {jax.devices()[0].platform} device(s) in {jax.process_count()} process(es)",
              flush=True)
    data = instantiate(cfg.dataset).load()
    model = build_model(cfg, data, cfg.seed)
    out_dir = HydraConfig.get().runtime.output_dir
    if cfg.init_from:
        model = eqx.tree_deserialise_leaves(init_weights_path(cfg.init_from), model)
    checkpoints = Checkpoints(os.path.join(out_dir, "checkpoints"), keep_best=cfg.checkpoint.keep_best)
    logger = instantiate(cfg.logger) if main_process else None
    if logger is not None:
        logger.start(OmegaConf.to_container(cfg, resolve=True), out_dir)
    model, metrics = instantiate(cfg.trainer).fit(
        model, data, seed=cfg.seed, checkpoints=checkpoints, resume=cfg.resume, logger=logger,
        progress=main_process, log=lambda line: print(line, flush=True) if main_process else None)
    checkpoints.close()
    if not main_process:
        return metrics["val_accuracy"]
    logger.finish({"val_accuracy": metrics["val_accuracy"], "epochs": len(metrics["history"])})
    eqx.tree_serialise_leaves(os.path.join(out_dir, "model.eqx"), model)
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    print(f"final validation accuracy: {metrics['val_accuracy']:.4f} (metrics in {out_dir}/metrics.json)")
    return metrics["val_accuracy"]


if __name__ == "__main__":
    main()
