"""The queues' guarantees under misuse and long runs: each test pins one promise of the README's queue
section that an independent differential fuzzer found broken, silently, before it was fixed."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import queues
from queues.base import max_exact_step

CLOCKED = ["delay_line", "lossy_ring", "bitmask"]  # kinds that find a spike by its step modulo their slots


def make(kind, max_delay=8.0, **extra):
    config = {"max_delay": max_delay, **extra}
    if kind in ("fifo_ring", "lossy_ring", "sorted_array", "binary_heap"):
        config.setdefault("capacity", 4)
    return queues.make_queue(kind, **config)


def run(queue, calls, shape=()):
    """Play ``calls`` ("pop", n) / ("push", n, delay, mask) on a fresh state under `jit`; the steps at
    which spikes were delivered, and the final state."""
    @eqx.filter_jit
    def play():
        state, delivered = queue.init(shape), []
        for call in calls:
            if call[0] == "pop":
                state, delivery = queue.pop(state, jnp.int32(call[1]))
                delivered.append(delivery.count().sum())
            else:
                _, now, delay, mask = call
                state = queue.push(state, jnp.int32(now), delay, jnp.asarray(mask))
        return state, delivered

    state, delivered = play()
    pops = [c[1] for c in calls if c[0] == "pop"]
    return [n for n, d in zip(pops, delivered) for _ in range(int(d))], state


@pytest.mark.parametrize("kind", CLOCKED)
def test_a_skipped_pop_is_refused_whichever_call_notices_it(kind):
    """Point 1-2: the bypass (a push at the skipped step advanced the counter) and the plain skip."""
    queue = make(kind)
    ok = [("pop", 0), ("push", 0, 1.0, True), ("pop", 1), ("push", 1, 1.0, False), ("pop", 2)]
    assert run(queue, ok)[0] == [1]
    bypass = [("pop", 0), ("push", 0, 1.0, True), ("push", 1, 1.0, False), ("pop", 2), ("pop", 3)]
    with pytest.raises(Exception, match="push: `now` must be the step of the last pop"):
        run(queue, bypass)
    skip = [("pop", 0), ("push", 0, 1.0, True), ("pop", 2), ("pop", 3)]
    with pytest.raises(Exception, match="pop: `now` must be the step after the previous pop/push"):
        run(queue, skip)
    # the same mistakes go unchecked, by request, with validate=False
    run(make(kind, validate=False), skip)


@pytest.mark.parametrize("kind", CLOCKED)
def test_negative_steps_keep_the_consecutive_pop_check(kind):
    """Point 3: a fresh state is a flag, not a step number that a negative step could equal."""
    queue = make(kind)
    calls = [("pop", -10), ("push", -10, 2.0, True), ("pop", -9), ("pop", -8), ("push", -8, 1.0, True), ("pop", -7)]
    assert run(queue, calls)[0] == [-8, -7]
    with pytest.raises(Exception, match="must be the step after the previous pop/push"):
        run(queue, [("pop", -10), ("push", -10, 2.0, True), ("pop", -7)])


@pytest.mark.parametrize("kind", sorted(queues.KINDS))
def test_steps_past_the_exact_range_are_refused_not_rounded(kind):
    """Point 4: past 2^24 a float32 step rounds into its neighbour (a spike pushed at 2^24 + 1 with delay 2
    was delivered a step early); the queues refuse steps whose times no longer resolve 1/256 step."""
    limit = max_exact_step(jnp.float32)
    assert limit == 2**16
    queue = make(kind, max_delay=2.0)
    late = 2**24 + 1
    with pytest.raises(ValueError, match="step `now` must lie within"):  # eagerly
        queue.push(queue.init(()), late, 2.0, True)
    with pytest.raises(Exception, match="step `now` must lie within"):  # traced
        run(queue, [("pop", late), ("push", late, 2.0, True)])
    last = limit - 2 - 1  # the latest step whose arrivals (up to now + max_delay + 1) stay within the limit
    assert run(queue, [("pop", last - 2), ("push", last - 2, 2.0, True), ("pop", last - 1), ("pop", last)])[0] == [last]
    with pytest.raises(Exception, match="step `now` must lie within"):
        run(queue, [("pop", last), ("pop", last + 1)])


def test_long_runs_are_exact_in_float64():
    """Point 4: with float64 the range is 2^45 steps (capped by the int32 step counter), and times stay exact."""
    with jax.enable_x64(True):
        queue = queues.SortedArray(capacity=2, max_delay=4.0)
        assert queue.dtype == jnp.float64 and max_exact_step(jnp.float64) == 2**31 - 1
        now = 2**24 + 1
        state = queue.push(queue.init(()), now, 2.25, True, times=now - 0.125)
        for step in (now + 1, now + 2, now + 3):
            state, delivery = queue.pop(state, step)
            if step < now + 3:
                assert float(delivery.count()) == 0
        assert float(delivery.count()) == 1 and float(delivery.times[0]) == now + 2.125


def test_scheduled_gain_is_exactly_one():
    """Point 5: ``1 + x - sg(x)`` rounded to 0.99999994 for x = 0.3."""
    spikes = jnp.array([[0.3, 0.0], [0.0, 0.7], [0.0, 0.0]], jnp.float32)
    schedule = queues.Scheduled(max_delay=2.0, capacity=4).schedule(spikes, jnp.ones((2, 3)))
    assert schedule.gain.dtype == jnp.float32
    np.testing.assert_array_equal(schedule.gain, [1.0, 1.0, 0.0, 0.0])
    grad = jax.grad(lambda x: queues.Scheduled(max_delay=2.0, capacity=4).schedule(x, jnp.ones((2, 3))).gain.sum())
    np.testing.assert_array_equal(grad(spikes), [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])  # straight through


@pytest.mark.parametrize("kind", sorted(queues.KINDS))
@pytest.mark.parametrize("bad", ["delay", "time"])
def test_unvalidated_nan_spikes_are_counted_as_dropped(kind, bad):
    """Point 6: with validate=False a NaN delay or time is not checked, but the spike is still accounted for
    (SortedArray, BinaryHeap and SingleSpike lost it without a trace)."""
    queue = make(kind, validate=False)
    nan_delay = jnp.array([jnp.nan if bad == "delay" else 1.0, 2.0, 3.0])
    times = jnp.array([jnp.nan if bad == "time" else 5.0, 5.0, 5.0])

    @jax.jit
    def play(delays, times):  # traced: the values only the run-time checks could see
        state = queue.init((3,))
        state, _ = queue.pop(state, 5)
        state = queue.push(state, 5, delays, jnp.array([True, True, True]), times)
        delivered = 0
        for now in range(6, 15):
            state, delivery = queue.pop(state, now)
            delivered = delivered + delivery.count()
        return delivered, state.dropped, queue.pending(state)

    delivered, dropped, pending = play(nan_delay, times)
    np.testing.assert_array_equal(np.asarray(delivered) + np.asarray(dropped) + np.asarray(pending), [1, 1, 1])
    assert int(dropped[0]) == 1 and bool(np.all(np.asarray(delivered)[1:] == 1))


def test_eager_and_traced_time_checks_agree_on_subnormal_times():
    """Point 7: the smallest positive float32 is a subnormal, which XLA flushes to 0 (outside step 1): it was
    accepted eagerly and refused under `jit`. Both refuse it now; the smallest normal number passes both."""
    from queues.base import just_after

    queue = queues.SortedArray(capacity=2, max_delay=4.0)
    state = queue.init(())
    tiny = np.nextafter(np.float32(0), np.float32(1))
    push = eqx.filter_jit(lambda t: queue.push(state, jnp.int32(1), 1.0, True, t))
    with pytest.raises(ValueError, match="spike `times` must lie in"):
        queue.push(state, 1, 1.0, True, tiny)
    with pytest.raises(Exception, match="spike `times` must lie in"):
        jax.block_until_ready(push(jnp.float32(tiny)))
    first = just_after(jnp.float32(0.0))
    queue.push(state, 1, 1.0, True, first)
    jax.block_until_ready(push(first))


# -- point 8: what the docs now say, pinned -------------------------------------------------------
def test_fifo_ring_accepts_an_arrival_equal_to_the_newest_pending_one():
    queue = queues.FIFORing(capacity=3, max_delay=4.0)
    state = queue.push(queue.init(()), 0, 3.0, True)
    state, _ = queue.pop(state, 1)
    state = queue.push(state, 1, 2.0, True)  # arrives at 3.0 too
    assert int(state.dropped) == 0 and int(queue.pending(state)) == 2


def test_sorted_array_drops_the_new_spike_among_ties_for_the_latest_arrival():
    queue = queues.SortedArray(capacity=2, max_delay=8.0)

    def arrivals(new_delay):
        state = queue.push(queue.init(()), 0, jnp.float32(2.0), True)
        state = queue.push(state, 0, jnp.float32(5.0), True)
        return queue.push(state, 0, new_delay, True).times

    # the tie: the pending spike is kept, so the kept time's tangent is not the new delay's
    assert [float(t) for t in arrivals(jnp.float32(5.0))] == [2.0, 5.0]
    assert float(jax.grad(lambda d: arrivals(d)[1])(jnp.float32(5.0))) == 0.0
    assert float(jax.grad(lambda d: arrivals(d)[1])(jnp.float32(4.0))) == 1.0  # earlier: kept, pending dropped


def test_lossy_ring_newer_means_pushed_later_whatever_the_arrival():
    queue = queues.LossyRing(capacity=2, max_delay=8.0)
    state = queue.push(queue.init(()), 0, 4.0, True)  # due at 4, slot 0
    state, _ = queue.pop(state, 1)
    state = queue.push(state, 1, 1.0, True)  # due at 2, slot 0 too: earlier, but pushed later, so it stays
    delivered = []
    for now in range(2, 8):
        state, delivery = queue.pop(state, now)
        delivered += [now] * int(delivery.count())
    assert delivered == [2] and int(state.dropped) == 1


def test_delays_are_checked_everywhere_times_only_where_a_spike_is_pushed():
    queue = queues.FIFORing(capacity=2, max_delay=4.0)
    state = queue.init((2,))
    queue.push(state, 3, 1.0, jnp.array([True, False]), jnp.array([2.5, jnp.nan]))  # NaN time, no spike: fine
    with pytest.raises(ValueError, match="`delays` must lie in"):
        queue.push(state, 3, jnp.array([1.0, jnp.nan]), jnp.array([True, False]))


def test_schedule_dropped_is_a_total_over_the_layer():
    spikes = jnp.ones((3, 4), jnp.float32)  # 8 events before the last step, 2 of them fit
    schedule = queues.Scheduled(max_delay=2.0, capacity=2).schedule(spikes, jnp.ones((4, 5)))
    assert schedule.dropped.shape == () and int(schedule.dropped) == (8 - 2) * 5  # synapse spikes


# -- point 9: Scheduled at long delays --------------------------------------------------------------
def _scheduled_loss(scheduled, spikes, weight, tau):
    return lambda delays: scheduled.schedule(spikes, delays).exponential(weight, tau).sum()


def test_scheduled_gradients_stay_finite_with_long_delays_and_padded_events():
    """Padded rows sat max_delay before their step, where exp(since / tau) overflows float32 at delay 512:
    `where` then turned 0 * inf into NaN gradients."""
    key_s, key_d = jax.random.split(jax.random.PRNGKey(0))
    spikes = jax.random.bernoulli(key_s, 0.05, (40, 8)).astype(jnp.float32)
    delays = jax.random.uniform(key_d, (8, 6), minval=500.0, maxval=511.0)
    scheduled = queues.Scheduled(max_delay=512.0, capacity=64)  # ~16 events: most rows are padding
    grads = jax.grad(lambda w, d: scheduled.schedule(spikes, d).exponential(w, 4.0).sum(), argnums=(0, 1))(
        jnp.ones((6, 8)), delays)
    assert all(bool(jnp.isfinite(g).all()) for g in grads)


def test_scheduled_gradients_at_long_delays_match_finite_differences():
    """In float64 the same overflow needs delays past 709 tau; within the window the gradient matches
    central differences, and it is finite with most rows padded."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        steps, pre, post, tau = 60, 5, 3, 1.0
        spikes = jnp.asarray((rng.random((steps, pre)) < 0.08).astype(np.float64))
        delays = jnp.asarray(rng.uniform(0.2, 50.0, (pre, post)))
        delays = delays.at[0, 0].set(900.0)  # a long delay: its padded rows used to overflow
        weight = jnp.asarray(rng.normal(size=(post, pre)))
        scheduled = queues.Scheduled(max_delay=1000.0, capacity=4 * int(spikes.sum()))
        loss = _scheduled_loss(scheduled, spikes, weight, tau)
        grad = np.asarray(jax.grad(loss)(delays))
        assert np.isfinite(grad).all()
        eps = 1e-6
        for i, j in np.ndindex(pre, post):
            if np.any(np.abs(np.asarray(delays[i, j]) - np.round(delays[i, j])) < 1e-3):
                continue  # an arrival on a step boundary: the delivery step jumps there
            bump = jnp.zeros_like(delays).at[i, j].set(eps)
            fd = (float(loss(delays + bump)) - float(loss(delays - bump))) / (2 * eps)
            np.testing.assert_allclose(grad[i, j], fd, rtol=1e-5, atol=1e-7)


def test_benchmarks_refuse_to_time_a_non_finite_step():
    """No benchmark reports a speed for a step whose outputs or gradients are not finite."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from queues_vs_adseq import NotFinite, timed

    assert timed(jax.jit(lambda x: (x * 2, jnp.int32(3))), (jnp.ones(3),), 2) >= 0
    with pytest.raises(NotFinite, match="NaN or infinity"):
        timed(jax.jit(lambda x: (x, jnp.log(x - 1))), (jnp.zeros(3),), 2)
