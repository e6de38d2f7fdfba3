"""Dense delay line: one slot per step of delay, never drops."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .base import Clock, Delivery, SpikeQueue, check_config, zeros_count


class SlotState(eqx.Module):
    counts: Float[Array, "slots *shape"]  # spikes due at each step modulo `slots`
    time_sums: Float[Array, "slots *shape"]  # sum of their arrival times
    next_counts: Float[Array, "*shape"]  # copy of the row due at step `clock.last + 1`
    next_time_sums: Float[Array, "*shape"]
    clock: Clock  # step of the last pop/push
    dropped: Int[Array, "*shape"]  # always zero: kept for the uniform conservation check


class DelayLine(SpikeQueue):
    """Ring of ``ceil(max_delay)`` slots per queue, slot = delivery step mod slots.

    Holds any number of spikes, so it never drops; memory is ``slots x queues``. The layout is
    slot-major: push is one scatter, pop one contiguous row. Spikes that arrive in the same step
    share a slot and are delivered together as one lane with their count and their *mean* arrival
    time; with one spike per slot (always the case for a fixed delay and integer spike times)
    gradients are exact, otherwise each spike receives the gradient at the slot's mean time.

    ``pop`` must be called at consecutive steps (as every simulation loop does), and ``push`` at the
    step of the last pop (both checked by the next pop when ``validate``, see `Clock`): the row due next is read at the end of
    each `pop`/`push`, after the in-place writes. Reading it at the start of
    ``pop`` instead makes XLA copy the whole ``slots x queues`` buffer every step to keep the read
    ordered before the write (measured 3x slower per step on 10k queues x 80 slots, CPU).
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
        rows = jnp.zeros((self.slots, *shape), self.dtype)
        row = jnp.zeros(shape, self.dtype)
        return SlotState(rows, rows, row, row, Clock.fresh(), zeros_count(shape))

    def _insert(self, state, now, arrival, step, mask):
        slot = jnp.broadcast_to(step % self.slots, mask.shape).reshape(-1)
        queue = jnp.arange(slot.size)

        def add(rows, value):
            flat = rows.reshape(self.slots, -1)
            return flat.at[slot, queue].add(value.reshape(-1), mode="promise_in_bounds").reshape(rows.shape)

        counts = add(state.counts, mask.astype(self.dtype))
        time_sums = add(state.time_sums, jnp.where(mask, arrival, 0))  # where broadcasts arrival
        return self._prefetch(counts, time_sums, state.clock.pushed(now), state.dropped)

    def _pop(self, state, now) -> tuple[SlotState, Delivery]:
        count, total = state.next_counts, state.next_time_sums
        hit = count > 0
        times = jnp.where(hit, total / jnp.where(hit, count, 1), now.astype(self.dtype))
        slot = now % self.slots
        empty = jnp.zeros_like(count)[None]
        counts = jax.lax.dynamic_update_index_in_dim(state.counts, empty, slot, 0)
        time_sums = jax.lax.dynamic_update_index_in_dim(state.time_sums, empty, slot, 0)
        state = self._prefetch(counts, time_sums, Clock.popped(now), state.dropped)
        return state, Delivery(hits=(count,), times=(times,))

    def _prefetch(self, counts, time_sums, clock, dropped) -> SlotState:
        """State whose prefetched row is the one due at the step after the last pop."""
        after = (clock.last + 1) % self.slots
        return SlotState(counts, time_sums, jax.lax.dynamic_index_in_dim(counts, after, keepdims=False),
                         jax.lax.dynamic_index_in_dim(time_sums, after, keepdims=False), clock, dropped)

    def pending(self, state):
        return state.counts.sum(0).astype(jnp.int32)
