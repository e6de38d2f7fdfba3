"""FIFO ring buffer of ``capacity`` arrival times."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .base import Delivery, SpikeQueue, check_config, delivery_from_lanes, empty_times, lane_ids, zeros_count


class FIFOState(eqx.Module):
    times: Float[Array, "capacity *shape"]  # +inf in free lanes
    head: Int[Array, "*shape"]  # lane of the oldest pending spike
    size: Int[Array, "*shape"]
    dropped: Int[Array, "*shape"]


class FIFORing(SpikeQueue):
    """First in, first out, with room for ``capacity`` pending spikes per queue.

    Made for a fixed delay per queue (one synapse, or one axon), where spikes leave in the order
    they came. ``pop`` delivers the run of due spikes at the head, several per step if several are
    due; a spike pushed out of arrival order waits behind the earlier-pushed spikes (delivered late,
    with its true arrival time). When full, the new spike is dropped and counted.
    """

    capacity: int = eqx.field(static=True)
    max_delay: float = eqx.field(static=True)
    validate: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        check_config("FIFORing", self.max_delay, self.capacity)

    def init(self, shape=()) -> FIFOState:
        shape = tuple(shape)
        zero = zeros_count(shape)
        return FIFOState(empty_times(self.capacity, shape, self.dtype), zero, zero, zero)

    def _insert(self, state, arrival, step, mask):
        full = state.size >= self.capacity
        write = mask & ~full
        tail = (state.head + state.size) % self.capacity
        lane = write & (tail == lane_ids(self.capacity, mask.ndim))
        return FIFOState(jnp.where(lane, arrival, state.times), state.head,
                         state.size + write, state.dropped + (mask & full))

    def _pop(self, state, now) -> tuple[FIFOState, Delivery]:
        order = (lane_ids(self.capacity, state.head.ndim) - state.head) % self.capacity
        blocked = (order < state.size) & (state.times > now)
        run = jnp.where(blocked, order, state.size).min(0)  # due spikes ahead of the first not-due one
        due = order < run
        delivery = delivery_from_lanes(state.times, due, now)
        state = FIFOState(jnp.where(due, jnp.inf, state.times), (state.head + run) % self.capacity,
                          state.size - run, state.dropped)
        return state, delivery

    def pending(self, state):
        return state.size
