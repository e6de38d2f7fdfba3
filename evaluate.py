"""Evaluate a trained run: `python evaluate.py run=outputs/DATE/TIME [benchmark=true] [out=results.json]`."""

from __future__ import annotations

import json
import os
import time

import equinox as eqx
import hydra
import jax
import jax.numpy as jnp
import numpy as np
from hydra.utils import instantiate, to_absolute_path
from omegaconf import DictConfig, OmegaConf

import queues
from train import build_model
from zoo.models import swap_queues


def load_run(run_dir: str):
    """The trained model of a train.py run directory, and the config it was trained with."""
    config_path = os.path.join(run_dir, ".hydra", "config.yaml")
    weights_path = os.path.join(run_dir, "model.eqx")
    for path in (config_path, weights_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"evaluate: {path} not found; `run=` must be a directory written by train.py")
    cfg = OmegaConf.load(config_path)
    data = instantiate(cfg.dataset).load()
    skeleton = build_model(cfg, data, cfg.seed)
    return eqx.tree_deserialise_leaves(weights_path, skeleton), cfg


@eqx.filter_jit
def predict(model, spikes, times):
    """Logits and spike statistics for a batch of examples."""
    return jax.vmap(model)(spikes, times)


@eqx.filter_jit
def predict_one(model, spikes, times):
    return model(spikes, times)


def example(data, index):
    """``(spikes, times)`` of the examples at ``index`` (an int or a slice)."""
    return jnp.asarray(data.spikes[index]), None if data.times is None else jnp.asarray(data.times[index])


def accuracy(model, data) -> float:
    logits, _ = predict(model, *example(data, slice(None)))
    return float((np.asarray(logits).argmax(-1) == data.labels).mean())


def benchmark(model, data, queue_names, batch_size: int, repeats: int) -> list[dict]:
    """Per queue kind: accuracy, batch-1 latency p50/p95, throughput at ``batch_size``, dropped spikes.
    A model without queues (`ExactLIFNetwork`) gets one row, ``queue: "none"``."""
    is_queue = lambda q: isinstance(q, queues.SpikeQueue)  # noqa: E731
    if not any(is_queue(q) for q in jax.tree_util.tree_leaves(model, is_leaf=is_queue)):
        queue_names = ["none"]
    rows = []
    for name in queue_names:
        if name == "none":
            variant = model
        else:
            queue_cfg = OmegaConf.load(to_absolute_path(os.path.join("configs", "queue", f"{name}.yaml")))
            variant = swap_queues(model, lambda max_delay: instantiate(queue_cfg, max_delay=max_delay))
        try:
            jax.block_until_ready(predict_one(variant, *example(data, 0)))
        except ValueError as exc:  # a kind this model cannot use (e.g. delay_line under exact EventProp delivery)
            rows.append({"queue": name, "error": str(exc)})
            continue
        latencies = []
        for i in range(repeats):
            x = example(data, i % len(data))
            start = time.perf_counter()
            jax.block_until_ready(predict_one(variant, *x))
            latencies.append(time.perf_counter() - start)
        xb = example(data, slice(0, batch_size))
        jax.block_until_ready(predict(variant, *xb))
        start = time.perf_counter()
        jax.block_until_ready(predict(variant, *xb))
        elapsed = time.perf_counter() - start
        all_logits, all_stats = predict(variant, *example(data, slice(None)))
        rows.append({
            "queue": name, "accuracy": float((np.asarray(all_logits).argmax(-1) == data.labels).mean()),
            "latency_ms_p50": 1e3 * float(np.percentile(latencies, 50)),
            "latency_ms_p95": 1e3 * float(np.percentile(latencies, 95)),
            "throughput_samples_per_s": min(batch_size, len(data)) / elapsed,
            "dropped_spikes_per_sample": float(all_stats["dropped"].mean()),
            "hidden_spikes_per_sample": float(all_stats["spikes"].mean()),
        })
    return rows


def test_set(run_cfg, cfg):
    """Generated datasets: a fresh draw (other seed); recordings: the run's dataset at `split=`."""
    if "seed" in run_cfg.dataset and "examples" in run_cfg.dataset:
        return instantiate(run_cfg.dataset, seed=cfg.test_seed, examples=cfg.test_examples).load()
    return instantiate(run_cfg.dataset, split=cfg.split, **({"root": cfg.root} if cfg.root else {})).load()


@hydra.main(config_path="configs", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> float:
    model, run_cfg = load_run(to_absolute_path(cfg.run))
    test = test_set(run_cfg, cfg)
    generated = "seed" in run_cfg.dataset and "examples" in run_cfg.dataset
    result = {"model": os.path.basename(os.path.normpath(cfg.run)), "dataset": run_cfg.dataset._target_,
              "split": f"test (generated, seed {cfg.test_seed})" if generated else cfg.split,
              "accuracy": accuracy(model, test),
              "num_samples": len(test), "device": str(jax.devices()[0])}
    print(f"accuracy on {len(test)} test samples: {result['accuracy']:.4f}")
    if cfg.benchmark:
        result["benchmark"] = benchmark(model, test, list(cfg.benchmark_queues), cfg.batch_size, cfg.repeats)
        print(f"{'queue':14} {'accuracy':>9} {'p50 ms':>8} {'p95 ms':>8} {'samples/s':>10} {'dropped':>8}")
        for r in result["benchmark"]:
            if "error" in r:
                print(f"{r['queue']:14} not usable: {r['error']}")
                continue
            print(f"{r['queue']:14} {r['accuracy']:9.4f} {r['latency_ms_p50']:8.2f} {r['latency_ms_p95']:8.2f} "
                  f"{r['throughput_samples_per_s']:10.1f} {r['dropped_spikes_per_sample']:8.2f}")
    if cfg.out:
        with open(to_absolute_path(cfg.out), "w") as f:
            json.dump(result, f, indent=2)
    return result["accuracy"]


if __name__ == "__main__":
    main()
