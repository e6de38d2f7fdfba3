"""Transforms (vmap, layer shapes, jit) and bad input for every queue kind."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import queues

STEPS = 30


def make(kind, max_delay=8.0, **extra):
    config = {"max_delay": max_delay, **extra}
    if kind in ("fifo_ring", "lossy_ring", "sorted_array", "binary_heap"):
        config.setdefault("capacity", 3)
    return queues.make_queue(kind, **config)


def stream(shape, seed=0):
    rng = np.random.default_rng(seed)
    spikes = jnp.asarray(rng.random((STEPS, *shape)) < 0.4)
    delays = jnp.asarray(rng.uniform(0, 8, shape).astype(np.float32))
    return spikes, delays


@pytest.mark.parametrize("kind", sorted(queues.KINDS))
def test_layer_shape_equals_vmap_over_single_queues(kind):
    """A (2, 3, 4) layer state behaves like 24 independent single-queue states under vmap."""
    queue = make(kind)
    spikes, delays = stream((2, 3, 4))
    state, layer = jax.jit(lambda s, d: queues.simulate(queue, s, d))(spikes, delays)

    flat_spikes = spikes.reshape(STEPS, -1).T  # (24, steps)
    single = jax.vmap(lambda s, d: queues.simulate(queue, s, d))
    single_state, per_queue = jax.jit(single)(flat_spikes, delays.reshape(-1))
    for got, want in zip(layer.stacked(axis=1), per_queue.stacked(axis=2)):  # (steps, lanes, ...)
        np.testing.assert_array_equal(got.reshape(STEPS, -1, 24), jnp.moveaxis(want, 0, -1))
    np.testing.assert_array_equal(state.dropped.reshape(-1), single_state.dropped)
    np.testing.assert_array_equal(queue.pending(state).reshape(-1), jax.vmap(queue.pending)(single_state))


@pytest.mark.parametrize("kind", sorted(queues.KINDS))
def test_state_is_a_pytree_that_round_trips(kind):
    queue = make(kind)
    state = queue.init((5,))
    leaves, treedef = jax.tree_util.tree_flatten(state)
    assert all(isinstance(x, jax.Array) for x in leaves)
    assert jax.tree_util.tree_unflatten(treedef, leaves) is not None
    assert jax.tree_util.tree_leaves(queue) == []  # the queue itself is pure static config


@pytest.mark.parametrize("kind", ["fifo_ring", "lossy_ring", "sorted_array", "binary_heap"])
@pytest.mark.parametrize("capacity", [0, -2])
def test_capacity_below_one_is_rejected(kind, capacity):
    with pytest.raises(ValueError, match="`capacity` must be >= 1"):
        make(kind, capacity=capacity)


@pytest.mark.parametrize("kind", sorted(queues.KINDS))
@pytest.mark.parametrize("max_delay", [-1.0, float("nan"), float("inf")])
def test_bad_max_delay_is_rejected(kind, max_delay):
    with pytest.raises(ValueError, match="`max_delay`"):
        make(kind, max_delay=max_delay)


def test_bitmask_max_delay_limit_and_unknown_kind():
    with pytest.raises(ValueError, match="`max_delay` must be <= 32"):
        queues.Bitmask(max_delay=40)
    with pytest.raises(ValueError, match="did you mean fifo_ring"):
        queues.make_queue("fifo_rnig", capacity=2, max_delay=3)
    with pytest.raises(ValueError, match="`keep` must be"):
        queues.SingleSpike(max_delay=3, keep="latest")


@pytest.mark.parametrize("kind", sorted(queues.KINDS))
@pytest.mark.parametrize("bad", [-0.5, float("nan"), 9.0])
def test_bad_delays_concrete_raise_at_trace_time(kind, bad):
    queue = make(kind)
    state = queue.init((3,))
    with pytest.raises(ValueError, match="`delays` must lie in \\[0, max_delay=8.0\\]"):
        queue.push(state, 0, jnp.array([1.0, bad, 2.0]), jnp.array([True, False, True]))


@pytest.mark.parametrize("kind", sorted(queues.KINDS))
def test_bad_delays_traced_raise_at_run_time(kind):
    queue = make(kind)

    @eqx.filter_jit
    def push(delays):
        return queue.push(queue.init((2,)), 0, delays, jnp.array([True, True]))

    push(jnp.array([1.0, 8.0]))  # the bounds themselves are fine
    with pytest.raises(Exception, match="`delays` must lie in"):
        jax.block_until_ready(push(jnp.array([1.0, -1.0])))
    with pytest.raises(Exception, match="`delays` must lie in"):
        jax.block_until_ready(push(jnp.array([jnp.nan, 1.0])))


def test_spike_times_outside_the_step_are_rejected():
    queue = make("sorted_array")
    state = queue.init((2,))
    with pytest.raises(ValueError, match="spike `times` must lie in \\(now-1, now\\]"):
        queue.push(state, 5, 1.0, jnp.array([True, True]), jnp.array([5.0, 3.0]))
    # unmasked entries may hold anything (e.g. +inf for "no spike")
    queue.push(state, 5, 1.0, jnp.array([True, False]), jnp.array([4.5, jnp.inf]))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_just_after_stays_inside_the_next_step_under_jit(dtype):
    """The earliest spike time of step 1 is above 0 after XLA's flush of denormals (nextafter(0, 1)
    is not), and a queue accepts it."""
    from queues.base import just_after

    now = jnp.arange(-1, 4).astype(dtype)
    start = jax.jit(lambda n: jnp.clip(jnp.zeros_like(n), just_after(n - 1), n))(now)
    assert bool(jnp.all((start > now - 1) & (start <= now)))
    assert float(jax.jit(lambda n: jnp.clip(0 * n, jnp.nextafter(n - 1, n), n))(jnp.float32(1.0))) == 0.0  # the trap
    queue = make("sorted_array")
    push = jax.jit(lambda s, t: queue.push(s, 1, 1.0, jnp.array(True), t))
    push(queue.init(()), just_after(jnp.float32(0.0)))


def test_mismatched_shapes_and_types_name_the_argument():
    queue = make("fifo_ring")
    state = queue.init((3, 4))
    with pytest.raises(ValueError, match="`delays` has shape \\(5,\\)"):
        queue.push(state, 0, jnp.ones(5), jnp.ones((3, 4), bool))
    with pytest.raises(ValueError, match="`mask` has shape \\(4, 3\\)"):
        queue.push(state, 0, 1.0, jnp.ones((4, 3), bool))
    with pytest.raises(TypeError, match="`mask` must be boolean"):
        queue.push(state, 0, 1.0, jnp.ones((3, 4)))
    with pytest.raises(TypeError, match="`now` must be an integer scalar"):
        queue.push(state, 1.5, 1.0, jnp.ones((3, 4), bool))
    with pytest.raises(TypeError, match="`now` must be an integer scalar"):
        queue.pop(state, jnp.array([1, 2]))


def test_zero_delay_spike_is_delivered_next_step_with_its_true_time():
    queue = make("delay_line")
    state = queue.init(())
    state, _ = queue.pop(state, 4)
    state = queue.push(state, 4, 0.0, True, 3.75)
    state, delivery = queue.pop(state, 5)
    assert float(delivery.count()) == 1 and float(delivery.times[0]) == 3.75


def test_lossy_ring_capacity_limit():
    with pytest.raises(ValueError, match="`capacity` must be <= 32"):
        queues.LossyRing(capacity=33, max_delay=40)


@pytest.mark.parametrize("kind", ["delay_line", "lossy_ring"])
def test_prefetching_kinds_require_consecutive_pops(kind):
    queue = make(kind)

    @eqx.filter_jit
    def pops(steps):
        state = queue.init((2,))
        for now in steps:
            state, _ = queue.pop(state, jnp.int32(now))
        return state

    jax.block_until_ready(pops((3, 4, 5)))  # any first step, then consecutive
    with pytest.raises(Exception, match="`now` must be the step after the previous pop/push"):
        jax.block_until_ready(pops((3, 5)))


@pytest.mark.parametrize("kind", ["fifo_ring", "sorted_array", "binary_heap"])
@pytest.mark.parametrize("max_delay", [0.0, 0.5, 3.0, 7.3])
def test_lossless_capacity_is_the_smallest_that_drops_nothing(kind, max_delay):
    """A source spiking in every step, as late in the step as allowed, through the longest delay:
    `lossless_capacity` drops nothing, one less drops."""
    capacity = queues.lossless_capacity(max_delay)
    assert capacity == max(1, int(np.ceil(max_delay)))

    def dropped(capacity):
        queue = make(kind, max_delay=max_delay, capacity=capacity)
        state = queue.init(())
        for now in range(STEPS):
            state, _ = queue.pop(state, now)
            state = queue.push(state, now, max_delay, True)
        return int(state.dropped)

    assert dropped(capacity) == 0
    if capacity > 1:
        assert dropped(capacity - 1) > 0
    with pytest.raises(ValueError, match="lossless_capacity: `max_delay` must be finite and >= 0"):
        queues.lossless_capacity(-1.0)
