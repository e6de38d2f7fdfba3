"""Our delay layer (a queue per synapse) against a dense temporal-convolution delay layer (DCLS-style).

The same layer both ways: ``inputs -> synapses with a learnable weight and delay each -> exponential
synaptic current -> LIF neurons``, loss = the output spike count, gradient w.r.t. weights and delays.

* *dense*: every synapse is a kernel of ``max_delay + 1`` taps, ``w * softmax(-(d - delay)^2 / 2 sigma^2)``
  over the tap index ``d`` (the Gaussian interpolation of DCLS, Hammouamri et al. 2024), applied to the
  input spike trains as one causal convolution over time (XLA's convolution).
* *ours*: spikes go through a layer of queues, each delivered at its exact arrival time into the
  exponential current: `DelayLine` (lossless; its slots grow with the max delay) and `FIFORing` with the
  capacity that Erlang's B formula gives for 1 % drops at this rate (its state does not grow with the
  max delay), stepped through time; and `queues.Scheduled`, which computes every step's delivery at
  once from the input events (the input is known in advance, as for any feed-forward layer), with a
  capacity of the most events in one example of the batch (nothing dropped). The loss of each is
  reported: a FIFO that drops computes a slightly different layer, and `DelayLine` merges the spikes
  a synapse delivers in one step into their mean time.

The input raster is an argument of the compiled step for every layer (not a constant XLA could fold).

Time per training step (compiled ``jax.grad``, best of ``--repeats``) and peak memory (XLA's compiled
arguments + outputs + temporaries).

Usage: python benchmarks/delays_vs_dense_conv.py --out benchmarks/delays_vs_dense_conv_cpu.json
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

import queues
from queues.recommend import erlang_b
from zoo.neurons import fast_sigmoid

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from queues_vs_adseq import NotFinite, peak_bytes, timed  # noqa: E402

TAU_SYN, TAU_MEM, THRESHOLD, SIGMA = 4.0, 8.0, 1.0, 1.0


spike_fn = fast_sigmoid(5.0)


def lif_spike_count(inputs):
    """Spike count of LIF neurons driven by ``inputs[t, ...]`` jumps of an exponential current."""
    alpha, beta = math.exp(-1 / TAU_SYN), math.exp(-1 / TAU_MEM)

    def step(carry, x):
        current, v = carry
        current = alpha * current + x
        v = beta * v + current
        s = spike_fn(v - THRESHOLD)
        return (current, v * (1 - jax.lax.stop_gradient(s))), s.sum()

    zeros = jnp.zeros(inputs.shape[1:])
    return jax.lax.scan(step, (zeros, zeros), inputs)[1].sum()


def dense_loss(max_delay: int):
    """loss(weight (n_out, n_in), delays (n_in, n_out), spikes (batch, steps, n_in))."""
    taps = jnp.arange(max_delay + 1, dtype=jnp.float32)

    def loss(weight, delays, spikes):
        x = jnp.pad(jnp.moveaxis(spikes, 1, 2), ((0, 0), (0, 0), (max_delay, 0)))  # (batch, n_in, D + steps)
        profile = jax.nn.softmax(-((taps - delays.T[..., None]) ** 2) / (2 * SIGMA**2), axis=-1)  # (out, in, taps)
        kernel = (weight[..., None] * profile)[..., ::-1]  # correlation -> causal convolution
        current = jax.lax.conv_general_dilated(x, kernel, (1,), "VALID", dimension_numbers=("NCH", "OIH", "NCH"))
        return lif_spike_count(jnp.moveaxis(current, 2, 0))  # (steps, batch, n_out)

    return loss


def queue_loss(max_delay: int, queue=None):
    """The same layer with one queue per synapse and example: a (batch, n_in, n_out) layer state."""
    queue = queue or queues.DelayLine(max_delay=float(max_delay), validate=False)

    def loss(weight, delays, spikes):
        batch, n_steps, n_in = spikes.shape
        steps = jnp.arange(n_steps, dtype=jnp.int32)
        shape = (batch, n_in, delays.shape[1])

        def step(state, xs):
            now, fire = xs  # fire: (batch, n_in)
            state, delivery = queue.pop(state, now)
            state = queue.push(state, now, delays, jnp.broadcast_to(fire[:, :, None] > 0, shape))
            return state, jnp.einsum("oi,bio->bo", weight, delivery.exponential(now, TAU_SYN))

        _, inputs = jax.lax.scan(step, queue.init(shape), (steps, jnp.moveaxis(spikes, 1, 0)))
        return lif_spike_count(inputs)  # (steps, batch, n_out)

    return loss


def scheduled_loss(scheduled: queues.Scheduled):
    """The same layer, every step's delivery computed at once (per example) before the neurons run."""
    def loss(weight, delays, spikes):
        schedule = jax.vmap(lambda x: scheduled.schedule(x, delays))(spikes)
        current = jax.vmap(lambda s: s.exponential(weight, TAU_SYN))(schedule)  # (batch, steps, n_out)
        return lif_spike_count(jnp.moveaxis(current, 1, 0))

    return loss


def measure(loss, weight, delays, spikes, repeats: int) -> dict:
    compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(weight, delays, spikes).compile()
    out = {"peak_bytes": peak_bytes(compiled), "loss": float(jax.jit(loss)(weight, delays, spikes))}
    try:
        seconds = timed(compiled, (weight, delays, spikes), repeats)
    except NotFinite as exc:  # recorded, with no speed
        return dict(out, grads_finite=False, error=f"NotFinite: {exc}")
    return dict(out, ms_per_training_step=1e3 * seconds, us_per_simulated_step=1e6 * seconds / spikes.shape[1],
                grads_finite=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-delays", default="64,256,512")
    parser.add_argument("--neurons", type=int, default=64, help="inputs = outputs")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--extra-steps", type=int, default=64, help="steps simulated beyond the max delay")
    parser.add_argument("--rate", type=float, default=0.02, help="input spike probability per step")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    n = args.neurons
    key_w, key_d, key_x = jax.random.split(jax.random.PRNGKey(0), 3)
    weight = jax.random.normal(key_w, (n, n)) * (3.0 / math.sqrt(n))
    rows = []
    for max_delay in (int(d) for d in args.max_delays.split(",")):
        steps = max_delay + args.extra_steps
        spikes = jax.random.bernoulli(key_x, args.rate, (args.batch, steps, n)).astype(jnp.float32)
        delays = jax.random.uniform(key_d, (n, n), minval=0.0, maxval=max_delay - 1.0)
        load = args.rate * max_delay / 2  # mean delay is max_delay / 2
        capacity = next(k for k in range(1, 64) if erlang_b(k, load) <= 0.01)
        events = int((spikes > 0).sum((1, 2)).max())  # the most input events of one example
        losses = {"delay_line": queue_loss(max_delay, queues.DelayLine(max_delay=float(max_delay), validate=False)),
                  f"fifo_ring[{capacity}]": queue_loss(max_delay, queues.FIFORing(
                      capacity=capacity, max_delay=float(max_delay), validate=False)),
                  f"scheduled[{events}]": scheduled_loss(queues.Scheduled(
                      max_delay=float(max_delay), capacity=events, validate=False))}
        row = {"max_delay": max_delay, "steps": steps, "neurons": n, "batch": args.batch,
               "dense": measure(dense_loss(max_delay), weight, delays, spikes, args.repeats),
               "ours": {name: measure(loss, weight, delays, spikes, args.repeats) for name, loss in losses.items()}}
        for r in row["ours"].values():
            if "error" in r or "error" in row["dense"]:
                continue
            r["speedup_vs_dense"] = row["dense"]["ms_per_training_step"] / r["ms_per_training_step"]
            r["memory_ratio_vs_dense"] = r["peak_bytes"] / row["dense"]["peak_bytes"]
        print(json.dumps(row), flush=True)
        rows.append(row)
    results = {"config": {"rate": args.rate, "sigma": SIGMA, "tau_syn": TAU_SYN, "tau_mem": TAU_MEM},
               "command": "python benchmarks/delays_vs_dense_conv.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
               "device": str(jax.devices()[0]), "platform": platform.platform(), "jax": jax.__version__,
               "rows": rows}
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
