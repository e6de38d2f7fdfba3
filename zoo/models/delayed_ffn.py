"""Feed-forward SNN with a learnable delay on every input synapse."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

import queues

from ..neurons import fast_sigmoid, membrane_kernel


class DelayedFeedForward(eqx.Module):
    """Input spikes -> synapses with per-synapse delays -> LIF layer -> leaky readout.

    Every input synapse (channel c -> hidden h) has a weight and a continuous delay in
    ``[0, max_delay]`` steps; spikes travel through one layer of queues of shape
    ``(channels, hidden)`` of the given ``queue`` kind, whose ``max_delay`` bounds the delays, so the
    same model runs on any queue. Hidden neurons are current-based LIF, integrated exactly with the
    sub-step arrival times (`zoo.neurons`); their spikes use a surrogate derivative. The readout is a
    non-spiking leaky integrator; logits are its maximum over time. ``__call__`` takes one example.
    """

    w_in: Float[Array, "hidden channels"]
    delays: Float[Array, "channels hidden"]
    w_out: Float[Array, "classes hidden"]
    queue: queues.SpikeQueue
    tau_syn: float = eqx.field(static=True)
    tau_mem: float = eqx.field(static=True)
    threshold: float = eqx.field(static=True)
    surrogate_slope: float = eqx.field(static=True)

    def __init__(self, channels: int, hidden: int, classes: int, *, key: PRNGKeyArray,
                 queue: queues.SpikeQueue | None = None,
                 tau_syn: float = 2.0, tau_mem: float = 4.0, threshold: float = 1.0,
                 surrogate_slope: float = 5.0, init_delay: float | None = None):
        for name, value in dict(channels=channels, hidden=hidden, classes=classes).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"DelayedFeedForward: `{name}` must be a positive integer, got {value!r}")
        queue = queues.FIFORing(capacity=2, max_delay=16.0) if queue is None else queue
        max_delay = queue.max_delay
        k_in, k_delay, k_out = jax.random.split(key, 3)
        self.w_in = jax.random.normal(k_in, (hidden, channels)) * (2.0 / math.sqrt(channels))
        if init_delay is None:
            self.delays = jax.random.uniform(k_delay, (channels, hidden), minval=0.0, maxval=max_delay)
        else:
            self.delays = jnp.full((channels, hidden), float(init_delay))
        self.w_out = jax.random.normal(k_out, (classes, hidden)) / math.sqrt(hidden)
        self.queue = queue
        self.tau_syn, self.tau_mem = tau_syn, tau_mem
        self.threshold, self.surrogate_slope = threshold, surrogate_slope

    def __call__(self, spikes: Float[Array, "steps channels"],
                 times: Float[Array, "steps channels"] | None = None) -> tuple[Float[Array, " classes"], dict]:
        """Logits for one example: ``spikes[n, c] > 0`` where channel ``c`` spikes in ``(n-1, n]``, at the
        exact ``times[n, c]`` if given (else at ``n``)."""
        channels, hidden = self.delays.shape
        if spikes.ndim != 2 or spikes.shape[1] != channels:
            raise ValueError(f"DelayedFeedForward: `spikes` must be (steps, {channels}), got {spikes.shape}")
        spike = fast_sigmoid(self.surrogate_slope)
        kernel = membrane_kernel(self.tau_syn, self.tau_mem)
        alpha, beta = math.exp(-1 / self.tau_syn), math.exp(-1 / self.tau_mem)
        carry_gain = kernel(1.0)
        delays = jnp.clip(self.delays, 0.0, self.queue.max_delay)
        steps = jnp.arange(spikes.shape[0], dtype=jnp.int32)
        if times is None:
            times = jnp.broadcast_to(steps[:, None].astype(delays.dtype), spikes.shape)

        def step(carry, xs):
            state, current, v, readout = carry
            now, fire, t = xs
            state, delivery = self.queue.pop(state, now)
            fire = fire > 0
            state = self.queue.push(state, now, delays, jnp.broadcast_to(fire[:, None], (channels, hidden)),
                                    jnp.where(fire, t, now)[:, None])
            v = beta * v + carry_gain * current + jnp.einsum("hc,ch->h", self.w_in, delivery.kernel(now, kernel))
            current = alpha * current + jnp.einsum("hc,ch->h", self.w_in, delivery.exponential(now, self.tau_syn))
            s = spike(v - self.threshold)
            v = v * (1 - jax.lax.stop_gradient(s))  # reset to zero
            readout = beta * readout + self.w_out @ s
            return (state, current, v, readout), (readout, s.sum())

        init = (self.queue.init((channels, hidden)), jnp.zeros(hidden), jnp.zeros(hidden), jnp.zeros(self.w_out.shape[0]))
        (state, *_), (readouts, counts) = jax.lax.scan(step, init, (steps, spikes, times))
        return readouts.max(0), {"spikes": counts.sum(), "dropped": state.dropped.sum()}
