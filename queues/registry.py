"""Queue kinds by name, so configs and command lines can choose one with a string."""

from __future__ import annotations

import difflib
from typing import Any

from .base import SpikeQueue
from .binary_heap import BinaryHeap
from .bitmask import Bitmask
from .delay_line import DelayLine
from .fifo_ring import FIFORing
from .lossy_ring import LossyRing
from .single_spike import SingleSpike
from .sorted_array import SortedArray

KINDS: dict[str, type[SpikeQueue]] = {
    "delay_line": DelayLine,
    "fifo_ring": FIFORing,
    "lossy_ring": LossyRing,
    "sorted_array": SortedArray,
    "binary_heap": BinaryHeap,
    "single_spike": SingleSpike,
    "bitmask": Bitmask,
}
"""Every queue kind, by the name used in configs."""

GRADIENT_KINDS = tuple(k for k in KINDS if k != "bitmask")
"""Kinds that carry gradients w.r.t. spike times and delays."""


def make_queue(kind: str, **config: Any) -> SpikeQueue:
    """Build a queue by kind name, e.g. ``make_queue("fifo_ring", capacity=4, max_delay=80)``."""
    try:
        cls = KINDS[kind]
    except KeyError:
        close = difflib.get_close_matches(str(kind), KINDS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown queue kind {kind!r}{hint} (kinds: {', '.join(KINDS)})") from None
    return cls(**config)
