"""Our queues against adseq (the paper's library), side by side in one process.

Two benchmarks of the paper (arXiv 2512.05906), with the queue state threaded correctly for both
libraries (adseq's own Poisson script discards the state returned by ``pop``):

* ``poisson``: independent queues fed Bernoulli spikes (p = 1/400 per step) with a fixed delay of 80
  steps; µs per simulated step, spikes delivered, and the conservation check
  delivered + dropped + pending == pushed for both (adseq does not count drops: its figure is
  implied by the other three).
* ``rsnn_grad``: 100 LIF neurons all-to-all with per-synapse delays N(4, 0.5) ms, dt 0.025 ms,
  tau_syn 2 ms, tau_mem 10 ms, threshold 1, drive 1.0 for t < 2 ms; reverse-mode gradient of the
  total spike count w.r.t. the 100x100 weights: µs per step and peak memory from XLA's compiled
  memory statistics (arguments + outputs + temporaries). Failures are recorded, not hidden.

Usage: python benchmarks/queues_vs_adseq.py --steps 4000 --out results.json
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

import queues

INT_MAX = 0x7FFFFFFF


def timed(compiled: Callable, args: tuple, repeats: int) -> float:
    """Best wall time of ``repeats`` runs of an already compiled function (seconds)."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - start)
    return best


# --------------------------------------------------------------------------------------------
# Poisson benchmark
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pair:
    name: str
    ours: Callable[[float], queues.SpikeQueue]
    adseq: Callable[[Any], Any]  # module -> queue class
    adseq_pending: Callable[[Any], Any]  # final adseq state -> pending per queue


def _pending_not_empty(s):
    return (s.buffer != INT_MAX).sum(-1)


PAIRS = [
    Pair("delay_line", lambda d: queues.DelayLine(max_delay=d),
         lambda a: a.Ring, lambda s: s.buffer.sum(-1)),
    Pair("fifo_ring[4]", lambda d: queues.FIFORing(capacity=4, max_delay=d),
         lambda a: a.FIFORing.sized(4), lambda s: s.size),
    Pair("lossy_ring[4]", lambda d: queues.LossyRing(capacity=4, max_delay=d),
         lambda a: a.LossyRing.sized(4), _pending_not_empty),
    Pair("sorted_array[4]", lambda d: queues.SortedArray(capacity=4, max_delay=d),
         lambda a: a.SortedArray.sized(4), _pending_not_empty),
    Pair("binary_heap[7]", lambda d: queues.BinaryHeap(capacity=7, max_delay=d),
         lambda a: a.BinaryHeap.sized(7), lambda s: s.size),
    Pair("single_spike(newest)", lambda d: queues.SingleSpike(max_delay=d, keep="newest"),
         lambda a: a.SingleSpike, lambda s: (s.last_spike != INT_MAX).sum(-1) if s.last_spike.ndim > 1
         else (s.last_spike != INT_MAX)),
    Pair("single_spike(oldest)", lambda d: queues.SingleSpike(max_delay=d, keep="oldest"),
         lambda a: a.SingleSpikeKeep, lambda s: (s.last_spike != INT_MAX)),
    Pair("bitmask", lambda d: queues.Bitmask(max_delay=d),
         lambda a: a.BitArray32, lambda s: jax.lax.population_count(s.buffer)),
]


def poisson_stream(steps: int, n: int, rate: float, seed: int = 0) -> jax.Array:
    return jax.random.bernoulli(jax.random.PRNGKey(seed), rate, (steps, n))


def ours_poisson(queue: queues.SpikeQueue, spikes: jax.Array, delay: int):
    def step(carry, xs):
        state, delivered = carry
        now, mask = xs
        state, delivery = queue.pop(state, now)
        state = queue.push(state, now, float(delay), mask)
        return (state, delivered + delivery.count()), None

    def run(spikes):
        n = spikes.shape[1]
        init = (queue.init((n,)), jnp.zeros(n, queue.dtype))
        (state, delivered), _ = jax.lax.scan(step, init, (jnp.arange(spikes.shape[0], dtype=jnp.int32), spikes))
        return delivered.sum(), state.dropped.sum(), queue.pending(state).sum()

    return run


def adseq_poisson(queue_cls, pending: Callable, spikes: jax.Array, delay: int):
    def step(carry, xs):
        qs, delivered = carry
        now, mask = xs
        qs, hit = jax.vmap(lambda q: q.pop(now))(qs)  # thread the popped state (the bug fixed)
        qs = jax.vmap(lambda e, q: jax.lax.cond(e, lambda: q.enqueue(now + delay), lambda: q))(mask, qs)
        return (qs, delivered + hit.astype(jnp.float32)), None

    def run(spikes):
        n = spikes.shape[1]
        init = (jax.vmap(lambda _: queue_cls.init(delay))(jnp.zeros(n)), jnp.zeros(n, jnp.float32))
        (qs, delivered), _ = jax.lax.scan(step, init, (jnp.arange(spikes.shape[0], dtype=jnp.int32), spikes))
        return delivered.sum(), pending(qs).sum()

    return run


def bench_poisson(adseq, steps: int, n: int, repeats: int, rate: float = 1 / 400, delay: int = 80):
    spikes = poisson_stream(steps, n, rate)
    pushed = int(spikes.sum())
    rows = []
    for pair in PAIRS:
        d = delay if pair.name != "bitmask" else 31  # both bitmask queues hold delays < 32 only
        row: dict[str, Any] = {"queue": pair.name, "delay_steps": d, "pushed": pushed}
        stream = spikes if d == delay else poisson_stream(steps, n, rate)
        try:
            fn = jax.jit(ours_poisson(pair.ours(float(d)), stream, d)).lower(stream).compile()
            row["ours_us_per_step"] = timed(fn, (stream,), repeats) / steps * 1e6
            delivered, dropped, pending = (int(x) for x in fn(stream))
            row.update(ours_delivered=delivered, ours_dropped=dropped, ours_pending=pending,
                       ours_conserved=delivered + dropped + pending == pushed)
        except Exception as exc:  # noqa: BLE001 - recorded in the output
            row["ours_error"] = f"{type(exc).__name__}: {exc}"[:500]
        try:
            fn = jax.jit(adseq_poisson(pair.adseq(adseq), pair.adseq_pending, stream, d)).lower(stream).compile()
            row["adseq_us_per_step"] = timed(fn, (stream,), repeats) / steps * 1e6
            delivered, pending = (int(x) for x in fn(stream))
            row.update(adseq_delivered=delivered, adseq_pending=pending,
                       adseq_implied_dropped=pushed - delivered - pending)
        except Exception as exc:  # noqa: BLE001
            row["adseq_error"] = f"{type(exc).__name__}: {exc}"[:500]
        if "ours_us_per_step" in row and "adseq_us_per_step" in row:
            row["speedup"] = row["adseq_us_per_step"] / row["ours_us_per_step"]
        print(json.dumps(row), flush=True)
        rows.append(row)
        gc.collect()
    return rows
