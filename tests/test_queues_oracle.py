"""Every queue kind against the reference oracle on random streams (hypothesis)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import queues
from oracle import run_oracle

STEPS, QUEUES = 40, 6
CAPACITY_KINDS = {"fifo_ring", "lossy_ring", "sorted_array", "binary_heap"}


def config_for(kind, capacity, max_delay, keep):
    config = {"max_delay": max_delay}
    if kind in CAPACITY_KINDS:
        config["capacity"] = capacity
    if kind == "single_spike":
        config["keep"] = keep
    return config


@functools.lru_cache(maxsize=None)
def runner(kind, config_items):
    queue = queues.make_queue(kind, **dict(config_items))

    @jax.jit
    def run(spikes, delays, times):
        def step(state, xs):
            now, mask, d, t = xs
            state, delivery = queue.pop(state, now)
            return queue.push(state, now, d, mask, t), delivery

        xs = (jnp.arange(STEPS, dtype=jnp.int32), spikes, delays, times)
        state, deliveries = jax.lax.scan(step, queue.init((QUEUES,)), xs)
        return deliveries, state.dropped, queue.pending(state)

    return run


def random_stream(seed, rate, max_delay, per_step_delays, substep_times, grid):
    rng = np.random.default_rng(seed)
    spikes = rng.random((STEPS, QUEUES)) < rate
    shape = (STEPS, QUEUES) if per_step_delays else (1, QUEUES)
    delays = rng.uniform(0, max_delay, shape)
    if grid:  # delays on a half-step grid: many spikes due in the same step, exact ties
        delays = np.floor(delays * 2) / 2
    delays = np.broadcast_to(delays, (STEPS, QUEUES)).astype(np.float32)
    steps = np.arange(STEPS, dtype=np.float32)[:, None]
    offsets = rng.uniform(0, 0.999, (STEPS, QUEUES)) if substep_times else 0.0
    times = (steps - offsets).astype(np.float32) * np.ones((1, QUEUES), np.float32)
    return spikes, delays, times


@given(
    kind=st.sampled_from(sorted(queues.KINDS)),
    capacity=st.sampled_from([1, 2, 3, 4, 7]),
    max_delay=st.sampled_from([1.0, 7.5, 20.0, 32.0]),
    keep=st.sampled_from(["newest", "oldest"]),
    seed=st.integers(0, 2**32 - 1),
    rate=st.floats(0.02, 0.9),
    per_step_delays=st.booleans(),
    substep_times=st.booleans(),
    grid=st.booleans(),
)
def test_matches_oracle(kind, capacity, max_delay, keep, seed, rate, per_step_delays, substep_times, grid):
    config = config_for(kind, capacity, max_delay, keep)
    spikes, delays, times = random_stream(seed, rate, max_delay, per_step_delays, substep_times, grid)
    deliveries, dropped, pending = runner(kind, tuple(sorted(config.items())))(spikes, delays, times)
    hits, got_times = (np.asarray(x) for x in deliveries.stacked(axis=1))
    expected, expected_dropped, expected_pending = run_oracle(kind, config, spikes, delays, times)

    for now in range(STEPS):
        for q in range(QUEUES):
            want = sorted(expected[now][q])
            lane_hits, lane_times = hits[now, :, q], got_times[now, :, q]
            if kind == "delay_line":  # one lane: count and mean arrival time of the slot
                assert lane_hits.sum() == len(want), (now, q)
                if want:
                    np.testing.assert_allclose(lane_times[lane_hits > 0], np.mean(want), rtol=1e-6)
            else:
                assert set(np.unique(lane_hits)) <= {0.0, 1.0}
                got = sorted(lane_times[lane_hits > 0].tolist())
                assert got == [float(w) for w in want], (now, q, got, want)
            # lanes that delivered nothing report `now`, keeping kernels of now - t finite
            assert np.all(lane_times[lane_hits == 0] == now)

    np.testing.assert_array_equal(dropped, expected_dropped)
    np.testing.assert_array_equal(pending, expected_pending)
    # conservation: delivered + dropped + pending == pushed, per queue
    np.testing.assert_array_equal(hits.sum((0, 1)) + dropped + pending, spikes.sum(0))


def test_several_spikes_due_in_one_step():
    """Three spikes pushed at steps 0, 1, 2 all arrive in step 10 (at 9.25, 9.6, 9.75)."""
    expected = {  # kind: (delivered in step 10, dropped)
        "delay_line": (3, 0), "fifo_ring": (3, 0), "sorted_array": (3, 0), "binary_heap": (3, 0),
        "lossy_ring": (1, 2), "single_spike": (1, 2), "bitmask": (1, 2),
    }
    for kind, (delivered, dropped) in expected.items():
        config = config_for(kind, 4, 12.0, "newest")
        queue = queues.make_queue(kind, **config)
        state = queue.init((1,))
        for now, (t, d) in enumerate([(0.0, 9.25), (0.6, 9.0), (2.0, 7.75)]):
            state, _ = queue.pop(state, now)
            state = queue.push(state, now, jnp.array([d]), jnp.array([True]), jnp.array([t]) if t else None)
        counts = []
        for now in range(3, 13):
            state, delivery = queue.pop(state, now)
            counts.append(float(delivery.count()[0]))
        assert counts[10 - 3] == delivered, kind
        assert sum(counts) == delivered, kind
        assert int(state.dropped[0]) == dropped, kind


def test_fifo_drops_and_counts_out_of_order_spikes():
    queue = queues.FIFORing(capacity=4, max_delay=10.0)
    state = queue.init(())
    state = queue.push(state, 0, 8.0, True)   # arrives at 8
    state, _ = queue.pop(state, 1)
    state = queue.push(state, 1, 3.0, True)   # would arrive at 4, before the pending spike: dropped
    state, _ = queue.pop(state, 2)
    state = queue.push(state, 2, 7.0, True)   # arrives at 9: fine
    assert int(state.dropped) == 1 and int(queue.pending(state)) == 2
