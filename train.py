"""Train a delay-learning SNN: `python train.py [model=...] [dataset=...] [queue=...] [trainer.epochs=...]`."""

from __future__ import annotations

import json
import os

import equinox as eqx
import hydra
import jax
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig


@hydra.main(config_path="configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    data = instantiate(cfg.dataset).load()
    # partial: runtime objects (queue, key) go in as Python arguments, not through OmegaConf
    build_model = instantiate(cfg.model, _partial_=True)
    model = build_model(channels=data.channels, classes=data.classes, queue=instantiate(cfg.queue),
                        key=jax.random.PRNGKey(cfg.seed))
    model, metrics = instantiate(cfg.trainer).fit(model, data, seed=cfg.seed)
    out_dir = HydraConfig.get().runtime.output_dir
    eqx.tree_serialise_leaves(os.path.join(out_dir, "model.eqx"), model)
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    print(f"final validation accuracy: {metrics['val_accuracy']:.4f} (metrics in {out_dir}/metrics.json)")
    return metrics["val_accuracy"]


if __name__ == "__main__":
    main()
