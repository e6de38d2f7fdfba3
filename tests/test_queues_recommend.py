"""The queue-choice helper: drop estimates against simulation, constraints, and bad input."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import queues
from queues.recommend import Workload, drop_fraction, erlang_b, recommend


def test_erlang_b_known_values():
    assert erlang_b(0, 3.0) == 1.0
    np.testing.assert_allclose(erlang_b(1, 1.0), 0.5)
    np.testing.assert_allclose(erlang_b(2, 1.0), 0.2)  # (1/2) / (1 + 1 + 1/2)


@pytest.mark.parametrize("kind,capacity,keep", [("sorted_array", 2, None), ("binary_heap", 3, None),
                                                ("single_spike", None, "oldest"), ("single_spike", None, "newest"),
                                                ("lossy_ring", 8, None)])
def test_drop_estimate_matches_simulation(kind, capacity, keep):
    """The estimates match what the queues really drop on Poisson spikes (10k queues, 2 in flight)."""
    rate, delay, warm, steps, n = 1 / 20, 40.0, 200, 600, 10_000
    workload = Workload(queues=n, max_delay=delay, rate=rate)
    config = {"max_delay": delay} | ({"capacity": capacity} if capacity else {}) | ({"keep": keep} if keep else {})
    queue = queues.make_queue(kind, **config)
    spikes = jax.random.bernoulli(jax.random.PRNGKey(1), rate, (warm + steps, n))
    run = jax.jit(lambda s, state, start: queues.simulate(queue, s, delay, state=state, start=start),
                  static_argnums=2)
    state, _ = run(spikes[:warm], queue.init((n,)), 0)  # fill the queues first: measure the steady state
    before = state.dropped.sum()
    state, _ = run(spikes[warm:], state, warm)
    measured = float(state.dropped.sum() - before) / float(spikes[warm:].sum())
    np.testing.assert_allclose(measured, drop_fraction(kind, workload, capacity, keep or "newest"), rtol=0.1)


def test_recommend_respects_constraints():
    dense = Workload(queues=10_000, max_delay=80, rate=1 / 400)
    pick = recommend(dense, device="cpu")
    assert pick.expected_drop_fraction <= dense.drop_tolerance
    assert pick.kind in queues.KINDS and pick.make() is not None
    costs = [pick.cost] + [a["cost"] for a in pick.alternatives if a["cost"] is not None]
    assert costs == sorted(costs)  # cheapest first
    # heterogeneous delays exclude the FIFO; a tiny memory budget excludes the dense delay line
    shuffled = recommend(Workload(queues=10_000, max_delay=80, rate=1 / 400, in_order=False), device="gpu")
    assert all(a["kind"] != "fifo_ring" for a in shuffled.alternatives) and shuffled.kind != "fifo_ring"
    tight = recommend(Workload(queues=10_000, max_delay=80, rate=1 / 400, memory_budget=1e6), device="tpu")
    assert tight.kind != "delay_line" and tight.state_bytes <= 1e6
    assert "paper" in tight.source  # TPU costs are the paper's until measured


def test_recommend_measures_on_this_device():
    pick = recommend(Workload(queues=2_000, max_delay=20, rate=1 / 50), measure=True, steps=50)
    assert "measured now" in pick.source and pick.cost > 0


def test_bad_workloads_are_rejected():
    with pytest.raises(ValueError, match="`rate` is a probability"):
        Workload(queues=10, max_delay=5, rate=2.0)
    with pytest.raises(ValueError, match="`max_delay` must be a finite number"):
        Workload(queues=10, max_delay=float("nan"), rate=0.1)
    with pytest.raises(ValueError, match="device must be cpu, gpu or tpu"):
        recommend(Workload(queues=10, max_delay=5, rate=0.1), device="fpga")
    with pytest.raises(ValueError, match="no queue kind keeps drops"):
        recommend(Workload(queues=10**6, max_delay=500, rate=0.5, drop_tolerance=0.0, memory_budget=1e3))
