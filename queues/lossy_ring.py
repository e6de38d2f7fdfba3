"""Lossy hashed ring: a spike due at step ``s`` lives in slot ``s mod capacity``."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, UInt32

from .base import CapacityQueue, Clock, Delivery, empty_lanes, zeros_count

MAX_CAPACITY = 32  # slot occupancy is one bit of a uint32 per queue


class LossyRingState(eqx.Module):
    times: tuple[Float[Array, "*shape"], ...]  # slot k: arrival time of a spike due at a step = k mod capacity
    occupied: UInt32[Array, "*shape"]  # bit k set: slot k holds a pending spike
    next_hits: Float[Array, "*shape"]  # delivery due at step `clock.last + 1`, prefetched
    next_times: Float[Array, "*shape"]
    clock: Clock  # step of the last pop/push
    dropped: Int[Array, "*shape"]


class LossyRing(CapacityQueue):
    """``capacity`` slots (at most 32) indexed by delivery step modulo ``capacity``.

    Push writes one slot; two pending spikes whose delivery steps are congruent modulo
    ``capacity`` collide, and the newer overwrites the older, which is counted as dropped ("newer" is
    the spike pushed later, whatever the two arrival times). With
    ``capacity >= max_delay`` (in steps) only spikes due in the same step collide. Every slot holds
    one residue class, so at most one spike is due per step: ``pop`` delivers a single lane.

    Occupancy lives in a per-queue bitmask, and the delivery of step ``now + 1`` is read at the end of
    each pop/push: slot arrays are then only written by push, and each is read and written by one
    fused loop, which spares XLA:CPU a copy of every slot per step. Consequently ``pop`` must be
    called at consecutive steps and ``push`` at the step of the last pop (checked when ``validate``).
    """

    def __check_init__(self):
        if self.capacity > MAX_CAPACITY:
            raise ValueError(f"LossyRing: `capacity` must be <= {MAX_CAPACITY}, got {self.capacity}; "
                             "use DelayLine for a lossless slot per step of delay")

    def init(self, shape=()) -> LossyRingState:
        shape = tuple(shape)
        zero = jnp.zeros(shape, self.dtype)
        return LossyRingState(empty_lanes(self.capacity, shape, self.dtype), jnp.zeros(shape, jnp.uint32),
                              zero, zero, Clock.fresh(), zeros_count(shape))

    def _insert(self, state, now, arrival, step, mask):
        slot = step % self.capacity
        bit = jnp.left_shift(jnp.uint32(1), slot.astype(jnp.uint32))
        lost = mask & ((state.occupied & bit) != 0)
        lanes = tuple(jnp.where(mask & (slot == k), arrival, t) for k, t in enumerate(state.times))
        occupied = state.occupied | jnp.where(mask, bit, jnp.uint32(0))
        return self._prefetch(lanes, occupied, state.clock.pushed(now), state.dropped + lost)

    def _pop(self, state, now) -> tuple[LossyRingState, Delivery]:
        hits = state.next_hits
        delivery = Delivery(hits=(hits,), times=(jnp.where(hits > 0, state.next_times, now.astype(self.dtype)),))
        bit = jnp.left_shift(jnp.uint32(1), (now % self.capacity).astype(jnp.uint32))
        occupied = jnp.where(hits > 0, state.occupied & ~bit, state.occupied)
        return self._prefetch(state.times, occupied, Clock.popped(now), state.dropped), delivery

    def _prefetch(self, lanes, occupied, clock, dropped) -> LossyRingState:
        """State whose prefetched delivery is the one due at the step after the last pop (in slot
        ``due_at mod K``)."""
        due_at = clock.last + 1
        slot = due_at % self.capacity
        time = jnp.zeros(dropped.shape, self.dtype)
        for k, t in enumerate(lanes):
            time = jnp.where(slot == k, t, time)
        held = (jnp.right_shift(occupied, slot.astype(jnp.uint32)) & 1) != 0
        hit = held & (time <= due_at)  # the slot may hold a spike due one or more turns later
        return LossyRingState(lanes, occupied, hit.astype(self.dtype), time, clock, dropped)

    def pending(self, state):
        return jax.lax.population_count(state.occupied).astype(jnp.int32)
