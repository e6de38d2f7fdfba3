"""Feed-forward SNN with a learnable delay on every input synapse."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

import queues

from .. import neurons

READOUTS = ("max_membrane", "sum_membrane", "spike_count", "first_spike")


class DelayedFeedForward(eqx.Module):
    """Input spikes -> synapses with per-synapse delays -> LIF layer -> leaky readout.

    Every input synapse (channel c -> hidden h) has a weight and a continuous delay in
    ``[0, max_delay]`` steps; spikes travel through one layer of queues of shape
    ``(channels, hidden)`` of the given ``queue`` kind, whose ``max_delay`` bounds the delays, so the
    same model runs on any queue. Hidden neurons are current-based LIF, integrated exactly with the
    sub-step arrival times (`zoo.neurons`); their spikes use a surrogate derivative (``surrogate``:
    fast_sigmoid, arctan or triangle). ``readout``: the maximum (``max_membrane``) or the time average
    (``sum_membrane``) of a non-spiking leaky readout layer, or the readout layer spiking (threshold
    as the hidden layer) with logits its ``spike_count`` or minus its ``first_spike`` time
    (differentiable through the surrogate: ``sum_n n s_n prod_{m<n} (1 - s_m)``, ``steps`` if silent).
    ``__call__`` takes one example.
    """

    w_in: Float[Array, "hidden channels"]
    delays: Float[Array, "channels hidden"]
    w_out: Float[Array, "classes hidden"]
    queue: queues.SpikeQueue
    tau_syn: float = eqx.field(static=True)
    tau_mem: float = eqx.field(static=True)
    threshold: float = eqx.field(static=True)
    surrogate: str = eqx.field(static=True)
    surrogate_slope: float = eqx.field(static=True)
    readout: str = eqx.field(static=True)

    def __init__(self, channels: int, hidden: int, classes: int, *, key: PRNGKeyArray,
                 queue: queues.SpikeQueue | None = None,
                 tau_syn: float = 2.0, tau_mem: float = 4.0, threshold: float = 1.0,
                 surrogate: str = "fast_sigmoid", surrogate_slope: float = 5.0, readout: str = "max_membrane",
                 init_delay: float | None = None):
        for name, value in dict(channels=channels, hidden=hidden, classes=classes).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"DelayedFeedForward: `{name}` must be a positive integer, got {value!r}")
        if readout not in READOUTS:
            raise ValueError(f"DelayedFeedForward: unknown readout {readout!r}; choose from {', '.join(READOUTS)}")
        neurons.surrogate(surrogate, surrogate_slope)  # validates the name
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
        self.threshold, self.surrogate, self.surrogate_slope, self.readout = threshold, surrogate, surrogate_slope, readout

    def __call__(self, spikes: Float[Array, "steps channels"],
                 times: Float[Array, "steps channels"] | None = None) -> tuple[Float[Array, " classes"], dict]:
        """Logits for one example: ``spikes[n, c] > 0`` where channel ``c`` spikes in ``(n-1, n]``, at the
        exact ``times[n, c]`` if given (else at ``n``)."""
        channels, hidden = self.delays.shape
        if spikes.ndim != 2 or spikes.shape[1] != channels:
            raise ValueError(f"DelayedFeedForward: `spikes` must be (steps, {channels}), got {spikes.shape}")
        spike = neurons.surrogate(self.surrogate, self.surrogate_slope)
        kernel = neurons.membrane_kernel(self.tau_syn, self.tau_mem)
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
            if self.readout in ("spike_count", "first_spike"):
                out_spikes = spike(readout - self.threshold)
                readout = readout * (1 - jax.lax.stop_gradient(out_spikes))
            else:
                out_spikes = readout
            return (state, current, v, readout), (out_spikes, s.sum())

        init = (self.queue.init((channels, hidden)), jnp.zeros(hidden), jnp.zeros(hidden), jnp.zeros(self.w_out.shape[0]))
        (state, *_), (outputs, counts) = jax.lax.scan(step, init, (steps, spikes, times))
        return self._logits(outputs), {"spikes": counts.sum(), "dropped": state.dropped.sum()}

    def _logits(self, outputs: Float[Array, "steps classes"]) -> Float[Array, " classes"]:
        if self.readout == "max_membrane":
            return outputs.max(0)
        if self.readout == "sum_membrane":
            return outputs.mean(0)
        if self.readout == "spike_count":
            return outputs.sum(0)
        silent_before = jnp.cumprod(1 - outputs, axis=0)  # prod_{m<=n} (1 - s_m)
        before = jnp.concatenate([jnp.ones_like(outputs[:1]), silent_before[:-1]])
        n = jnp.arange(1, outputs.shape[0] + 1, dtype=outputs.dtype)[:, None]
        first = (n * outputs * before).sum(0) + outputs.shape[0] * silent_before[-1]
        return -first
