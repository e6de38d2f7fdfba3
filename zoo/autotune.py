"""Tune a zoo model for the device at hand: time every queue kind, dtype and batch size, keep the fastest
configuration whose accuracy stays within ``tolerance`` of the trained one (and drops no more spikes),
and record it as the accelerator's variant in the model's ``config.json``.

    python -m zoo.autotune delayed_ffn.nmnist [--tolerance 0.005] [--dtypes float32 bfloat16]

Variants never measured on their hardware are seeded from the paper's finding (GPU: rings while memory
allows; TPU: sorted arrays), with a capacity that drops nothing, and say so in the card;
``--untuned-only`` rewrites just those.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import jax
from omegaconf import OmegaConf

import queues

from . import cards, inference
from .build import reconfigured
from .hub import Pretrained
from .models.synapses import is_delivery
from .registry import get_entry

QUEUE_CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "queue"
KINDS = ("delay_line", "fifo_ring", "lossy_ring", "sorted_array", "binary_heap", "single_spike", "scheduled")
# untuned starting points, from the paper behind `queues` (see README): not measured here
PAPER = {"gpu": ("fifo_ring", "the paper's finding for GPUs (rings while memory allows)"),
         "tpu": ("sorted_array", "the paper's finding for TPUs (sorting)"),
         "cpu": ("fifo_ring", "the paper's finding for CPUs (FIFO rings / heaps)")}


def queue_config(kind: str) -> dict[str, Any]:
    if not (QUEUE_CONFIGS / f"{kind}.yaml").is_file():
        raise FileNotFoundError(f"unknown queue kind {kind!r}; choose from {', '.join(KINDS)}")
    config = OmegaConf.to_container(OmegaConf.load(QUEUE_CONFIGS / f"{kind}.yaml"))
    config.pop("max_delay", None)  # each layer sets its own (`swap_queues`)
    return config


def trained_queue(config: dict[str, Any]) -> dict[str, Any]:
    """The queue config a model was trained with (``{}`` if none), without its ``max_delay``."""
    trained = dict(config.get("queue") or {})
    trained.pop("max_delay", None)
    return trained


def benchmark_configs(trained: dict[str, Any], kinds) -> dict[str, dict[str, Any]]:
    """Queue configs to benchmark, by kind: the trained kind keeps its trained settings (e.g. the
    capacity of `queues.Scheduled`), the others their config group's defaults."""
    return {k: trained if queue_config(k)["_target_"] == trained.get("_target_") else queue_config(k) for k in kinds}


def tune(loaded: Pretrained, data, *, dtypes=("float32",), kinds=KINDS, batch_sizes=(1, 16, 64, 256),
         tolerance: float = 0.005, repeats: int = 10) -> dict[str, Any]:
    """The fastest (throughput) configuration within ``tolerance`` accuracy of the trained one
    (float32, its own queue), with no more dropped spikes; every candidate is kept in ``candidates``."""
    import jax.numpy as jnp

    trained = trained_queue(loaded.config)
    configs = benchmark_configs(trained, kinds)
    candidates = []
    for dtype in dtypes:
        model = reconfigured(loaded.model, dtype=dtype)
        try:
            rows = inference.benchmark(model, data, configs, batch_sizes=batch_sizes, repeats=repeats)
        except Exception as exc:  # a dtype this model cannot run in (e.g. no bfloat16 kernels): recorded, skipped
            candidates.append({"dtype": dtype, "error": inference.short_error(exc)})
            continue
        candidates += [{**r, "dtype": str(jnp.dtype(dtype))} for r in rows]
    usable = [c for c in candidates if "error" not in c]
    reference = next((c for c in usable if c["dtype"] == "float32" and
                      (c["queue"] == "none" or configs[c["queue"]] is trained)), None)
    if reference is None:
        raise RuntimeError(f"autotune: the trained configuration (float32, {trained.get('_target_')}) could not be "
                           f"measured: {candidates}")
    ok = [c for c in usable if c["accuracy"] >= reference["accuracy"] - tolerance
          and c["dropped_spikes_per_sample"] <= reference["dropped_spikes_per_sample"]]
    best = max(ok, key=lambda c: c["throughput_samples_per_s"])
    return {"queue": None if best["queue"] == "none" else configs[best["queue"]], "dtype": best["dtype"],
            "batch_size": best["best_batch_size"], "measured_on": inference.device_description(),
            "accuracy": best["accuracy"], "reference_accuracy": reference["accuracy"], "tolerance": tolerance,
            "throughput_samples_per_s": best["throughput_samples_per_s"],
            "speedup_vs_trained": best["throughput_samples_per_s"] / reference["throughput_samples_per_s"],
            "evaluated_on": f"{len(data)} examples", "candidates": candidates,
            "note": f"fastest of {len(usable)} measured configurations within {tolerance} accuracy"}


def untuned(loaded: Pretrained, accelerator: str) -> dict[str, Any]:
    """A variant for an accelerator not measured here: the paper's queue kind, float32, with the
    capacity that drops no spike of this model (`queues.lossless_capacity` of its longest delay
    bound), since the config group's default is sized for a demo, not for the model."""
    kind, why = PAPER[accelerator]
    bounds = [q.max_delay for q in jax.tree_util.tree_leaves(loaded.model, is_leaf=is_delivery) if is_delivery(q)]
    if not bounds:  # e.g. ExactLIFNetwork(delivery="table"), whatever its config's queue group says
        return {"queue": None, "dtype": "float32", "batch_size": None, "measured_on": None,
                "note": "not measured on its hardware; this model has no queue (arrivals from tables)"}
    queue = queue_config(kind)
    if "capacity" in queue:
        queue["capacity"] = queues.lossless_capacity(max(bounds))
        why += f"; capacity {queue['capacity']}: every spike a synapse can have in flight"
    return {"queue": queue, "dtype": "float32", "batch_size": None, "measured_on": None,
            "note": f"not measured on its hardware: {why}"}


def save_variants(directory: Path, variants: dict[str, Any], card: Path | None = None) -> None:
    """Merge ``variants`` into ``config.json`` (atomically) and regenerate the card."""
    path = directory / "config.json"
    config = json.loads(path.read_text())
    config["variants"] = {**config.get("variants", {}), **variants}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True))
    os.replace(tmp, path)
    cards.write_card(directory, card)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="a zoo name (its shipped directory is updated) or a pretrained directory")
    parser.add_argument("--variant", default=None, help="variant name (default: this device's platform)")
    parser.add_argument("--tolerance", type=float, default=0.005)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--kinds", nargs="+", default=list(KINDS))
    parser.add_argument("--split", default="test", help="recordings: the split to tune on")
    parser.add_argument("--root", default=None, help="recordings: their root, if not the training one")
    parser.add_argument("--examples", type=int, default=512, help="generated data: examples to tune on")
    parser.add_argument("--seed", type=int, default=2000003,
                        help="generated data: seed of the tuning draw (not evaluate.py's test draw)")
    parser.add_argument("--untuned-only", action="store_true",
                        help="measure nothing: rewrite the variants not measured on their hardware")
    args = parser.parse_args(argv)
    if os.path.isdir(args.name):
        directory, card = Path(args.name), None
    else:
        directory, card = get_entry(args.name).shipped, get_entry(args.name).card
    loaded = Pretrained.load_directory(directory)
    if args.untuned_only:
        variants = {name: untuned(loaded, name) for name in PAPER
                    if loaded.config.get("variants", {}).get(name, {}).get("measured_on") is None}
        save_variants(directory, variants, card)
        print(json.dumps(variants, indent=2))
        return variants
    data, split = inference.test_data(loaded.config, split=args.split, root=args.root, examples=args.examples,
                                      seed=args.seed)
    variant = args.variant or jax.devices()[0].platform
    tuned = tune(loaded, data, dtypes=args.dtypes, kinds=args.kinds, tolerance=args.tolerance)
    generated = split.startswith("test (generated")
    tuned["evaluated_on"] += f" of a generated draw (seed {args.seed})" if generated else f" of the {split} split"
    variants = {variant: tuned}
    for other in PAPER:
        if other != variant and other not in loaded.config.get("variants", {}):
            variants[other] = untuned(loaded, other)
    save_variants(directory, variants, card)
    print(json.dumps({k: v for k, v in tuned.items() if k != "candidates"}, indent=2))
    return tuned


if __name__ == "__main__":
    main()
