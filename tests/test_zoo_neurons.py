"""Exact LIF integration of delayed spikes: smooth in the delay, with unbiased delay gradients."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import queues
from zoo.neurons import membrane_kernel

TAU_SYN, TAU_MEM, STEPS = 2.0, 3.0, 24


def membrane_trace(delay, exact=True):
    """Membrane samples of one LIF neuron after one spike at t=2.3 through a delay (in steps)."""
    queue = queues.SortedArray(capacity=2, max_delay=16.0)
    kernel = membrane_kernel(TAU_SYN, TAU_MEM)
    alpha, beta = math.exp(-1 / TAU_SYN), math.exp(-1 / TAU_MEM)

    def step(carry, now):
        state, current, v = carry
        state, delivery = queue.pop(state, now)
        state = queue.push(state, now, delay, now == 3, jnp.asarray(2.3, delay.dtype))
        jump_v = delivery.kernel(now, kernel) if exact else 0.0
        v = beta * v + kernel(1.0) * current + jump_v
        current = alpha * current + delivery.exponential(now, TAU_SYN)
        return (state, current, v), v

    init = (queue.init(()), jnp.zeros((), delay.dtype), jnp.zeros((), delay.dtype))
    return jax.lax.scan(step, init, jnp.arange(STEPS))[1]


def readout(delay, exact=True):
    return (membrane_trace(delay, exact) * jnp.linspace(1.0, 2.0, STEPS)).sum()


def closed_form(delay):
    """The continuous-time membrane at the steps: v(t) = K(t - a) for t > a, a = 2.3 + delay."""
    a = 2.3 + delay
    t = np.arange(STEPS, dtype=np.float64)
    scale = 1 / (1 / TAU_SYN - 1 / TAU_MEM)
    x = np.clip(t - a, 0, None)
    return np.where(t > a, scale * (np.exp(-x / TAU_MEM) - np.exp(-x / TAU_SYN)), 0.0)


@pytest.mark.parametrize("delay", [1.2, 3.69, 5.5, 7.05])
def test_exact_integration_matches_continuous_time_and_its_gradient(delay):
    with jax.enable_x64(True):
        d = jnp.asarray(delay, jnp.float64)
        np.testing.assert_allclose(membrane_trace(d), closed_form(delay), atol=1e-12)
        grad = jax.grad(readout)(d)
        eps = 1e-6
        fd = (readout(d + eps) - readout(d - eps)) / (2 * eps)
        np.testing.assert_allclose(grad, fd, rtol=1e-6)
        assert np.isclose(jax.jacfwd(readout)(d), grad, rtol=1e-10)


def test_membrane_is_continuous_across_step_boundaries_unlike_a_sampled_trace():
    """Arrival just before vs just after step 8: the exact membrane barely changes; a trace merely
    sampled at the steps (no sub-step membrane term) jumps, which biases its delay gradient."""
    with jax.enable_x64(True):
        before, after = jnp.asarray(8 - 2.3 - 1e-7), jnp.asarray(8 - 2.3 + 1e-7)
        assert abs(float(readout(before) - readout(after))) < 1e-5
        assert abs(float(readout(before, exact=False) - readout(after, exact=False))) > 0.1
        # Unbiased: over an interval the gradient integrates to the net change of the readout only
        # where the readout is continuous. The sampled trace's gradient misses its jumps.
        lo, hi = 3.1, 6.9
        ds = jnp.linspace(lo, hi, 2001)

        def integrated_gradient(exact):
            g = jax.vmap(jax.grad(lambda d: readout(d, exact)))(ds)
            return float(jnp.trapezoid(g, ds))

        net_exact = float(readout(jnp.asarray(hi)) - readout(jnp.asarray(lo)))
        net_sampled = float(readout(jnp.asarray(hi), False) - readout(jnp.asarray(lo), False))
        np.testing.assert_allclose(integrated_gradient(True), net_exact, rtol=1e-3, atol=1e-4)
        assert abs(integrated_gradient(False) - net_sampled) > 0.5 * abs(net_sampled) + 0.1


def test_membrane_kernel_rejects_equal_time_constants():
    with pytest.raises(ValueError, match="distinct positive time constants"):
        membrane_kernel(2.0, 2.0)
