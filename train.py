"""Train a delay-learning SNN: `python train.py [model=...] [dataset=...] [queue=...] [trainer.epochs=...]`."""

from __future__ import annotations

import json
import os

import equinox as eqx
import hydra
import jax
import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate, to_absolute_path
from omegaconf import DictConfig, OmegaConf

import zoo
import zoo.build
from zoo.checkpoint import Checkpoints


def build_model(cfg: DictConfig, data, seed: int):
    """The model of ``cfg.model`` (and ``cfg.queue``) for ``data``, with initial weights drawn from ``seed``."""
    return zoo.build.build_model(cfg.model, channels=data.channels, classes=data.classes, frame=data.frame,
                                 queue_cfg=cfg.get("queue"), seed=seed)


def initial_weights(init_from: str, model):
    """``model`` with the weights of ``init_from``: a train.py run directory, a ``.eqx`` file, a zoo
    name, a pretrained directory or a Hub id. The architectures must match; a leaf that does not is
    named in the error."""
    path = to_absolute_path(init_from)
    run_weights = os.path.join(path, "model.eqx") if os.path.isdir(path) else path
    if os.path.isfile(run_weights):
        return eqx.tree_deserialise_leaves(run_weights, model)
    if os.path.isdir(path):
        pretrained = zoo.Pretrained.load_directory(path)
    elif "/" not in init_from and not init_from.endswith(".eqx"):
        pretrained = zoo.load_pretrained(init_from)  # a zoo name (an unknown one lists the close matches)
    elif init_from.count("/") == 1 and not init_from.startswith("."):
        pretrained = zoo.load_pretrained(init_from)  # a Hub id
    else:
        raise FileNotFoundError(f"init_from={init_from}: {path} not found; give a zoo name (zoo.list_models()), a "
                                "pretrained or train.py run directory, a .eqx file or a Hub id (ORG/NAME)")
    arrays = {k: np.asarray(v) for k, v in zoo.hub.leaf_paths(pretrained.model).items()}
    return zoo.hub.fill(model, arrays, f"init_from={init_from}")


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
def main(cfg: DictConfig) -> float | None:
    select_platform(cfg.device.platform, cfg.get("distributed"))
    main_process = jax.process_index() == 0  # with several processes, one writes the outputs
    if main_process:
        print(f"{jax.device_count()} {jax.devices()[0].platform} device(s) in {jax.process_count()} process(es)",
              flush=True)
    data = instantiate(cfg.dataset).load()
    model = build_model(cfg, data, cfg.seed)
    out_dir = HydraConfig.get().runtime.output_dir
    if cfg.init_from:
        model = initial_weights(cfg.init_from, model)
    trainer = instantiate(cfg.trainer)
    checkpoints = Checkpoints(os.path.join(out_dir, "checkpoints"), keep_best=cfg.checkpoint.keep_best,
                              metric=cfg.checkpoint.metric or trainer.selection_metric)
    logger = instantiate(cfg.logger) if main_process else None
    if logger is not None:
        logger.start(OmegaConf.to_container(cfg, resolve=True), out_dir)
    model, metrics = trainer.fit(
        model, data, seed=cfg.seed, checkpoints=checkpoints, resume=cfg.resume, logger=logger,
        progress=main_process, log=lambda line: print(line, flush=True) if main_process else None)
    checkpoints.close()
    if not main_process:
        return metrics["val_accuracy"]
    logger.finish({"val_accuracy": metrics["val_accuracy"], "epochs": len(metrics["history"])})
    eqx.tree_serialise_leaves(os.path.join(out_dir, "model.eqx"), model)
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    if metrics["val_accuracy"] is None:
        print(f"no validation split (trainer.val_fraction=0): final training accuracy "
              f"{metrics['history'][-1]['train_accuracy']:.4f} (metrics in {out_dir}/metrics.json)")
    else:
        print(f"final validation accuracy: {metrics['val_accuracy']:.4f} (metrics in {out_dir}/metrics.json)")
    return metrics["val_accuracy"]


if __name__ == "__main__":
    main()
