"""FIFO ring buffer of ``capacity`` arrival times."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .base import CapacityQueue, Delivery, deliver, empty_lanes, lane_sum, zeros_count


class FIFOState(eqx.Module):
    times: tuple[Float[Array, "*shape"], ...]  # one array per lane, +inf where free
    head: Int[Array, "*shape"]  # lane of the oldest pending spike
    size: Int[Array, "*shape"]
    last: Float[Array, "*shape"]  # arrival time of the newest pending spike
    dropped: Int[Array, "*shape"]


class FIFORing(CapacityQueue):
    """First in, first out, with room for ``capacity`` pending spikes per queue.

    Made for a fixed delay per queue (one synapse, or one axon), where spikes arrive in the order
    they were emitted. The ring keeps each queue's pending arrival times non-decreasing from head to
    tail, so the spikes due in a step are exactly the run at the head: ``pop`` delivers all of them
    (several per step if several are due) without searching. Dropped and counted: a spike pushed
    while the ring is full, and a spike that would arrive before the newest pending one (only
    possible when a queue's delay changes mid-simulation; use `SortedArray` or `BinaryHeap` there).
    A spike arriving at the same time as the newest pending one is accepted (the order is kept).
    """


    def init(self, shape=()) -> FIFOState:
        shape = tuple(shape)
        zero = zeros_count(shape)
        return FIFOState(empty_lanes(self.capacity, shape, self.dtype), zero, zero,
                         jnp.full(shape, -jnp.inf, self.dtype), zero)

    def _insert(self, state, now, arrival, step, mask):
        rejected = (state.size >= self.capacity) | ((state.size > 0) & (arrival < state.last))
        write = mask & ~rejected
        tail = _wrap(state.head + state.size, self.capacity)
        lanes = tuple(jnp.where(write & (tail == k), arrival, t) for k, t in enumerate(state.times))
        return FIFOState(lanes, state.head, state.size + write, jnp.where(write, arrival, state.last),
                         state.dropped + (mask & rejected))

    def _pop(self, state, now) -> tuple[FIFOState, Delivery]:
        due = tuple(t <= now for t in state.times)  # the run at the head, since arrivals are in order
        run = lane_sum(tuple(d.astype(jnp.int32) for d in due))
        delivery = deliver(state.times, due, now)
        lanes = tuple(jnp.where(d, jnp.inf, t) for d, t in zip(due, state.times))
        head = _wrap(state.head + run, self.capacity)
        return FIFOState(lanes, head, state.size - run, state.last, state.dropped), delivery

    def pending(self, state):
        return state.size


def _wrap(index, capacity):
    """``index mod capacity`` for ``0 <= index < 2 * capacity``, without an integer division."""
    return jnp.where(index >= capacity, index - capacity, index)
