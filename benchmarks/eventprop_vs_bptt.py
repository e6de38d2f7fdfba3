"""EventProp against surrogate-gradient BPTT on the same network and forward simulation: time and memory
per training step at several simulation lengths.

Network: ``--inputs`` channels (each spiking at ``--input-rate`` per step on average, times uniform over
the run, so longer runs carry proportionally more events) -> hidden LIF layers (``--max-spikes`` slots
per neuron and 300 steps) -> a non-spiking readout; max-membrane cross-entropy on random labels; gradient w.r.t. every
weight and delay (`zoo.eventprop.network`, ``method="eventprop"`` against ``method="surrogate"``).
Time per training step: compiled ``jax.grad`` of the batch loss, best of ``--repeats``. Memory: XLA's
compiled arguments + outputs + temporaries.

Usage: python benchmarks/eventprop_vs_bptt.py --out benchmarks/eventprop_vs_bptt_cpu.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import sys

import jax
import jax.numpy as jnp
import optax

from zoo import eventprop, neurons

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from queues_vs_adseq import NotFinite, peak_bytes, timed  # noqa: E402


def batch_loss(cell: eventprop.LIFCell, steps: int, method: str, labels):
    surrogate = neurons.fast_sigmoid(5.0)

    def one(weights, delays, times):
        v, _, counts = eventprop.network(weights, delays, times, cell=cell, steps=steps, method=method,
                                         surrogate_fn=surrogate)
        return v.max(0), sum(c["overflow"] for c in counts)

    def loss(weights, delays, times):
        logits, _ = jax.vmap(one, in_axes=(None, None, 0))(weights, delays, times)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    return loss, one


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="300,1000,3000")
    parser.add_argument("--inputs", type=int, default=16)
    parser.add_argument("--hidden", default="32", help="comma-separated hidden layer sizes")
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--weight-scale", type=float, default=0.3, help="weights ~ scale (N(0,1) + 0.5) / sqrt(fan-in)")
    parser.add_argument("--input-rate", type=float, default=4 / 300, help="spikes per input and step")
    parser.add_argument("--max-spikes", type=int, default=16, help="recorded spikes per neuron and 300 steps")
    parser.add_argument("--max-delay", type=float, default=20.0)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    sizes = [args.inputs, *(int(h) for h in args.hidden.split(",")), args.classes]
    keys = jax.random.split(jax.random.PRNGKey(0), 2 * len(sizes) + 2)
    weights = tuple((jax.random.normal(keys[2 * k], (post, pre)) + 0.5) * args.weight_scale / math.sqrt(pre)
                    for k, (pre, post) in enumerate(zip(sizes, sizes[1:])))
    delays = tuple(jax.random.uniform(keys[2 * k + 1], (pre, post), maxval=args.max_delay)
                   for k, (pre, post) in enumerate(zip(sizes, sizes[1:])))
    labels = jax.random.randint(keys[-1], (args.batch,), 0, args.classes)
    rows = []
    for steps in (int(s) for s in args.steps.split(",")):
        cell = eventprop.LIFCell(tau_syn=5.0, tau_mem=10.0, threshold=1.0,
                                 max_spikes=math.ceil(args.max_spikes * steps / 300))
        per_input = max(1, round(args.input_rate * steps))
        times = jnp.sort(jax.random.uniform(keys[-2], (args.batch, args.inputs, per_input), maxval=steps - 1.0),
                         axis=-1)
        row = {"steps": steps, "input_spikes_per_channel": per_input, "max_spikes": cell.max_spikes}
        for method in ("eventprop", "surrogate"):
            loss, one = batch_loss(cell, steps, method, labels)
            compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(weights, delays, times).compile()
            try:
                seconds = timed(compiled, (weights, delays, times), args.repeats)
            except NotFinite as exc:  # recorded, with no speed
                row[method] = {"error": f"NotFinite: {exc}", "grads_finite": False}
                continue
            _, overflow = jax.jit(jax.vmap(one, in_axes=(None, None, 0)))(weights, delays, times)
            _, spike_times, _ = jax.jit(jax.vmap(lambda t: eventprop.network(weights, delays, t, cell=cell,
                                                                              steps=steps)))(times)
            row[method] = {"ms_per_training_step": 1e3 * seconds, "peak_bytes": peak_bytes(compiled),
                           "loss": float(jax.jit(loss)(weights, delays, times)),
                           "grads_finite": True,
                           "hidden_spikes_per_example": float(sum(jnp.isfinite(t).sum() for t in spike_times[:-1])
                                                              / args.batch),
                           "dropped_spikes": int(overflow.sum())}
        if not any("error" in row[m] for m in ("eventprop", "surrogate")):
            row["memory_ratio_bptt_over_eventprop"] = row["surrogate"]["peak_bytes"] / row["eventprop"]["peak_bytes"]
            row["time_ratio_bptt_over_eventprop"] = (row["surrogate"]["ms_per_training_step"]
                                                     / row["eventprop"]["ms_per_training_step"])
        print(json.dumps(row), flush=True)
        rows.append(row)
    results = {"command": "python benchmarks/eventprop_vs_bptt.py " + shlex.join(argv),
               "device": str(jax.devices()[0]), "platform": platform.platform(), "jax": jax.__version__,
               "config": {"sizes": sizes, "weight_scale": args.weight_scale, "batch": args.batch,
                          "input_rate": args.input_rate, "max_delay": args.max_delay, "tau_syn": cell.tau_syn,
                          "tau_mem": cell.tau_mem},
               "rows": rows}
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
