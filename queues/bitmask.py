"""Bitmask queue: one bit per step of delay in a 32-bit word, for short delays."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int, UInt32

from .base import Clock, Delivery, SpikeQueue, check_config, zeros_count

WORD_BITS = 32


class BitmaskState(eqx.Module):
    bits: UInt32[Array, "*shape"]  # bit s set: a spike is due at a step congruent to s mod 32
    dropped: Int[Array, "*shape"]
    clock: Clock  # step of the last pop/push


class Bitmask(SpikeQueue):
    """32 one-bit slots per queue (4 bytes), delivery step mod 32; delays up to 32 steps.

    The most compact kind. A bit cannot say *when* within a step a spike arrives, nor hold two
    spikes due in the same step: the second is dropped and counted, and spikes are delivered at
    the step time. It therefore carries no gradient w.r.t. spike times or delays; differentiating
    through it raises an error instead of returning a silent zero.

    A bit stands for every step congruent to it modulo 32, so ``pop`` must be called at consecutive
    steps (a skipped pop would leave its spikes for 32 steps later) and ``push`` at the step of the
    last pop; both are checked by the next pop when ``validate`` (see `Clock`).
    """

    max_delay: float = eqx.field(static=True)
    validate: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        check_config("Bitmask", self.max_delay)
        if math.ceil(self.max_delay) > WORD_BITS:
            raise ValueError(f"Bitmask: `max_delay` must be <= {WORD_BITS} steps, got {self.max_delay}; "
                             "use DelayLine or a capacity-based queue for longer delays")

    def init(self, shape=()) -> BitmaskState:
        shape = tuple(shape)
        return BitmaskState(jnp.zeros(shape, jnp.uint32), zeros_count(shape), Clock.fresh())

    def _insert(self, state, now, arrival, step, mask):
        _forbid_tangent(arrival)
        bit = jnp.left_shift(jnp.uint32(1), (step % WORD_BITS).astype(jnp.uint32))
        taken = (state.bits & bit) != 0
        return BitmaskState(state.bits | jnp.where(mask, bit, jnp.uint32(0)), state.dropped + (mask & taken),
                            state.clock.pushed(now))

    def _pop(self, state, now) -> tuple[BitmaskState, Delivery]:
        bit = jnp.left_shift(jnp.uint32(1), (now % WORD_BITS).astype(jnp.uint32))
        hit = (state.bits & bit) != 0
        hits = hit.astype(self.dtype)
        return (BitmaskState(state.bits & ~bit, state.dropped, Clock.popped(now)),
                Delivery(hits=(hits,), times=(jnp.full_like(hits, now),)))

    def pending(self, state):
        return jax.lax.population_count(state.bits).astype(jnp.int32)


@jax.custom_jvp
def _forbid_tangent(x):
    return x


@_forbid_tangent.defjvp
def _forbid_tangent_jvp(primals, tangents):
    raise TypeError("Bitmask carries no gradient w.r.t. spike times or delays (it stores one bit per "
                    "step); use DelayLine, FIFORing, LossyRing, SortedArray, BinaryHeap or SingleSpike "
                    "to differentiate through delayed spikes")
