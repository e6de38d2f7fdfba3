"""Choosing a queue kind for a workload on a device.

Two questions decide it. *Does it keep the spikes?* Spikes in flight per queue follow Little's law,
``lambda = rate x mean delay``; with Poisson spike trains the occupancy of a queue with ``K``
places is that of an M/G/K/K loss system, so the fraction of spikes a capacity-``K`` kind drops is
Erlang's B formula ``B(K, lambda)`` (insensitive to the delay distribution). *What does it cost
here?* Per-step cost of each kind, measured: on CPU by our own benchmark (``measurements.json``,
written by ``benchmarks/queues_vs_adseq.py --write-measurements``); on GPU and TPU, until measured
with ``measure=True``, the paper's ranking (adseq's implementations on an H100 and a TPU v4).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import jax
import jax.numpy as jnp

from .base import SpikeQueue
from .registry import make_queue

CAPACITY_KINDS = ("fifo_ring", "lossy_ring", "sorted_array", "binary_heap")


@dataclass(frozen=True)
class Workload:
    """What a layer of queues has to carry.

    Attributes:
        queues: number of queues (synapses, or presynaptic neurons for axonal delays).
        max_delay: largest delay, in steps.
        rate: spike probability per queue and step.
        mean_delay: mean delay in steps (default ``max_delay``).
        in_order: spikes of a queue arrive in the order they are pushed (a fixed delay per queue).
        gradient: gradients w.r.t. spike times or delays are needed.
        drop_tolerance: largest acceptable fraction of dropped spikes.
        memory_budget: bytes the queue state may take.
    """

    queues: int
    max_delay: float
    rate: float
    mean_delay: float | None = None
    in_order: bool = True
    gradient: bool = True
    drop_tolerance: float = 1e-3
    memory_budget: float = 4 * 2**30

    def __post_init__(self):
        for name in ("queues", "max_delay", "rate", "drop_tolerance", "memory_budget"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"Workload: `{name}` must be a finite number >= 0, got {value!r}")
        if self.rate > 1:
            raise ValueError(f"Workload: `rate` is a probability per step, got {self.rate}")

    @property
    def in_flight(self) -> float:
        """Mean spikes pending per queue (Little's law)."""
        return self.rate * (self.max_delay if self.mean_delay is None else self.mean_delay)


@dataclass(frozen=True)
class Recommendation:
    kind: str
    config: dict[str, Any]
    expected_drop_fraction: float
    state_bytes: int
    cost: float | None  # µs per step for 10k queues where measured or cited; None if unknown
    source: str
    alternatives: list[dict[str, Any]] = field(default_factory=list)

    def make(self) -> SpikeQueue:
        return make_queue(self.kind, **self.config)


def erlang_b(capacity: int, load: float) -> float:
    """Blocking probability of an M/G/K/K system: ``B(K, a)`` by the stable recursion."""
    b = 1.0
    for k in range(1, capacity + 1):
        b = load * b / (k + load * b)
    return b


def drop_fraction(kind: str, workload: Workload, capacity: int | None = None, keep: str = "newest") -> float:
    """Expected fraction of pushed spikes the kind drops on a Poisson workload (steady state)."""
    load = workload.in_flight
    if kind == "delay_line":
        return 0.0
    if kind == "bitmask":  # one bit per step: only same-step arrivals collide
        return 0.0 if workload.in_order else 1 - math.exp(-workload.rate)
    if kind == "single_spike":  # newest: lost if another spike comes within its delay; oldest: blocking
        return 1 - math.exp(-load) if keep == "newest" else erlang_b(1, load)
    if kind == "lossy_ring":  # overwritten if a later push within the delay lands on the same slot:
        delay = math.ceil(workload.max_delay if workload.mean_delay is None else workload.mean_delay)
        return 1 - (1 - workload.rate) ** ((delay - 1) // capacity)  # pushes at steps = s mod capacity
    if kind in ("fifo_ring", "sorted_array", "binary_heap"):
        return erlang_b(capacity, load)
    raise ValueError(f"drop_fraction: unknown kind {kind!r}")


def state_bytes(kind: str, workload: Workload, capacity: int | None = None) -> int:
    """Bytes of queue state (float32 times, int32 counters) for the workload's queues."""
    n = workload.queues
    slots = max(1, math.ceil(workload.max_delay))
    per_queue = {
        "delay_line": 8 * slots + 12, "bitmask": 8, "single_spike": 8,
        "lossy_ring": 4 * (capacity or 0) + 16, "fifo_ring": 4 * (capacity or 0) + 16,
        "sorted_array": 4 * (capacity or 0) + 4, "binary_heap": 4 * (capacity or 0) + 4,
    }[kind]
    return n * per_queue


def measurements() -> dict[str, Any]:
    """Per-device cost tables shipped with the package (see module docstring)."""
    return json.loads(resources.files("queues").joinpath("measurements.json").read_text())


def device_kind(device: jax.Device | str | None = None) -> str:
    if device is None:
        device = jax.devices()[0]
    platform = device if isinstance(device, str) else device.platform
    platform = {"cuda": "gpu", "rocm": "gpu"}.get(platform, platform)
    if platform not in ("cpu", "gpu", "tpu"):
        raise ValueError(f"device must be cpu, gpu or tpu, got {platform!r}")
    return platform


def candidates(workload: Workload) -> list[tuple[str, dict[str, Any], float, int]]:
    """Every kind that meets the workload's constraints, at its smallest sufficient capacity."""
    out = []
    max_delay = float(workload.max_delay)
    for kind in ("delay_line", "fifo_ring", "lossy_ring", "sorted_array", "binary_heap", "single_spike", "bitmask"):
        if kind == "bitmask" and (workload.gradient or math.ceil(max_delay) > 32):
            continue
        if kind == "fifo_ring" and not workload.in_order:
            continue
        config: dict[str, Any] = {"max_delay": max_delay}
        capacity = None
        if kind in CAPACITY_KINDS:
            limit = 32 if kind == "lossy_ring" else 64
            capacity = next((k for k in range(1, limit + 1)
                             if drop_fraction(kind, workload, k) <= workload.drop_tolerance), None)
            if capacity is None:
                continue
            config["capacity"] = capacity
        drop = drop_fraction(kind, workload, capacity)
        size = state_bytes(kind, workload, capacity)
        if drop <= workload.drop_tolerance and size <= workload.memory_budget:
            out.append((kind, config, drop, size))
    return out


def recommend(workload: Workload, device: jax.Device | str | None = None, measure: bool = False,
              steps: int = 200) -> Recommendation:
    """The cheapest queue kind that keeps ``workload``'s drops within tolerance on ``device``.

    With ``measure=True`` every candidate is timed here, on ``steps`` steps of the workload
    (``min(queues, 100k)`` queues), instead of looking costs up.
    """
    kind_of_device = device_kind(device)
    options = candidates(workload)
    if not options:
        raise ValueError(f"no queue kind keeps drops under {workload.drop_tolerance} within "
                         f"{workload.memory_budget} bytes for {workload}; raise the memory budget or the tolerance")
    table = measurements()[kind_of_device]
    if measure:
        costs = {kind: measure_cost(make_queue(kind, **config), workload, steps) for kind, config, _, _ in options}
        source = f"measured now on {jax.devices()[0]}"
    else:
        costs = {kind: table["us_per_step"].get(kind) for kind, _, _, _ in options}
        source = table["source"]
    known = [o for o in options if costs[o[0]] is not None]
    ranked = sorted(known, key=lambda o: costs[o[0]]) + [o for o in options if costs[o[0]] is None]
    kind, config, drop, size = ranked[0]
    return Recommendation(kind, config, drop, size, costs[kind], source,
                          [{"kind": k, "config": c, "expected_drop_fraction": d, "state_bytes": s,
                            "cost": costs[k]} for k, c, d, s in ranked[1:]])


def measure_cost(queue: SpikeQueue, workload: Workload, steps: int = 200) -> float:
    """µs per step of pop + push on this device for ``workload`` (Poisson spikes, max delay)."""
    n = min(workload.queues, 100_000)
    spikes = jax.random.bernoulli(jax.random.PRNGKey(0), workload.rate, (steps, n))
    delay = float(workload.max_delay)

    def run(spikes):
        def step(state, xs):
            now, mask = xs
            state, delivery = queue.pop(state, now)
            return queue.push(state, now, delay, mask), delivery.count().sum()

        return jax.lax.scan(step, queue.init((n,)), (jnp.arange(steps, dtype=jnp.int32), spikes))[1].sum()

    compiled = jax.jit(run).lower(spikes).compile()
    jax.block_until_ready(compiled(spikes))
    start = time.perf_counter()
    jax.block_until_ready(compiled(spikes))
    return (time.perf_counter() - start) / steps * 1e6 * 10_000 / n
