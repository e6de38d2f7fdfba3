"""A layer of synapses with learnable weights and delays, delivered through a queue (or scheduled at once)."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

import queues

from .. import neurons


class DelayedSynapses(eqx.Module):
    """``pre -> post`` synapses, each with a weight and a continuous delay in ``[0, queue.max_delay]``.

    One queue per synapse (a ``(pre, post)`` layer of ``queue``). Per step: `deliver` pops the spikes
    due and returns their exact jumps of the postsynaptic membrane and current (`zoo.neurons`);
    `send` pushes the presynaptic spikes of the step with their exact times. With a
    `queues.Scheduled` instead of a queue, `scheduled` computes the jumps of every step at once
    from a presynaptic raster known in advance (feed-forward input).
    """

    weight: Float[Array, "post pre"]
    delays: Float[Array, "pre post"]
    queue: queues.SpikeQueue | queues.Scheduled
    tau_syn: float = eqx.field(static=True)
    tau_mem: float = eqx.field(static=True)

    def __init__(self, pre: int, post: int, queue: queues.SpikeQueue | queues.Scheduled, *, key: PRNGKeyArray, tau_syn: float,
                 tau_mem: float, weight_scale: float = 2.0, init_delay: float | None = None):
        k_weight, k_delay = jax.random.split(key)
        self.weight = jax.random.normal(k_weight, (post, pre)) * (weight_scale / math.sqrt(pre))
        if init_delay is None:
            self.delays = jax.random.uniform(k_delay, (pre, post), minval=0.0, maxval=queue.max_delay)
        else:
            self.delays = jnp.full((pre, post), float(init_delay))
        self.queue, self.tau_syn, self.tau_mem = queue, tau_syn, tau_mem

    def init(self):
        return self.queue.init(self.delays.shape)

    def scheduled(self, spikes: Float[Array, "steps pre"], times: Float[Array, "steps pre"]
                  ) -> tuple[Float[Array, "steps post"], Float[Array, "steps post"], Int[Array, ""]]:
        """``(membrane jumps, current jumps, dropped)`` of every step at once (`queues.Scheduled`): what
        `deliver` would return step by step for the presynaptic ``spikes`` sent at ``times``."""
        delays = jnp.clip(self.delays, 0.0, self.queue.max_delay)
        schedule = self.queue.schedule(spikes, delays, times)
        kernel = neurons.membrane_kernel(self.tau_syn, self.tau_mem)
        return (schedule.kernel(self.weight, kernel), schedule.exponential(self.weight, self.tau_syn),
                schedule.dropped)

    def clipped(self) -> "DelayedSynapses":
        """The same synapses with their delays projected into ``[0, max_delay]``."""
        return eqx.tree_at(lambda s: s.delays, self, jnp.clip(self.delays, 0.0, self.queue.max_delay))

    def deliver(self, state, now) -> tuple[object, Float[Array, " post"], Float[Array, " post"]]:
        """Pop step ``now``: ``(state, membrane jump, current jump)`` of the postsynaptic neurons."""
        state, delivery = self.queue.pop(state, now)
        kernel = neurons.membrane_kernel(self.tau_syn, self.tau_mem)
        v_jump = jnp.einsum("qp,pq->q", self.weight, delivery.kernel(now, kernel))
        i_jump = jnp.einsum("qp,pq->q", self.weight, delivery.exponential(now, self.tau_syn))
        return state, v_jump, i_jump

    def send(self, state, now, fire: Bool[Array, " pre"], times: Float[Array, " pre"]):
        """Push the spikes of step ``now`` (``fire``) emitted at ``times`` in ``(now-1, now]``."""
        pre, post = self.delays.shape
        delays = jnp.clip(self.delays, 0.0, self.queue.max_delay)
        return self.queue.push(state, now, delays, jnp.broadcast_to(fire[:, None], (pre, post)),
                               jnp.where(fire, times, now)[:, None])


def label_delays(params) -> object:
    """Optimiser labels: ``"delays"`` for every leaf whose field name ends in ``delays`` (synaptic
    `DelayedSynapses.delays`, axonal ``map_delays``), ``"weights"`` otherwise."""
    def label(path, _):
        names = [key.name for key in path if isinstance(key, jax.tree_util.GetAttrKey)]  # skips tuple indices
        return "delays" if names and names[-1].endswith("delays") else "weights"

    return jax.tree_util.tree_map_with_path(label, params)


def project_delays(model):
    """``model`` with the delays of every module that bounds them (a ``clipped()`` method: synapse
    layers, `ExactLIFNetwork`) projected into their ``[0, max_delay]``."""
    bounded = lambda m: isinstance(m, eqx.Module) and hasattr(m, "clipped")  # noqa: E731
    return jax.tree_util.tree_map(lambda m: m.clipped() if bounded(m) else m, model, is_leaf=bounded)


DELIVERY = (queues.SpikeQueue, queues.Scheduled)
"""What a delayed layer delivers through: a queue kind, or scheduled delivery."""


def is_delivery(x) -> bool:
    return isinstance(x, DELIVERY)


def require_stepped(model_name: str, queue) -> None:
    """Refuse `queues.Scheduled` where spikes are made while the simulation runs."""
    if isinstance(queue, queues.Scheduled):
        raise ValueError(f"{model_name}: queue=scheduled needs every spike before the layer runs (feed-forward "
                         "input: model=delayed_ffn or delayed_conv); this model's spikes are made while it runs, "
                         f"so it needs a queue kind ({', '.join(queues.GRADIENT_KINDS)})")


def swap_queues(model, make_queue):
    """``model`` with every queue (or `queues.Scheduled`) replaced by ``make_queue(max_delay)`` (e.g. to
    benchmark the kinds)."""
    return jax.tree_util.tree_map(lambda q: make_queue(q.max_delay) if is_delivery(q) else q, model,
                                  is_leaf=is_delivery)
