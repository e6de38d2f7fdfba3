"""Lossy hashed ring: a spike due at step ``s`` lives in slot ``s mod capacity``."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .base import (Delivery, LaneState, SpikeQueue, check_config, delivery_from_lanes,
                   empty_times, lane_ids, zeros_count)


class LossyRing(SpikeQueue):
    """``capacity`` slots indexed by delivery step modulo ``capacity``.

    Push and pop touch one slot, whatever the capacity: pop reads the single row ``now mod
    capacity`` of the whole layer. Two pending spikes whose delivery steps are congruent modulo
    ``capacity`` collide: the newer overwrites the older, which is counted as dropped. With
    ``capacity > max_delay`` (in steps) nothing can collide except two spikes due in the same
    step. Delivers at most one spike per queue and step.
    """

    capacity: int = eqx.field(static=True)
    max_delay: float = eqx.field(static=True)
    validate: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        check_config("LossyRing", self.max_delay, self.capacity)

    def init(self, shape=()) -> LaneState:
        return LaneState(empty_times(self.capacity, tuple(shape), self.dtype), zeros_count(tuple(shape)))

    def _insert(self, state, arrival, step, mask):
        slot = step % self.capacity
        write = mask & (slot == lane_ids(self.capacity, mask.ndim))
        lost = (write & jnp.isfinite(state.times)).sum(0, dtype=jnp.int32)
        return LaneState(jnp.where(write, arrival, state.times), state.dropped + lost)

    def _pop(self, state, now) -> tuple[LaneState, Delivery]:
        slot = now % self.capacity
        row = jax.lax.dynamic_index_in_dim(state.times, slot, keepdims=True)
        due = row <= now  # the slot may hold a spike due one or more turns later
        times = jax.lax.dynamic_update_index_in_dim(state.times, jnp.where(due, jnp.inf, row), slot, 0)
        return LaneState(times, state.dropped), delivery_from_lanes(row, due, now)

    def pending(self, state):
        return state.pending()
