"""Autodifferentiable spike event queues for delayed spike delivery in JAX.

Every kind shares one functional API (see `queues.base`)::

    q = queues.FIFORing(capacity=4, max_delay=80)
    state = q.init(shape)                          # a whole layer of queues
    state, delivery = q.pop(state, now)            # every spike due at step `now`
    state = q.push(state, now, delays, mask, times)  # spikes emitted in step `now`

and works under ``jit``, ``vmap``, ``lax.scan``, ``grad``, ``jacfwd`` and ``jacrev``. Where every push is
known before the first pop (a feed-forward layer), `Scheduled` computes every pop at once instead.
"""

from .base import Delivery, LaneState, SpikeQueue, lossless_capacity
from .binary_heap import BinaryHeap
from .bitmask import Bitmask, BitmaskState
from .delay_line import DelayLine, SlotState
from .fifo_ring import FIFORing, FIFOState
from .lossy_ring import LossyRing, LossyRingState
from .registry import GRADIENT_KINDS, KINDS, make_queue
from .scheduled import Schedule, Scheduled
from .simulate import checkpointed_scan, simulate
from .single_spike import SingleSpike
from .sorted_array import SortedArray

__all__ = [
    "BinaryHeap", "Bitmask", "BitmaskState", "DelayLine", "Delivery", "FIFORing", "FIFOState",
    "GRADIENT_KINDS", "KINDS", "LaneState", "LossyRing", "LossyRingState", "SingleSpike", "SlotState", "SortedArray",
    "Schedule", "Scheduled", "SpikeQueue", "checkpointed_scan", "lossless_capacity", "make_queue", "simulate",
]
