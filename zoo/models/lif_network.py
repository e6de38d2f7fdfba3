"""Feed-forward delayed LIF network with exact spike times: trainable by EventProp or surrogate gradients."""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

import queues

from .. import eventprop, neurons
from ..registry import PretrainedEntry, register
from .common import check_sizes

LIF_READOUTS = ("max_membrane", "sum_membrane", "first_spike")


def _refuse_scheduled(queue) -> None:
    if isinstance(queue, queues.Scheduled):
        raise ValueError("ExactLIFNetwork: delivery='table' is scheduled delivery already (each layer's arrivals "
                         "from the spike times below); delivery='queue' needs a queue kind (e.g. queue=sorted_array)")


class ExactLIFNetwork(eqx.Module):
    """Input spikes -> hidden LIF layers -> readout layer, every synapse with a weight and a learnable
    delay in ``[0, max_delay]``, simulated with exact spike times (`zoo.eventprop.network`). With
    ``recurrent=True`` every hidden layer also connects to itself, through delays in ``[1, max_delay]``.

    ``delivery``: ``"table"`` (every arrival computed from the layer below's spike times) or
    ``"queue"`` (through layers of ``queue``, rebuilt with one step more of ``max_delay``; its drops are
    counted with the dropped spikes). ``gradient`` picks how it is differentiated: ``"eventprop"`` (exact adjoint, memory O(spikes)),
    ``"exact"`` (autodiff through the same simulation) or ``"surrogate"`` (autodiff with ``surrogate``
    derivatives of the threshold crossings); the trainers set it (``trainer=eventprop`` or
    ``trainer=surrogate``). ``readout``: the maximum or the time average of a non-spiking readout
    layer's membrane, or minus the first spike time of a spiking readout layer (``steps`` if silent).
    """

    weights: tuple[Float[Array, "post pre"], ...]
    delays: tuple[Float[Array, "pre post"], ...]
    rec_weights: tuple[Float[Array, "post post"], ...] | None  # per hidden layer, with ``recurrent=True``
    rec_delays: tuple[Float[Array, "post post"], ...] | None   # in [1, max_delay]
    gradient: str  # a (non-array) leaf, so a trainer can swap it with eqx.tree_at
    cell: eventprop.LIFCell = eqx.field(static=True)
    max_delay: float = eqx.field(static=True)
    readout: str = eqx.field(static=True)
    surrogate: str = eqx.field(static=True)
    surrogate_slope: float = eqx.field(static=True)
    input_slots: int = eqx.field(static=True)
    queue: queues.SpikeQueue | None  # with delivery="queue"; no array leaves

    def __init__(self, channels: int, hidden: int | list[int], classes: int, *, key: PRNGKeyArray,
                 max_delay: float = 8.0, tau_syn: float = 2.0, tau_mem: float = 4.0, threshold: float = 1.0,
                 max_spikes: int = 4, input_slots: int = 1, readout: str = "max_membrane",
                 gradient: str = "eventprop", surrogate: str = "fast_sigmoid", surrogate_slope: float = 5.0,
                 init_delay: float | None = None, weight_scale: float = 3.0, weight_mean: float = 0.5,
                 recurrent: bool = False, recurrent_scale: float = 0.5, delivery: str = "table",
                 queue: queues.SpikeQueue | None = None):
        sizes = [hidden] if isinstance(hidden, int) else list(hidden)
        check_sizes("ExactLIFNetwork", channels=channels, classes=classes, input_slots=input_slots,
                    **{f"hidden[{k}]": h for k, h in enumerate(sizes)})
        if readout not in LIF_READOUTS:
            raise ValueError(f"ExactLIFNetwork: unknown readout {readout!r}; choose from {', '.join(LIF_READOUTS)}")
        if gradient not in eventprop.METHODS:
            raise ValueError(f"ExactLIFNetwork: unknown gradient {gradient!r}; choose from "
                             f"{', '.join(eventprop.METHODS)}")
        if max_delay < (1 if recurrent else 0):
            raise ValueError(f"ExactLIFNetwork: `max_delay` must be >= {1 if recurrent else 0} (recurrent delays are "
                             f"at least one step), got {max_delay}")
        neurons.surrogate(surrogate, surrogate_slope)  # validates the name
        if delivery not in ("table", "queue"):
            raise ValueError(f"ExactLIFNetwork: `delivery` must be 'table' or 'queue', got {delivery!r}")
        _refuse_scheduled(queue)
        if delivery == "queue" and queue is None:
            raise ValueError("ExactLIFNetwork: delivery='queue' needs a `queue` (e.g. queue=sorted_array)")
        # the input queue runs one step ahead (see zoo.eventprop._layer_forward): one more step of delay
        self.queue = dataclasses.replace(queue, max_delay=float(max_delay) + 1.0) if delivery == "queue" else None
        self.cell = eventprop.LIFCell(tau_syn, tau_mem, threshold, max_spikes)
        layers = [channels, *sizes, classes]
        keys = jax.random.split(key, 2 * len(layers))
        weights, delays = [], []
        for k, (pre, post) in enumerate(zip(layers, layers[1:])):
            # mean > 0: a fresh network spikes (spike-time gradients need spikes); scale ~ 1/sqrt(fan-in)
            weights.append((jax.random.normal(keys[2 * k], (post, pre)) + weight_mean) * weight_scale / math.sqrt(pre))
            delays.append(jax.random.uniform(keys[2 * k + 1], (pre, post), maxval=max_delay) if init_delay is None
                          else jnp.full((pre, post), float(init_delay)))
        self.weights, self.delays = tuple(weights), tuple(delays)
        self.rec_weights = self.rec_delays = None
        if recurrent:
            rkeys = jax.random.split(keys[-1], 2 * len(sizes))
            self.rec_weights = tuple(jax.random.normal(rkeys[2 * k], (h, h)) * recurrent_scale / math.sqrt(h)
                                     * (1 - jnp.eye(h)) for k, h in enumerate(sizes))
            self.rec_delays = tuple(jax.random.uniform(rkeys[2 * k + 1], (h, h), minval=1.0, maxval=max(max_delay, 1.0))
                                    if init_delay is None else jnp.full((h, h), max(float(init_delay), 1.0))
                                    for k, h in enumerate(sizes))
        self.gradient, self.max_delay, self.readout = gradient, float(max_delay), readout
        self.surrogate, self.surrogate_slope, self.input_slots = surrogate, surrogate_slope, input_slots

    def with_gradient(self, method: str) -> "ExactLIFNetwork":
        if method not in eventprop.METHODS:
            raise ValueError(f"ExactLIFNetwork: unknown gradient {method!r}; choose from {', '.join(eventprop.METHODS)}")
        return eqx.tree_at(lambda m: m.gradient, self, method)

    def clipped(self) -> "ExactLIFNetwork":
        """The same network with its delays projected into ``[0, max_delay]``."""
        clipped = eqx.tree_at(lambda m: m.delays, self, tuple(jnp.clip(d, 0.0, self.max_delay) for d in self.delays))
        if self.rec_delays is None:
            return clipped
        return eqx.tree_at(lambda m: m.rec_delays, clipped,
                           tuple(jnp.clip(d, 1.0, self.max_delay) for d in self.rec_delays))

    def __call__(self, spikes: Float[Array, "steps channels"], times: Float[Array, "steps channels"] | None = None,
                 *, key: PRNGKeyArray | None = None) -> tuple[Float[Array, " classes"], dict]:
        del key  # deterministic: no dropout (the trainer hands every model a key)
        _refuse_scheduled(self.queue)
        channels = self.weights[0].shape[1]
        if spikes.ndim != 2 or spikes.shape[1] != channels:
            raise ValueError(f"ExactLIFNetwork: `spikes` must be (steps, {channels}), got {spikes.shape}")
        steps = spikes.shape[0]
        times_in, left_out = eventprop.input_times(spikes, times, self.input_slots)
        delays = tuple(jnp.clip(d, 0.0, self.max_delay) for d in self.delays)
        recurrent = None
        if self.rec_weights is not None:
            recurrent = tuple((w, jnp.clip(d, 1.0, self.max_delay)) for w, d in zip(self.rec_weights, self.rec_delays))
            recurrent = recurrent + (None,)  # the readout layer has none
        first_spike = self.readout == "first_spike"
        v, spike_times, counts = eventprop.network(
            self.weights, delays, times_in.astype(self.weights[0].dtype), cell=self.cell, steps=steps,
            method=self.gradient, spiking_out=first_spike, recurrent=recurrent, queue=self.queue,
            surrogate_fn=neurons.surrogate(self.surrogate, self.surrogate_slope))
        if self.readout == "max_membrane":
            logits = v.max(0)
        elif self.readout == "sum_membrane":
            logits = v.mean(0)
        else:
            first = spike_times[-1][:, 0]
            logits = -jnp.where(jnp.isfinite(first), first, float(steps))
        hidden = spike_times[:len(self.weights) - 1]
        stats = {"spikes": sum(jnp.isfinite(t).sum() for t in hidden),
                 "neuron_counts": jnp.concatenate([eventprop.discounted_counts(t, steps) for t in hidden]),
                 # synaptic operations: each layer's input spikes times its fan-out (recurrent ones too)
                 "synops": sum(jnp.isfinite(t).sum() * w.shape[0] for t, w in zip((times_in, *hidden), self.weights))
                 + sum(jnp.isfinite(t).sum() * w.shape[0] for t, w in zip(hidden, self.rec_weights or ())),
                 "dropped": sum(c["overflow"] + c["queue_dropped"] for c in counts) + left_out.sum(),
                 "pinned": sum(c["pinned"] for c in counts)}
        return logits, stats


# -- pretrained variants (zoo.list_models("lif_network.*")); each with its no-delay ablation -----------------
register(PretrainedEntry(
    "lif_network.yinyang",
    ("model=lif_network", "trainer=eventprop", "dataset=yinyang", "max_delay=8", "model.hidden=[400]",
     "model.max_spikes=16", "model.weight_scale=1.5", "optim.lr=0.002", "optim.lr_delays=0.05",
     "optim.cosine_decay=true", "trainer.epochs=30", "trainer.batch_size=32", "dataset.examples=6250"),
    "Exact-spike-time LIF network (5-400-3: twice EventProp's Yin-Yang anchor) with learned delays on Yin-Yang "
    "(5,000 training points), trained with EventProp."),
    with_ablation=True)
