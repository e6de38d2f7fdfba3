"""Convolutional SNN for event frames with learnable delays."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

import queues
from queues.base import just_after, lane_sum

from .common import DelayedSNN, check_sizes, decays, readout_logits, time_scan
from .synapses import DelayedSynapses


class DelayedConv(DelayedSNN):
    """Event frames -> conv LIF feature maps -> axonal delays -> delayed dense LIF layer -> readout.

    Input: ``(steps, polarities * height * width)`` rasters (as the event datasets load them, with the
    frame shape given). A ``kernel x kernel`` convolution with ``features`` maps (applied to all steps
    at once: it is linear and time-invariant) drives LIF feature maps whose spikes are max-pooled 2x2;
    every feature map has a learnable axonal delay (one queue per pooled position, delays shared by the
    map), and the delayed spikes reach ``hidden`` LIF neurons through `DelayedSynapses` (a delay per
    synapse too), then the readout of `DelayedFeedForward`.

    Every layer before the readout is feed-forward, so ``queue=queues.Scheduled(...)`` delivers both
    delays for all steps at once and the loops only integrate neurons: the same values and gradients
    as a stepped queue kind that drops nothing (`_axon_schedule` passes on what the popped axon queues
    would), at the cost of the events instead of the steps x slots.
    """

    conv: eqx.nn.Conv2d
    map_delays: Float[Array, " features"]
    axon_queue: queues.SpikeQueue | queues.Scheduled
    dense: DelayedSynapses
    frame: tuple[int, int, int] = eqx.field(static=True)

    def __init__(self, channels: int, hidden: int, classes: int, *, key: PRNGKeyArray,
                 frame: tuple[int, int, int], queue: queues.SpikeQueue | queues.Scheduled | None = None,
                 features: int = 8, kernel: int = 3, tau_syn: float = 2.0, tau_mem: float = 4.0, threshold: float = 1.0,
                 surrogate: str = "fast_sigmoid", surrogate_slope: float = 5.0, readout: str = "max_membrane",
                 init_delay: float | None = None, remat_chunk: int | None = None):
        check_sizes("DelayedConv", channels=channels, hidden=hidden, classes=classes, features=features)
        frame = tuple(int(f) for f in frame)
        if len(frame) != 3 or math.prod(frame) != channels:
            raise ValueError(f"DelayedConv: `frame` (polarities, height, width) must multiply to channels={channels}, "
                             f"got {frame}")
        queue = queues.FIFORing(capacity=2, max_delay=8.0) if queue is None else queue
        k_conv, k_delay, k_dense, k_out = jax.random.split(key, 4)
        self.conv = eqx.nn.Conv2d(frame[0], features, kernel, padding="SAME", key=k_conv)
        self.map_delays = (jax.random.uniform(k_delay, (features,), maxval=queue.max_delay) if init_delay is None
                           else jnp.full((features,), float(init_delay)))
        self.axon_queue = queue
        pooled = features * (frame[1] // 2) * (frame[2] // 2)
        self.dense = DelayedSynapses(pooled, hidden, queue, key=k_dense, tau_syn=tau_syn, tau_mem=tau_mem,
                                     init_delay=init_delay)
        self.frame = frame
        self._init_readout("DelayedConv", hidden, classes, k_out, threshold, surrogate, surrogate_slope, readout,
                           remat_chunk)

    def __call__(self, spikes: Float[Array, "steps channels"],
                 times: Float[Array, "steps channels"] | None = None) -> tuple[Float[Array, " classes"], dict]:
        del times  # frames: spikes at the step times
        pol, height, width = self.frame
        if spikes.ndim != 2 or spikes.shape[1] != pol * height * width:
            raise ValueError(f"DelayedConv: `spikes` must be (steps, {pol * height * width}), got {spikes.shape}")
        spike = self.spike_fn()
        _, beta = decays(self.dense.tau_syn, self.dense.tau_mem)  # the feature maps' membrane decay
        frames = (spikes > 0).astype(self.w_out.dtype).reshape(-1, pol, height, width)
        drive = jax.vmap(self.conv)(frames)  # (steps, features, height, width): hoisted out of the time loop
        features = drive.shape[1]
        pooled_shape = (features, height // 2, width // 2)

        def conv_step(v_map, x):  # the feature maps' LIF neurons: feed-forward, so a loop of their own
            v_map = beta * v_map + x
            s_map = spike(v_map - self.threshold)
            v_map = v_map * (1 - jax.lax.stop_gradient(s_map))
            pooled = s_map[:, : 2 * pooled_shape[1], : 2 * pooled_shape[2]].reshape(
                features, pooled_shape[1], 2, pooled_shape[2], 2).max((2, 4))
            return v_map, (pooled, s_map.sum())

        _, (pooled, map_counts) = time_scan(self.remat_chunk, conv_step, jnp.zeros(drive.shape[1:]), drive)
        map_delays = jnp.clip(self.map_delays, 0.0, self.axon_queue.max_delay)
        hidden = self.dense.delays.shape[1]
        neurons_step = self.hidden_step(self.dense.tau_syn, self.dense.tau_mem)
        zeros = self.hidden_state(hidden)
        if isinstance(self.axon_queue, queues.Scheduled):
            sent, sent_at, axon_dropped = self._axon_schedule(pooled.reshape(pooled.shape[0], -1), map_delays)
            v_jumps, i_jumps, dense_dropped = self.dense.scheduled(sent, sent_at)
            _, (outputs, counts) = time_scan(self.remat_chunk, lambda c, x: neurons_step(*c, *x), zeros,
                                             (v_jumps, i_jumps))
            dropped = axon_dropped + dense_dropped
            sent_count = sent.sum()
        else:
            map_delays = jnp.broadcast_to(map_delays[:, None, None], pooled_shape)

            def step(carry, xs):
                axon, syn, neurons_state = carry
                now, fire = xs
                axon, arrived = self.axon_queue.pop(axon, now)
                axon = self.axon_queue.push(axon, now, map_delays, fire > 0)
                count = arrived.count().reshape(-1)
                mean_time = lane_sum(tuple(h * t for h, t in zip(arrived.hits, arrived.times))).reshape(-1)
                syn, v_jump, i_jump = self.dense.deliver(syn, now)
                syn = self.dense.send(syn, now, count > 0, sent_time(now, mean_time / jnp.maximum(count, 1)))
                neurons_state, out = neurons_step(*neurons_state, v_jump, i_jump)
                return (axon, syn, neurons_state), (out, (count > 0).sum())

            steps = jnp.arange(spikes.shape[0], dtype=jnp.int32)
            init = (self.axon_queue.init(pooled_shape), self.dense.init(), zeros)
            (axon, syn, _), ((outputs, counts), sends) = time_scan(self.remat_chunk, step, init, (steps, pooled))
            dropped = axon.dropped.sum() + syn.dropped.sum()
            sent_count = sends.sum()
        # synaptic operations, counted as if event-driven: each input event reaches features x kernel taps,
        # each pooled unit that sends reaches `hidden`, each hidden spike `classes`
        synops = ((spikes > 0).sum() * features * math.prod(self.conv.kernel_size) + sent_count * hidden
                  + counts.sum() * self.w_out.shape[0])
        return readout_logits(self.readout, outputs), {"spikes": counts.sum() + map_counts.sum(), "dropped": dropped,
                                                       "synops": synops}

    def _axon_schedule(self, pooled: Float[Array, "steps units"], map_delays: Float[Array, " features"]):
        """The axonal delays with `queues.Scheduled`: ``(sent, sent_at, dropped)``, what the stepped axon
        queues pass on to the dense layer at every step (``sent[n, u]``: unit ``u`` sends in step ``n``, at
        the arrival time of its spike due then). A unit spikes at most once per step through a fixed
        delay, so its spikes arrive in distinct steps: at most one per (step, unit) cell."""
        steps, units = pooled.shape
        per_unit = jnp.repeat(map_delays, units // map_delays.shape[0])[:, None]  # (units, 1), map-major order
        schedule = self.axon_queue.schedule(pooled, per_unit)
        # scatter each arrival into its (step, unit) cell; arrivals at or after `steps` fall outside
        index = schedule.step[:, 0] * units + schedule.pre
        sent = jnp.zeros(steps * units, bool).at[index].set(schedule.valid, mode="drop").reshape(steps, units)
        arrival = jnp.zeros(steps * units, map_delays.dtype).at[index].add(
            jnp.where(schedule.valid, schedule.arrival[:, 0], 0), mode="drop").reshape(steps, units)
        now = jnp.arange(steps, dtype=jnp.int32)[:, None]
        return sent, sent_time(now, arrival), schedule.dropped

def sent_time(now, mean_arrival):
    """When a unit passes its axon's arrivals of step ``now`` on: their (mean) time, kept inside the step
    ``(now-1, now]``, where a spike delayed by less than the rest of its step arrives by construction
    (it is sent at the step's start). Forwarding the time gives the axonal delays their gradients."""
    nowf = jnp.asarray(now).astype(mean_arrival.dtype)
    return jnp.clip(mean_arrival, just_after(nowf - 1), nowf)
