"""Sorted array of ``capacity`` arrival times (a priority queue by insertion)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from .base import Delivery, LaneState, SpikeQueue, check_config, delivery_from_lanes, empty_times, zeros_count


class SortedArray(SpikeQueue):
    """Keeps each queue's pending arrival times sorted, earliest first, in ``capacity`` lanes.

    Accepts spikes in any order (heterogeneous delays). Push is a branch-free merge of one value
    into the sorted lanes; pop delivers the due prefix (every spike due, several per step) and
    shifts the rest left with a barrel shifter. When full, the spike that would arrive last (new or
    pending) is dropped and counted. Element moves are selections, so the stored times carry their
    exact tangents (no min/max, whose derivative splits ties).
    """

    capacity: int = eqx.field(static=True)
    max_delay: float = eqx.field(static=True)
    validate: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        check_config("SortedArray", self.max_delay, self.capacity)

    def init(self, shape=()) -> LaneState:
        return LaneState(empty_times(self.capacity, tuple(shape), self.dtype), zeros_count(tuple(shape)))

    def _insert(self, state, arrival, step, mask):
        t = state.times
        before = jnp.concatenate([jnp.full_like(t[:1], -jnp.inf), t[:-1]])
        # lane k of the merge: t[k] if the new value sorts after it, else the new value if it sorts
        # after t[k-1], else t[k-1] (shifted right); ties keep the pending spike first.
        merged = jnp.where(arrival < t, jnp.where(arrival >= before, arrival, before), t)
        full = jnp.isfinite(t[-1])
        return LaneState(jnp.where(mask, merged, t), state.dropped + (mask & full))

    def _pop(self, state, now) -> tuple[LaneState, Delivery]:
        due = state.times <= now  # a prefix, since the lanes are sorted
        run = due.sum(0, dtype=jnp.int32)
        times, bit = state.times, 1
        while bit <= self.capacity:  # shift left by `run` (< 2 * capacity), one power of two at a time
            shifted = jnp.concatenate([times[bit:], jnp.full_like(times[:bit], jnp.inf)])[: self.capacity]
            times = jnp.where((run & bit) > 0, shifted, times)
            bit *= 2
        return LaneState(times, state.dropped), delivery_from_lanes(state.times, due, now)

    def pending(self, state):
        return state.pending()
