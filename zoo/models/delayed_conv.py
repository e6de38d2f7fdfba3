"""Convolutional SNN for event frames with learnable delays."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

import queues
from queues.base import lane_sum

from .common import DelayedSNN, check_sizes, decays, readout_logits, readout_step, time_scan
from .synapses import DelayedSynapses, require_stepped


class DelayedConv(DelayedSNN):
    """Event frames -> conv LIF feature maps -> axonal delays -> delayed dense LIF layer -> readout.

    Input: ``(steps, polarities * height * width)`` rasters (as the event datasets load them, with the
    frame shape given). A ``kernel x kernel`` convolution with ``features`` maps (applied to all steps
    at once: it is linear and time-invariant) drives LIF feature maps whose spikes are max-pooled 2x2;
    every feature map has a learnable axonal delay (one queue per pooled position, delays shared by the
    map), and the delayed spikes reach ``hidden`` LIF neurons through `DelayedSynapses` (a delay per
    synapse too), then the readout of `DelayedFeedForward`.
    """

    conv: eqx.nn.Conv2d
    map_delays: Float[Array, " features"]
    axon_queue: queues.SpikeQueue
    dense: DelayedSynapses
    frame: tuple[int, int, int] = eqx.field(static=True)

    def __init__(self, channels: int, hidden: int, classes: int, *, key: PRNGKeyArray,
                 frame: tuple[int, int, int], queue: queues.SpikeQueue | None = None, features: int = 8,
                 kernel: int = 3, tau_syn: float = 2.0, tau_mem: float = 4.0, threshold: float = 1.0,
                 surrogate: str = "fast_sigmoid", surrogate_slope: float = 5.0, readout: str = "max_membrane",
                 init_delay: float | None = None, remat_chunk: int | None = None):
        check_sizes("DelayedConv", channels=channels, hidden=hidden, classes=classes, features=features)
        frame = tuple(int(f) for f in frame)
        if len(frame) != 3 or math.prod(frame) != channels:
            raise ValueError(f"DelayedConv: `frame` (polarities, height, width) must multiply to channels={channels}, "
                             f"got {frame}")
        queue = queues.FIFORing(capacity=2, max_delay=8.0) if queue is None else queue
        require_stepped("DelayedConv", queue)
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
        require_stepped("DelayedConv", self.axon_queue)
        require_stepped("DelayedConv", self.dense.queue)
        pol, height, width = self.frame
        if spikes.ndim != 2 or spikes.shape[1] != pol * height * width:
            raise ValueError(f"DelayedConv: `spikes` must be (steps, {pol * height * width}), got {spikes.shape}")
        spike = self.spike_fn()
        alpha, beta = decays(self.dense.tau_syn, self.dense.tau_mem)
        frames = (spikes > 0).astype(self.w_out.dtype).reshape(-1, pol, height, width)
        drive = jax.vmap(self.conv)(frames)  # (steps, features, height, width): hoisted out of the time loop
        features = drive.shape[1]
        pooled_shape = (features, height // 2, width // 2)
        map_delays = jnp.broadcast_to(jnp.clip(self.map_delays, 0.0, self.axon_queue.max_delay)[:, None, None],
                                      pooled_shape)
        hidden = self.dense.delays.shape[1]
        steps = jnp.arange(spikes.shape[0], dtype=jnp.int32)

        def step(carry, xs):
            v_map, axon, syn, current, v, readout = carry
            now, x = xs
            v_map = beta * v_map + x
            s_map = spike(v_map - self.threshold)
            v_map = v_map * (1 - jax.lax.stop_gradient(s_map))
            pooled = s_map[:, : 2 * pooled_shape[1], : 2 * pooled_shape[2]].reshape(
                features, pooled_shape[1], 2, pooled_shape[2], 2).max((2, 4))
            axon, arrived = self.axon_queue.pop(axon, now)
            axon = self.axon_queue.push(axon, now, map_delays, pooled > 0)
            count = arrived.count()
            # forward the (mean) arrival time, so the map delays get gradients; a spike delayed by less
            # than the rest of its step arrives late by construction and is sent at the step's start
            mean_time = lane_sum(tuple(h * t for h, t in zip(arrived.hits, arrived.times))) / jnp.maximum(count, 1)
            nowf = now.astype(v.dtype)
            sent_at = jnp.clip(mean_time, jnp.nextafter(nowf - 1, nowf), nowf).reshape(-1)
            syn, v_jump, i_jump = self.dense.deliver(syn, now)
            syn = self.dense.send(syn, now, count.reshape(-1) > 0, sent_at)
            v = beta * v + current + v_jump
            current = alpha * current + i_jump
            s = spike(v - self.threshold)
            v = v * (1 - jax.lax.stop_gradient(s))
            readout, out = readout_step(self.readout, readout, self.w_out, s, beta, spike, self.threshold)
            # synaptic operations: each pooled unit that sends reaches `hidden`, each hidden spike `classes`
            ops = (count.reshape(-1) > 0).sum() * hidden + s.sum() * self.w_out.shape[0]
            return (v_map, axon, syn, current, v, readout), (out, s.sum() + s_map.sum(), ops)

        init = (jnp.zeros(drive.shape[1:]), self.axon_queue.init(pooled_shape), self.dense.init(),
                jnp.zeros(hidden), jnp.zeros(hidden), jnp.zeros(self.w_out.shape[0]))
        (_, axon, syn, *_), (outputs, counts, ops) = time_scan(self.remat_chunk, step, init, (steps, drive))
        dropped = axon.dropped.sum() + syn.dropped.sum()
        # plus the convolution's, counted as if event-driven: each input event reaches features x kernel taps
        synops = (spikes > 0).sum() * features * math.prod(self.conv.kernel_size) + ops.sum()
        return readout_logits(self.readout, outputs), {"spikes": counts.sum(), "dropped": dropped, "synops": synops}
