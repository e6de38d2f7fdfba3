"""Pieces shared by the delayed SNN architectures: LIF propagation and readouts."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp

import queues

from .. import neurons
from jaxtyping import Array, Float, PRNGKeyArray

READOUTS = ("max_membrane", "sum_membrane", "spike_count", "first_spike")


def check_sizes(model_name: str, **sizes) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{model_name}: `{name}` must be a positive integer, got {value!r}")


def check_readout(model_name: str, readout: str) -> None:
    if readout not in READOUTS:
        raise ValueError(f"{model_name}: unknown readout {readout!r}; choose from {', '.join(READOUTS)}")


def decays(tau_syn: float, tau_mem: float) -> tuple[float, float]:
    """Per-step decay of the synaptic current and of the membrane."""
    return math.exp(-1 / tau_syn), math.exp(-1 / tau_mem)


def readout_logits(readout: str, outputs: Float[Array, "steps classes"]) -> Float[Array, " classes"]:
    """Logits from the readout layer's trace (membrane, or spikes for the spike-based readouts)."""
    if readout == "max_membrane":
        return outputs.max(0)
    if readout == "sum_membrane":
        return outputs.mean(0)
    if readout == "spike_count":
        return outputs.sum(0)
    silent_before = jnp.cumprod(1 - outputs, axis=0)  # prod_{m<=n} (1 - s_m)
    before = jnp.concatenate([jnp.ones_like(outputs[:1]), silent_before[:-1]])
    n = jnp.arange(1, outputs.shape[0] + 1, dtype=outputs.dtype)[:, None]
    return -((n * outputs * before).sum(0) + outputs.shape[0] * silent_before[-1])


def step_inputs(model_name: str, channels: int, spikes, times, dtype):
    """Validated ``(step indices, spike times)`` for a ``(steps, channels)`` input raster."""
    if spikes.ndim != 2 or spikes.shape[1] != channels:
        raise ValueError(f"{model_name}: `spikes` must be (steps, {channels}), got {spikes.shape}")
    steps = jnp.arange(spikes.shape[0], dtype=jnp.int32)
    if times is None:
        times = jnp.broadcast_to(steps[:, None].astype(dtype), spikes.shape)
    return steps, times


def readout_step(readout_kind: str, readout, w_out, hidden_spikes, beta: float, spike, threshold: float,
                 mask=None):
    """Advance the leaky readout layer one step; returns ``(readout state, what the logits are made of)``.
    ``mask`` (`DelayedSNN.readout_mask`, or None) scales the hidden spikes the readout sees."""
    seen = hidden_spikes if mask is None else hidden_spikes * mask
    readout = beta * readout + w_out @ seen
    if readout_kind in ("spike_count", "first_spike"):
        out = spike(readout - threshold)
        return readout * (1 - jax.lax.stop_gradient(out)), out
    return readout, readout


def check_remat(chunk: int | None) -> int | None:
    if chunk is not None and (not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"`remat_chunk` must be a positive number of steps or None, got {chunk!r}")
    return chunk


def time_scan(remat_chunk: int | None, step, init, xs):
    """The time loop: a plain scan, or `queues.checkpointed_scan` rematerialising chunks of
    ``remat_chunk`` steps in the backward pass (memory ~ steps / chunk + chunk instead of steps)."""
    if remat_chunk is None:
        return jax.lax.scan(step, init, xs)
    return queues.checkpointed_scan(step, init, xs, remat_chunk)


class DelayedSNN(eqx.Module):
    """Abstract base of the delayed architectures: the spiking readout head they share.

    Subclasses declare their layers, and call `_init_readout` from ``__init__``; ``__call__`` maps one
    example's ``(steps, channels)`` spikes to ``(logits, stats)``, with ``key`` (the trainer's, per
    example) drawing the dropout mask of `readout_mask` and ``key=None`` (inference) no dropout.
    """

    w_out: Float[Array, "classes hidden"]
    threshold: float = eqx.field(static=True)
    surrogate: str = eqx.field(static=True)
    surrogate_slope: float = eqx.field(static=True)
    readout: str = eqx.field(static=True)
    remat_chunk: int | None = eqx.field(static=True)
    dropout: float = eqx.field(static=True)

    def _init_readout(self, name: str, hidden: int, classes: int, key, threshold: float, surrogate: str,
                      surrogate_slope: float, readout: str, remat_chunk: int | None, dropout: float = 0.0) -> None:
        check_readout(name, readout)
        neurons.surrogate(surrogate, surrogate_slope)  # validates the name
        if not 0 <= dropout < 1:
            raise ValueError(f"{name}: `dropout` must lie in [0, 1), got {dropout!r}")
        self.w_out = jax.random.normal(key, (classes, hidden)) / math.sqrt(hidden)
        self.threshold, self.surrogate, self.surrogate_slope = threshold, surrogate, surrogate_slope
        self.readout, self.remat_chunk, self.dropout = readout, check_remat(remat_chunk), float(dropout)

    def readout_mask(self, key: PRNGKeyArray | None, hidden: int) -> Float[Array, " hidden"] | None:
        """Dropout between the hidden layer and the readout, for one example: ``m_j = b_j / (1 - p)`` with
        ``b_j ~ Bernoulli(1 - p)``, so the readout sees ``m_j s_j[n]``, unbiased, ``E[m_j] = 1``.

        One mask for the whole example, not one per step: the readout integrates its input over time, so
        independent masks per step would average out, while this one takes a neuron's whole evidence away
        (as SNN dropout is usually done). The hidden neurons still spike and count in ``stats``. None
        (no dropout) without a key, as at inference, or with ``dropout=0``."""
        if key is None or self.dropout == 0:
            return None
        keep = jax.random.bernoulli(key, 1 - self.dropout, (hidden,))
        return keep.astype(self.w_out.dtype) / (1 - self.dropout)

    def spike_fn(self):
        return neurons.surrogate(self.surrogate, self.surrogate_slope)

    def hidden_step(self, tau_syn: float, tau_mem: float, mask: Float[Array, " hidden"] | None = None):
        """One step of a hidden current-based LIF layer and the readout, driven by the exact membrane
        and current jumps its synapses delivered in the step (`zoo.neurons`): ``(current, v, readout),
        v_jump, i_jump -> (current, v, readout), (readout output, hidden spike count)``. The current
        carried from the last step adds its exact one-step response ``K(1) I`` to the membrane;
        ``mask`` (`readout_mask`) scales the hidden spikes the readout sees."""
        spike = self.spike_fn()
        alpha, beta = decays(tau_syn, tau_mem)
        carry_gain = neurons.membrane_kernel(tau_syn, tau_mem)(1.0)

        def step(current, v, readout, v_jump, i_jump):
            v = beta * v + carry_gain * current + v_jump
            current = alpha * current + i_jump
            s = spike(v - self.threshold)
            v = v * (1 - jax.lax.stop_gradient(s))  # reset to zero
            readout, out = readout_step(self.readout, readout, self.w_out, s, beta, spike, self.threshold, mask)
            return (current, v, readout), (out, s.sum())

        return step

    def hidden_state(self, hidden: int):
        """The zero ``(current, v, readout)`` state of `hidden_step`, in float32 whatever the weights' dtype.

        Mixed precision on purpose: a bfloat16 model's synaptic jumps and matmuls run in bfloat16, but the
        state that integrates them over the steps stays float32, as accumulators do. A bfloat16 membrane
        (8 bits of mantissa) would round away increments below 1/256 of its value, so slow charging
        towards the threshold would stall and spike times would shift with the dtype."""
        return jnp.zeros(hidden), jnp.zeros(hidden), jnp.zeros(self.w_out.shape[0])
