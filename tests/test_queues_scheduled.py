"""`queues.Scheduled`: every pop at once equals stepping a queue that drops nothing, values and gradients."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import queues

STEPS, PRE, POST, MAX_DELAY, TAU = 40, 5, 3, 12.0, 3.0


def raster(seed: int, rate: float = 0.2):
    rng = np.random.default_rng(seed)
    spikes = (rng.random((STEPS, PRE)) < rate).astype(np.float64)
    times = np.arange(STEPS)[:, None] - rng.random((STEPS, PRE)) * 0.999  # in (n-1, n]
    delays = rng.uniform(0, MAX_DELAY, (PRE, POST))
    weight = rng.normal(size=(POST, PRE))
    return spikes, times, delays, weight


def scheduled_currents(spikes, weight, delays, times, capacity=None):
    return queues.Scheduled(max_delay=MAX_DELAY, capacity=capacity).schedule(spikes, delays, times).exponential(
        weight, TAU)


def stepped_currents(spikes, weight, delays, times, queue):
    """The same per-step currents from a queue layer popped and pushed step by step."""
    def step(state, xs):
        now, fire, t = xs
        state, delivery = queue.pop(state, now)
        out = jnp.einsum("qp,pq->q", weight, delivery.exponential(now, TAU))
        mask = jnp.broadcast_to(fire[:, None] > 0, (PRE, POST))
        return queue.push(state, now, delays, mask, jnp.where(fire > 0, t, now)[:, None]), out

    state, out = jax.lax.scan(step, queue.init((PRE, POST)), (jnp.arange(STEPS), spikes, times))
    return out, state


@pytest.fixture(autouse=True)
def float64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["fifo_ring", "sorted_array"])
def test_scheduled_equals_a_stepped_queue_values_and_gradients(seed, kind):
    spikes, times, delays, weight = raster(seed)
    queue = queues.make_queue(kind, capacity=8, max_delay=MAX_DELAY)
    expected, state = stepped_currents(spikes, weight, delays, times, queue)
    assert int(state.dropped.sum()) == 0
    got = jax.jit(scheduled_currents)(spikes, weight, delays, times)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert float(jnp.abs(got).sum()) > 0

    def loss(fn):
        return lambda w, d, t: jnp.sum(jnp.sin(fn(w, d, t)))  # a loss whose gradient weighs every step differently

    ours = jax.grad(loss(lambda w, d, t: scheduled_currents(spikes, w, d, t)), (0, 1, 2))(weight, delays, times)
    theirs = jax.grad(loss(lambda w, d, t: stepped_currents(spikes, w, d, t, queue)[0]), (0, 1, 2))(
        weight, delays, times)
    for name, a, b in zip(("weight", "delays", "times"), ours, theirs):
        assert float(jnp.abs(b).sum()) > 0, name
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)


def test_every_synapse_spike_is_delivered_pending_or_dropped():
    """The last step's events spend no capacity: they arrive after the window whatever their delay, so
    they are counted in `late` (pending), and a capacity they would have filled drops fewer events."""
    spikes, times, delays, _ = raster(3)
    spikes[-1, :3] = 1  # three events in the last step, the last of the raster's events in order
    fired = int(spikes.sum())
    full = queues.Scheduled(max_delay=MAX_DELAY).schedule(spikes, delays, times)
    assert int(full.dropped) == 0 and int(full.pending()) > 0  # late spikes arrive after the window
    assert int(full.delivered() + full.pending()) == fired * POST
    capacity = fired - 7
    cut = queues.Scheduled(max_delay=MAX_DELAY, capacity=capacity).schedule(spikes, delays, times)
    last = int(spikes[-1].sum())
    assert last > 0  # so that the line below can fail
    assert int(cut.dropped) == (7 - last) * POST and int(cut.late) == int(full.late) == last * POST
    assert int(cut.delivered() + cut.pending() + cut.dropped) == fired * POST
    # the earliest events are kept: the currents agree with the full schedule up to the first dropped event
    first_dropped = np.flatnonzero(spikes.reshape(-1))[capacity] // PRE
    weight = np.ones((POST, PRE))
    np.testing.assert_allclose(cut.exponential(weight, TAU)[:first_dropped + 1],
                               full.exponential(weight, TAU)[:first_dropped + 1])


def test_axonal_delays_broadcast_over_targets_and_vmap():
    spikes, times, delays, weight = raster(4)
    axonal = delays[:, :1]
    ours = scheduled_currents(spikes, weight, axonal, times)
    np.testing.assert_allclose(ours, scheduled_currents(spikes, weight, np.repeat(axonal, POST, 1), times))
    batch = np.stack([spikes, raster(5)[0]])
    batched = jax.vmap(lambda s: scheduled_currents(s, weight, delays, None, capacity=30))(batch)
    for k in range(2):
        np.testing.assert_allclose(batched[k], scheduled_currents(batch[k], weight, delays, None, capacity=30))


def test_events_pass_the_derivative_of_the_raster_entry_that_made_them():
    """`Schedule.gain`: each event delivers one spike (a count of 2 delivers as 1) and carries the
    derivative of its raster entry: d/dx of the delivered jumps equals that of the explicit sum
    ``sum_events x * w * f(since)`` at the entries that fired, and is 0 where nothing fired."""
    steps, pre, post = 12, 5, 3
    key = jax.random.split(jax.random.PRNGKey(4), 4)
    fired = jax.random.bernoulli(key[0], 0.3, (steps, pre))
    x = jnp.where(fired, 1.0, 0.0)
    delays = jax.random.uniform(key[1], (pre, post), maxval=4.0)
    weight = jax.random.normal(key[2], (post, pre))
    probe = jax.random.normal(key[3], (steps, post))
    f = lambda since: jnp.exp(-since / 2.0)  # noqa: E731
    scheduled = queues.Scheduled(max_delay=4.0)

    def delivered(x):
        return jnp.sum(probe * scheduled.schedule(x, delays).kernel(weight, f))

    def explicit(x):  # every (event, target) pair written out, weighted by its raster entry
        n = jnp.arange(steps, dtype=jnp.float32)[:, None, None]
        arrival = n + delays[None]
        step = jnp.maximum(jnp.ceil(arrival), n + 1).astype(jnp.int32)  # (steps, pre, post)
        inside = step < steps
        at = probe[jnp.minimum(step, steps - 1), jnp.arange(post)[None, None]]
        terms = x[:, :, None] * weight.T[None] * f(step - arrival) * at
        return jnp.sum(jnp.where(inside & fired[:, :, None], terms, 0.0))

    np.testing.assert_allclose(delivered(x), explicit(x), rtol=1e-5)
    np.testing.assert_allclose(delivered(2.0 * x), delivered(x), rtol=1e-6)  # an event is one spike
    grad, reference = jax.grad(delivered)(x), jax.grad(explicit)(x)
    np.testing.assert_allclose(np.where(fired, grad, 0.0), np.where(fired, reference, 0.0), rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(jnp.where(fired, 0.0, grad)).max()) == 0.0 < float(jnp.abs(grad).max())


def test_bad_input_is_named():
    spikes, times, delays, _ = raster(6)
    scheduled = queues.Scheduled(max_delay=MAX_DELAY)
    with pytest.raises(ValueError, match=r"`delays` must lie in \[0, max_delay=12.0\]"):
        scheduled.schedule(spikes, delays + MAX_DELAY, times)
    with pytest.raises(ValueError, match="including NaN"):
        scheduled.schedule(spikes, np.where(delays > 6, np.nan, delays), times)
    with pytest.raises(ValueError, match=r"spike `times` must lie in \(now-1, now\]"):
        scheduled.schedule(spikes, delays, times + 1.0)
    with pytest.raises(ValueError, match=r"`delays` must be \(5, targets\)"):
        scheduled.schedule(spikes, delays.T, times)
    with pytest.raises(ValueError, match=r"`times` must have the shape of `spikes`"):
        scheduled.schedule(spikes, delays, times[:-1])
    with pytest.raises(ValueError, match=r"`capacity` must be >= 1"):
        queues.Scheduled(max_delay=4.0, capacity=0)
    with pytest.raises(ValueError, match="`max_delay` must be finite"):
        queues.Scheduled(max_delay=float("inf"))
    # traced delays are checked at run time
    with pytest.raises(eqx.EquinoxRuntimeError, match="`delays` must lie in"):
        eqx.filter_jit(lambda d: scheduled.schedule(spikes, d, times).arrival)(jnp.asarray(-delays))
