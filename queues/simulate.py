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


def checkpointed_scan(f, init, xs, chunk: int | None = None, length: int | None = None):
    """`jax.lax.scan` with chunked rematerialisation, for reverse mode over long simulations.

    The ``steps`` iterations run as ``steps // chunk`` chunks whose insides are recomputed in the
    backward pass (`jax.checkpoint`): reverse mode then stores one carry per chunk plus one chunk of
    residuals, ``O(steps / chunk + chunk)`` instead of ``O(steps)``, for about one extra forward
    pass. ``chunk=None`` picks ``round(sqrt(steps))``, which minimises that sum; ``chunk=1`` is a
    plain scan. A remainder shorter than ``chunk`` runs as a plain scan at the end.
    """
    leaves = jax.tree_util.tree_leaves(xs)
    steps = length if length is not None else leaves[0].shape[0]
    if chunk is None:
        chunk = max(1, round(steps**0.5))
    if chunk < 1:
        raise ValueError(f"checkpointed_scan: `chunk` must be >= 1, got {chunk}")
    if chunk == 1 or steps < 2 * chunk:
        return jax.lax.scan(f, init, xs, length=steps)
    blocks, main = steps // chunk, (steps // chunk) * chunk
    head = jax.tree_util.tree_map(lambda x: x[:main].reshape(blocks, chunk, *x.shape[1:]), xs)
    tail = jax.tree_util.tree_map(lambda x: x[main:], xs)

    @jax.checkpoint
    def run_chunk(carry, block):
        return jax.lax.scan(f, carry, block)

    carry, ys = jax.lax.scan(run_chunk, init, head)
    ys = jax.tree_util.tree_map(lambda y: y.reshape(main, *y.shape[2:]), ys)
    if main == steps:
        return carry, ys
    carry, ys_tail = jax.lax.scan(f, carry, tail)
    return carry, jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), ys, ys_tail)
