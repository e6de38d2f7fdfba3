"""Dense delay line: one slot per step of delay, never drops."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .base import Delivery, SpikeQueue, check_config, zeros_count


class SlotState(eqx.Module):
    counts: Float[Array, "slots *shape"]  # spikes due at each step modulo `slots`
    time_sums: Float[Array, "slots *shape"]  # sum of their arrival times
    dropped: Int[Array, "*shape"]  # always zero: kept for the uniform conservation check


class DelayLine(SpikeQueue):
    """Ring of ``ceil(max_delay)`` slots per queue, slot = delivery step mod slots.

    Holds any number of spikes, so it never drops; memory is ``slots x queues``. The layout is
    slot-major, so pop reads and clears one contiguous row of the whole layer, and push is one
    scatter. Spikes that arrive in the same step share a slot and are delivered together as one
    lane with their count and their *mean* arrival time; with one spike per slot (always the case
    for a fixed delay and integer spike times) gradients are exact, otherwise each spike receives
    the gradient at the slot's mean time.
    """

    max_delay: float = eqx.field(static=True)
    validate: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        check_config("DelayLine", self.max_delay)

    @property
    def slots(self) -> int:
        # delivery steps lie in now+1 .. now+ceil(max_delay): that many distinct slots suffice
        return max(1, math.ceil(self.max_delay))

    def init(self, shape=()) -> SlotState:
        shape = tuple(shape)
        zeros = jnp.zeros((self.slots, *shape), self.dtype)
        return SlotState(zeros, zeros, zeros_count(shape))

    def _insert(self, state, arrival, step, mask):
        shape = mask.shape
        slot = (step % self.slots).reshape(-1)
        queue = jnp.arange(slot.size)

        def add(buffer, value):
            flat = buffer.reshape(self.slots, -1)
            return flat.at[slot, queue].add(value.reshape(-1), mode="promise_in_bounds").reshape(buffer.shape)

        return SlotState(add(state.counts, mask.astype(self.dtype)),
                         add(state.time_sums, jnp.where(mask, arrival, 0)), state.dropped)

    def _pop(self, state, now) -> tuple[SlotState, Delivery]:
        slot = now % self.slots
        count = jax.lax.dynamic_index_in_dim(state.counts, slot, keepdims=True)
        total = jax.lax.dynamic_index_in_dim(state.time_sums, slot, keepdims=True)
        hit = count > 0
        times = jnp.where(hit, total / jnp.where(hit, count, 1), now.astype(self.dtype))
        zero = jnp.zeros_like(count)
        state = SlotState(jax.lax.dynamic_update_index_in_dim(state.counts, zero, slot, 0),
                          jax.lax.dynamic_update_index_in_dim(state.time_sums, zero, slot, 0),
                          state.dropped)
        return state, Delivery(hits=count, times=times)

    def pending(self, state):
        return state.counts.sum(0).astype(jnp.int32)
