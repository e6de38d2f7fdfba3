"""Evaluate and benchmark a model: a zoo name, a pretrained directory, a Hub id, or a train.py run.

    python evaluate.py model=lif_network.yinyang [variant=cpu] [benchmark=true] [out=results.json]
    python evaluate.py model=delayed_ffn.nmnist dataset=nmnist dataset.root=ROOT dataset.split=test
    python evaluate.py run=outputs/DATE/TIME [benchmark=true]
    python evaluate.py model=delayed_conv.nmnist ... test_time_shift=1   (averaged over 9 shifted views)
"""

from __future__ import annotations

import json
import os

import hydra
import jax
from hydra.utils import instantiate, to_absolute_path
from omegaconf import DictConfig

import zoo
from zoo import autotune, cards, inference
from zoo.models import ShiftAveraged
from zoo.runs import export_run


def load(cfg: DictConfig) -> zoo.Pretrained:
    if (cfg.model is None) == (cfg.run is None):
        raise ValueError("evaluate: give exactly one of model=<zoo name | directory | Hub id> or run=<train.py run dir>")
    if cfg.run is not None:
        run_dir = to_absolute_path(cfg.run)
        loaded = export_run(run_dir, os.path.basename(os.path.normpath(run_dir)), [])
        return zoo.registry.apply_variant(loaded, cfg.variant) if cfg.variant else loaded
    name = to_absolute_path(cfg.model) if os.path.isdir(to_absolute_path(cfg.model)) else cfg.model
    return zoo.load_pretrained(name, variant=cfg.variant, revision=cfg.revision)


def test_set(loaded: zoo.Pretrained, cfg: DictConfig):
    """``dataset=...`` if given; else the training dataset's test split: a fresh draw (other seed) for
    generated data, ``split=`` (and ``root=``) for recordings."""
    if cfg.get("dataset") is not None:
        data, name, target = instantiate(cfg.dataset).load(), cfg.dataset.get("split", "test"), cfg.dataset._target_
    else:
        target = loaded.config["dataset"]["_target_"]
        data, name = inference.test_data(loaded.config, split=cfg.split, root=to_absolute_path(cfg.root) if cfg.root
                                         else None, seed=cfg.test_seed, examples=cfg.test_examples)
    inputs = loaded.config["inputs"]
    got = {"channels": data.channels, "classes": data.classes,
           "frame": list(data.frame) if data.frame is not None else None}
    for key, value in got.items():
        if inputs.get(key) != value:
            raise ValueError(f"evaluate: the dataset gives {key}={value}, the model expects {inputs.get(key)}: "
                             "preprocess it as the model was trained (its config.json 'dataset')")
    return data, name, target


# its own config directory: evaluate.py takes `model=<zoo name>`, which the train config group `model` would claim
@hydra.main(config_path="configs/evaluate", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    loaded = load(cfg)
    test, split, target = test_set(loaded, cfg)
    if cfg.test_time_shift and cfg.card:
        raise ValueError("evaluate: card=true records the network's own accuracy; drop test_time_shift to refresh it")
    if cfg.test_time_shift and test.frame is None:
        raise ValueError(f"evaluate: test_time_shift={cfg.test_time_shift} shifts event frames; {target} has none")
    # the network averaged over its views shifted by up to test_time_shift pixels: another, costlier model
    model = ShiftAveraged(loaded.model, test.frame, cfg.test_time_shift) if cfg.test_time_shift else loaded.model
    accuracy, per_sample = inference.evaluate(model, test)
    result = {"model": loaded.config.get("name"), "variant": cfg.variant, "dataset": target,
              "test_time_shift": cfg.test_time_shift,
              "split": split, "accuracy": accuracy, "num_samples": len(test), "per_sample": per_sample,
              "device": inference.device_description(), "platform": jax.devices()[0].platform}
    views = f" (averaged over {len(model.shifts)} shifted views)" if cfg.test_time_shift else ""
    print(f"accuracy on {len(test)} {split} samples{views}: {accuracy:.4f}")
    if cfg.benchmark:
        kinds = autotune.benchmark_configs(autotune.trained_queue(loaded.config), cfg.benchmark_queues)
        result["benchmark"] = inference.benchmark(loaded.model, test, kinds, batch_sizes=tuple(cfg.batch_sizes),
                                                  repeats=cfg.repeats)
        print(inference.format_table(result["benchmark"]))
    if cfg.out:
        with open(to_absolute_path(cfg.out), "w") as f:
            json.dump(result, f, indent=2)
    if cfg.card:
        if cfg.model and os.path.isdir(to_absolute_path(cfg.model)):
            directory, card = to_absolute_path(cfg.model), None
        elif cfg.model in zoo.list_models():
            entry = zoo.registry.get_entry(cfg.model)
            directory, card = str(entry.shipped), str(entry.card)
        else:
            raise ValueError("evaluate: card=true refreshes the card of a local model directory or shipped zoo model")
        cards.add_evaluation(directory, result, card)
        print(f"model card refreshed: {os.path.join(card or directory, 'README.md')}")
    return accuracy


if __name__ == "__main__":
    main()
