"""Drive a layer of queues through a spike stream with `jax.lax.scan`."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .base import Delivery, SpikeQueue


def simulate(
    queue: SpikeQueue,
    spikes: Bool[Array, "steps *shape"],
    delays: Float[Array, "*shape"],
    times: Float[Array, "steps *shape"] | None = None,
    state: Any = None,
    start: int = 0,
) -> tuple[Any, Delivery]:
    """Run ``steps`` steps of pop-then-push; return the final state and every step's `Delivery`.

    Step ``start + i`` pops what is due, then pushes ``spikes[i]`` with ``delays`` (and exact
    emission times ``times[i]`` in ``(step-1, step]`` if given). Differentiable w.r.t. ``delays``
    and ``times`` for every kind but `Bitmask`.
    """
    spikes = jnp.asarray(spikes)
    shape = spikes.shape[1:]
    if state is None:
        state = queue.init(shape)

    def step(state, xs):
        now, mask, t = xs
        state, delivery = queue.pop(state, now)
        state = queue.push(state, now, delays, mask, t)
        return state, delivery

    steps = jnp.arange(start, start + spikes.shape[0], dtype=jnp.int32)
    if times is None:
        return jax.lax.scan(lambda s, x: step(s, (x[0], x[1], None)), state, (steps, spikes))
    return jax.lax.scan(step, state, (steps, spikes, jnp.asarray(times)))
