"""A dense LIF layer, forward + backward, against spyx in one process (Open Neuromorphic-style benchmark).

Network: ``Linear(N -> N)`` then LIF (``V = beta V + x - s threshold``, ``s = H(V - threshold)``,
SuperSpike surrogate with slope 25, spyx's defaults), loss = total spike count, gradient w.r.t. all
parameters, on the same Bernoulli input spikes (``steps x batch x N``). Scaled from the benchmark's
16k neurons to ``--neurons`` to fit a CPU.

* ``spyx``: ``flax.nnx.Linear`` + ``spyx.nn.LIF``, time loop with ``jax.lax.scan``;
* ``ours``: the same maths in plain JAX, the input product hoisted out of the time loop (one
  ``(steps * batch) x N`` GEMM), ``zoo.neurons.fast_sigmoid(25)``;
* ``ours_axonal_delays``: the same, plus a learnable axonal delay per input neuron through a
  `queues.FIFORing` layer (spikes delayed before the GEMM; gradients reach the delays).

Usage: python benchmarks/lif_layer_vs_spyx.py --out benchmarks/lif_layer_vs_spyx_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys

import jax
import jax.numpy as jnp

import queues
from zoo.neurons import fast_sigmoid

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from queues_vs_adseq import NotFinite, peak_bytes, timed  # noqa: E402

BETA, THRESHOLD, SLOPE = 0.9, 1.0, 25.0


def spyx_loss(n: int, key):
    import spyx
    from flax import nnx

    class Layer(nnx.Module):
        def __init__(self, rngs):
            self.linear = nnx.Linear(n, n, rngs=rngs)
            self.lif = spyx.nn.LIF((n,), beta=BETA, threshold=THRESHOLD, rngs=rngs)

        def __call__(self, spikes):  # (steps, batch, n)
            def step(v, x):
                s, v = self.lif(self.linear(x), v)
                return v, s.sum()

            return jax.lax.scan(step, jnp.zeros(spikes.shape[1:]), spikes)[1].sum()

    graphdef, params = nnx.split(Layer(nnx.Rngs(int(key[-1]))))
    return lambda params, spikes: nnx.merge(graphdef, params)(spikes), params


def lif_count(currents):
    spike = fast_sigmoid(SLOPE)

    def step(v, x):
        s = spike(v - THRESHOLD)
        return BETA * v + x - s * THRESHOLD, s.sum()

    return jax.lax.scan(step, jnp.zeros(currents.shape[1:]), currents)[1].sum()


def ours_loss(params, spikes):
    weight, bias = params["weight"], params["bias"]
    return lif_count(jnp.einsum("tbi,oi->tbo", spikes, weight) + bias)


def ours_delayed_loss(max_delay: float):
    queue = queues.FIFORing(capacity=4, max_delay=max_delay, validate=False)

    def loss(params, spikes):
        steps = jnp.arange(spikes.shape[0], dtype=jnp.int32)

        def step(state, xs):  # one queue per (example, input neuron): axonal delays
            now, fire = xs
            state, delivery = queue.pop(state, now)
            state = queue.push(state, now, params["delays"], fire > 0)
            return state, delivery.exponential(now, 1.0)  # the delayed spike, weighted by its sub-step lag

        _, delayed = jax.lax.scan(step, queue.init(spikes.shape[1:]), (steps, spikes))
        return ours_loss(params, delayed)

    return loss


def measure(loss, params, spikes, repeats):
    compiled = jax.jit(jax.grad(loss)).lower(params, spikes).compile()
    out = {"peak_bytes": peak_bytes(compiled), "spikes": float(jax.jit(loss)(params, spikes))}
    try:
        seconds = timed(compiled, (params, spikes), repeats)
    except NotFinite as exc:  # recorded, with no speed
        return dict(out, grads_finite=False, error=f"NotFinite: {exc}")
    return dict(out, ms_per_training_step=1e3 * seconds, grads_finite=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--neurons", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--max-delay", type=float, default=16.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    key = jax.random.PRNGKey(0)
    spikes = jax.random.bernoulli(key, args.rate, (args.steps, args.batch, args.neurons)).astype(jnp.float32)

    loss, spyx_params = spyx_loss(args.neurons, key)
    rows = {"spyx": measure(loss, spyx_params, spikes, args.repeats)}
    # our layers start from spyx's initial weights: the same network
    linear = spyx_params["linear"]
    ours_params = {"weight": jnp.asarray(linear["kernel"][...]).T, "bias": jnp.asarray(linear["bias"][...])}
    rows["ours"] = measure(ours_loss, ours_params, spikes, args.repeats)
    delayed = dict(ours_params, delays=jax.random.uniform(key, (args.batch, args.neurons), maxval=args.max_delay))
    rows["ours_axonal_delays"] = measure(ours_delayed_loss(args.max_delay), delayed, spikes, args.repeats)
    for name in ("ours", "ours_axonal_delays"):
        if "error" in rows[name] or "error" in rows["spyx"]:
            continue
        rows[name]["time_ratio_vs_spyx"] = rows[name]["ms_per_training_step"] / rows["spyx"]["ms_per_training_step"]
    results = {"command": "python benchmarks/lif_layer_vs_spyx.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
               "device": str(jax.devices()[0]), "platform": platform.platform(), "jax": jax.__version__,
               "spyx": __import__("importlib.metadata").metadata.version("spyx"),
               "config": {k: v for k, v in vars(args).items() if k not in ("out", "repeats")}, "rows": rows}
    print(json.dumps(rows, indent=1))
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
