"""Recurrent SNN with learnable delays on the input and on the recurrent connections."""

from __future__ import annotations


import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

import queues
from queues.base import just_after

from .. import neurons
from .common import DelayedSNN, check_sizes, decays, readout_logits, readout_step, step_inputs, time_scan
from .synapses import DelayedSynapses, require_stepped


class DelayedRecurrent(DelayedSNN):
    """Input -> recurrent LIF layer -> leaky readout, with a learnable delay on every synapse.

    Like `DelayedFeedForward`, plus hidden -> hidden synapses (no self-connections) whose spikes
    travel through their own ``(hidden, hidden)`` queue layer, sent at each neuron's exact threshold
    crossing time (linear interpolation of the membrane within the step, differentiable). Delays are
    what let a recurrent SNN hold information for longer than its time constants.
    """

    input: DelayedSynapses
    recurrent: DelayedSynapses

    def __init__(self, channels: int, hidden: int, classes: int, *, key: PRNGKeyArray,
                 queue: queues.SpikeQueue | None = None, recurrent_queue: queues.SpikeQueue | None = None,
                 tau_syn: float = 2.0, tau_mem: float = 4.0, threshold: float = 1.0,
                 surrogate: str = "fast_sigmoid", surrogate_slope: float = 5.0, readout: str = "max_membrane",
                 init_delay: float | None = None, remat_chunk: int | None = None, recurrent_scale: float = 0.5,
                 dropout: float = 0.0):
        check_sizes("DelayedRecurrent", channels=channels, hidden=hidden, classes=classes)
        queue = queues.FIFORing(capacity=2, max_delay=16.0) if queue is None else queue
        require_stepped("DelayedRecurrent", queue)
        require_stepped("DelayedRecurrent", recurrent_queue)
        k_in, k_rec, k_out = jax.random.split(key, 3)
        self.input = DelayedSynapses(channels, hidden, queue, key=k_in, tau_syn=tau_syn, tau_mem=tau_mem,
                                     init_delay=init_delay)
        recurrent = DelayedSynapses(hidden, hidden, queue if recurrent_queue is None else recurrent_queue, key=k_rec, tau_syn=tau_syn,
                                    tau_mem=tau_mem, weight_scale=recurrent_scale, init_delay=init_delay)
        self.recurrent = eqx.tree_at(lambda s: s.weight, recurrent, recurrent.weight * (1 - jnp.eye(hidden)))
        self._init_readout("DelayedRecurrent", hidden, classes, k_out, threshold, surrogate, surrogate_slope, readout,
                           remat_chunk, dropout)

    def __call__(self, spikes: Float[Array, "steps channels"], times: Float[Array, "steps channels"] | None = None,
                 *, key: PRNGKeyArray | None = None) -> tuple[Float[Array, " classes"], dict]:
        require_stepped("DelayedRecurrent", self.input.queue)
        require_stepped("DelayedRecurrent", self.recurrent.queue)
        channels, hidden = self.input.delays.shape
        steps, times = step_inputs("DelayedRecurrent", channels, spikes, times, self.input.delays.dtype)
        spike = self.spike_fn()
        alpha, beta = decays(self.input.tau_syn, self.input.tau_mem)
        carry_gain = neurons.membrane_kernel(self.input.tau_syn, self.input.tau_mem)(1.0)
        no_self = 1 - jnp.eye(hidden)
        recurrent = eqx.tree_at(lambda s: s.weight, self.recurrent, self.recurrent.weight * no_self)
        mask = self.readout_mask(key, hidden)  # on the readout's input only: the recurrent synapses see every spike

        def step(carry, xs):
            in_state, rec_state, current, v, readout = carry
            now, fire, t = xs
            in_state, v_in, i_in = self.input.deliver(in_state, now)
            rec_state, v_rec, i_rec = recurrent.deliver(rec_state, now)
            in_state = self.input.send(in_state, now, fire > 0, t)
            v_before = v
            v = beta * v + carry_gain * current + v_in + v_rec
            current = alpha * current + i_in + i_rec
            s = spike(v - self.threshold)
            # exact-ish crossing time in (now-1, now]: linear interpolation of the membrane
            crossed = (v_before < self.threshold) & (v >= self.threshold)
            frac = (self.threshold - v_before) / jnp.where(crossed, v - v_before, 1.0)
            nowf = now.astype(v.dtype)
            earliest = just_after(nowf - 1)  # the interval is open at now-1, in float32 too
            t_spike = jnp.where(crossed, jnp.clip(nowf - 1 + frac, earliest, nowf), nowf)
            rec_state = recurrent.send(rec_state, now, s > 0, t_spike)
            v = v * (1 - jax.lax.stop_gradient(s))
            readout, out = readout_step(self.readout, readout, self.w_out, s, beta, spike, self.threshold, mask)
            return (in_state, rec_state, current, v, readout), (out, s.sum())

        init = (self.input.init(), recurrent.init(), jnp.zeros(hidden), jnp.zeros(hidden),
                jnp.zeros(self.w_out.shape[0]))
        (in_state, rec_state, *_), (outputs, counts) = time_scan(self.remat_chunk, step, init, (steps, spikes, times))
        dropped = in_state.dropped.sum() + rec_state.dropped.sum()
        # synaptic operations: input events fan out to `hidden`, hidden spikes to `hidden` + `classes`
        synops = (spikes > 0).sum() * hidden + counts.sum() * (hidden + self.w_out.shape[0])
        return readout_logits(self.readout, outputs), {"spikes": counts.sum(), "dropped": dropped, "synops": synops}
