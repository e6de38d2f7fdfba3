"""Single-spike queue: at most one pending spike per queue."""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax.numpy as jnp

from .base import Delivery, LaneState, SpikeQueue, check_config, deliver, empty_lanes, zeros_count


class SingleSpike(SpikeQueue):
    """One pending spike per queue; a spike pushed while one is pending costs one of the two.

    ``keep="newest"`` overwrites the pending spike (it is counted as dropped); ``keep="oldest"``
    drops the new one. The cheapest kind; it loses spikes once ``rate x delay`` approaches 1.
    Delivers at most one spike per step (it never holds more).
    """

    max_delay: float = eqx.field(static=True)
    keep: Literal["newest", "oldest"] = eqx.field(static=True, default="newest")
    validate: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        check_config("SingleSpike", self.max_delay)
        if self.keep not in ("newest", "oldest"):
            raise ValueError(f"SingleSpike: `keep` must be 'newest' or 'oldest', got {self.keep!r}")

    def init(self, shape=()) -> LaneState:
        return LaneState(empty_lanes(1, tuple(shape), self.dtype), zeros_count(tuple(shape)))

    def _insert(self, state, now, arrival, step, mask):
        (held_time,) = state.times
        held = jnp.isfinite(held_time)
        write = mask if self.keep == "newest" else mask & ~held
        return LaneState((jnp.where(write, arrival, held_time),), state.dropped + (mask & held))

    def _pop(self, state, now) -> tuple[LaneState, Delivery]:
        (time,) = state.times
        due = time <= now
        return LaneState((jnp.where(due, jnp.inf, time),), state.dropped), deliver((time,), (due,), now)

    def pending(self, state):
        return state.pending()
