"""Sorted array of ``capacity`` arrival times (a priority queue by insertion)."""

from __future__ import annotations

import jax.numpy as jnp

from .base import CapacityQueue, Delivery, LaneState, deliver, lane_sum


class SortedArray(CapacityQueue):
    """Keeps each queue's pending arrival times sorted, earliest first, in ``capacity`` lanes.

    Accepts spikes in any order (heterogeneous delays). Push is a branch-free merge of one value
    into the sorted lanes; pop delivers the due prefix (every spike due, several per step) and
    shifts the rest left with a barrel shifter. When full, the spike that would arrive last (new or
    pending) is dropped and counted; among spikes tied for the latest arrival the pending one is kept
    and the new one dropped (which matters for gradients: the tangent kept is the pending spike's).
    A new spike tied with pending ones sorts after them. Element moves are selections, so the stored times carry their
    exact tangents (no min/max, whose derivative splits ties).
    """


    def _insert(self, state, now, arrival, step, mask):
        lanes = state.times
        # lane k of the merge: lanes[k] if the new spike sorts after it, else the new spike if it sorts
        # after lanes[k-1], else lanes[k-1] (shifted right); ties keep the pending spike first.
        merged, before = [], -jnp.inf
        for t in lanes:
            merged.append(jnp.where(mask & (arrival < t), jnp.where(arrival >= before, arrival, before), t))
            before = t
        full = jnp.isfinite(lanes[-1])
        return LaneState(tuple(merged), state.dropped + (mask & full))

    def _pop(self, state, now) -> tuple[LaneState, Delivery]:
        due = tuple(t <= now for t in state.times)  # a prefix, since the lanes are sorted
        run = lane_sum(tuple(d.astype(jnp.int32) for d in due))
        lanes, k, bit = list(state.times), self.capacity, 1
        while bit <= k:  # shift left by `run` (<= capacity), one power of two at a time
            shift = (run & bit) > 0
            lanes = [jnp.where(shift, lanes[i + bit] if i + bit < k else jnp.inf, lanes[i]) for i in range(k)]
            bit *= 2
        return LaneState(tuple(lanes), state.dropped), deliver(state.times, due, now)
