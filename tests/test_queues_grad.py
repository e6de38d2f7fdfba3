"""Exact gradients w.r.t. spike times and delays through every gradient-capable queue.

Smooth test problem: each queue receives spikes at sub-step times ``t`` with a per-queue delay
``d``; every delivered spike feeds an exponential synaptic trace, sampled at each step, and the
loss weighs the samples. In closed form

    L = sum_q sum_k sum_{n >= ceil(t_k + d_q)} c_n exp(-(n - t_k - d_q) / tau),

so dL/dt_k = dL/dd_q (per spike) = (that spike's term) / tau. Forward mode, reverse mode, central
finite differences (float64) and this formula must agree.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import queues

STEPS, QUEUES, TAU = 30, 3, 4.0
SPIKE_STEPS = [2, 9, 16]  # spikes pushed at these steps: at most one in flight, nothing dropped
rng = np.random.default_rng(7)
OFFSETS = rng.uniform(0.2, 0.8, (len(SPIKE_STEPS), QUEUES))  # sub-step emission offsets
DELAYS = np.array([1.3, 4.6, 6.45])  # fractional arrival parts stay inside (0, 1): FD is smooth
WEIGHTS = rng.uniform(0.5, 1.5, STEPS)

GRAD_KINDS = [k for k in queues.GRADIENT_KINDS]


def make_queue(kind):
    config = {"max_delay": 7.0}
    if kind in ("fifo_ring", "lossy_ring", "sorted_array", "binary_heap"):
        config["capacity"] = 4
    return queues.make_queue(kind, **config)


def loss_fn(queue):
    spikes = np.zeros((STEPS, QUEUES), bool)
    spikes[SPIKE_STEPS] = True

    def loss(delays, offsets):
        times = jnp.zeros((STEPS, QUEUES), delays.dtype).at[jnp.array(SPIKE_STEPS)].set(
            jnp.array(SPIKE_STEPS, delays.dtype)[:, None] - offsets)
        times = jnp.where(spikes, times, jnp.arange(STEPS, dtype=delays.dtype)[:, None])
        alpha = jnp.exp(-1.0 / TAU)

        def step(carry, xs):
            state, trace = carry
            now, mask, t = xs
            state, delivery = queue.pop(state, now)
            trace = alpha * trace + delivery.exponential(now, TAU)
            return (queue.push(state, now, delays, mask, t), trace), trace

        init = (queue.init((QUEUES,)), jnp.zeros(QUEUES, delays.dtype))
        _, traces = jax.lax.scan(step, init, (jnp.arange(STEPS), jnp.asarray(spikes), times))
        return (traces.sum(1) * WEIGHTS).sum()

    return loss


def closed_form(delays, offsets):
    value, d_delays, d_offsets = 0.0, np.zeros(QUEUES), np.zeros_like(offsets)
    for k, s in enumerate(SPIKE_STEPS):
        for q in range(QUEUES):
            a = s - offsets[k, q] + delays[q]
            n = np.arange(int(np.ceil(a)), STEPS)
            term = (WEIGHTS[n] * np.exp(-(n - a) / TAU)).sum()
            value += term
            d_delays[q] += term / TAU
            d_offsets[k, q] -= term / TAU
    return value, d_delays, d_offsets


@pytest.mark.parametrize("kind", GRAD_KINDS)
def test_forward_reverse_fd_and_closed_form_agree(kind):
    with jax.enable_x64(True):
        loss = jax.jit(loss_fn(make_queue(kind)))
        delays, offsets = jnp.asarray(DELAYS), jnp.asarray(OFFSETS)
        fwd = jax.jacfwd(loss, argnums=(0, 1))(delays, offsets)
        rev = jax.jacrev(loss, argnums=(0, 1))(delays, offsets)
        value, exact_d, exact_o = closed_form(DELAYS, OFFSETS)

        np.testing.assert_allclose(loss(delays, offsets), value, rtol=1e-12)
        for f, r, exact in zip(fwd, rev, (exact_d, exact_o)):
            np.testing.assert_allclose(f, r, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(f, exact, rtol=1e-10)
            assert np.all(np.abs(exact) > 1e-3)  # the test problem has non-trivial gradients

        eps = 1e-6
        for q in range(QUEUES):
            e = jnp.zeros(QUEUES).at[q].set(eps)
            fd = (loss(delays + e, offsets) - loss(delays - e, offsets)) / (2 * eps)
            np.testing.assert_allclose(fd, fwd[0][q], rtol=1e-6)
        e = jnp.zeros_like(offsets).at[1, 2].set(eps)
        fd = (loss(delays, offsets + e) - loss(delays, offsets - e)) / (2 * eps)
        np.testing.assert_allclose(fd, fwd[1][1, 2], rtol=1e-6)


def test_grad_float32_under_jit_and_vmap():
    """The default dtype path: reverse mode under jit, and vmapped over a batch of delay vectors."""
    loss = loss_fn(make_queue("fifo_ring"))
    delays = jnp.asarray(DELAYS, jnp.float32)
    offsets = jnp.asarray(OFFSETS, jnp.float32)
    grad = jax.jit(jax.grad(loss))(delays, offsets)
    _, exact, _ = closed_form(DELAYS, OFFSETS)
    np.testing.assert_allclose(grad, exact, rtol=1e-4)
    batch = jnp.stack([delays, delays * 0.9])
    batched = jax.vmap(jax.grad(loss), in_axes=(0, None))(batch, offsets)
    np.testing.assert_allclose(batched[0], grad, rtol=1e-6)


def test_bitmask_refuses_to_differentiate():
    queue = queues.Bitmask(max_delay=7.0)
    loss = loss_fn(queue)
    # without differentiation it runs and agrees with the other kinds on spike counts
    assert np.isfinite(float(loss(jnp.asarray(DELAYS, jnp.float32), jnp.asarray(OFFSETS, jnp.float32))))
    with pytest.raises(TypeError, match="Bitmask carries no gradient"):
        jax.grad(loss)(jnp.asarray(DELAYS, jnp.float32), jnp.asarray(OFFSETS, jnp.float32))


@pytest.mark.parametrize("chunk", [None, 1, 4, 7])
def test_checkpointed_scan_matches_scan_and_its_gradient(chunk):
    """Chunked rematerialisation changes memory, never values: same outputs, same gradients."""
    queue = make_queue("sorted_array")
    spikes = jnp.asarray(np.random.default_rng(3).random((STEPS, QUEUES)) < 0.3)

    def loss(delays, scan):
        def step(state, xs):
            now, mask = xs
            state, delivery = queue.pop(state, now)
            return queue.push(state, now, delays, mask), delivery.exponential(now, TAU)

        _, out = scan(step, queue.init((QUEUES,)), (jnp.arange(STEPS), spikes))
        return (out * jnp.arange(STEPS)[:, None]).sum()

    delays = jnp.asarray(DELAYS, jnp.float32)
    plain = jax.value_and_grad(lambda d: loss(d, jax.lax.scan))(delays)
    chunked = jax.value_and_grad(lambda d: loss(d, lambda f, c, x: queues.checkpointed_scan(f, c, x, chunk)))(delays)
    np.testing.assert_allclose(chunked[0], plain[0], rtol=1e-6)
    np.testing.assert_allclose(chunked[1], plain[1], rtol=1e-5)
    with pytest.raises(ValueError, match="`chunk` must be >= 1"):
        queues.checkpointed_scan(lambda c, x: (c, x), 0, jnp.arange(4), 0)


def test_exponential_kernel_gradient_in_tau():
    delivery = queues.Delivery(hits=(jnp.array([1.0, 0.0, 2.0]),), times=(jnp.array([4.3, 5.0, 4.9]),))
    f = lambda tau: delivery.exponential(5, tau).sum()  # noqa: E731
    eps = 1e-3
    fd = (f(3.0 + eps) - f(3.0 - eps)) / (2 * eps)
    np.testing.assert_allclose(jax.grad(f)(3.0), fd, rtol=1e-3)
    np.testing.assert_allclose(jax.jacfwd(f)(3.0), jax.grad(f)(3.0), rtol=1e-6)
