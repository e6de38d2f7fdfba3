"""Reference event simulator for the queue kinds: one Python object per queue, heapq and deques.

Independent of `queues`' implementation: it restates each kind's policy (documented in the kind's
docstring) in the most direct way. Arrival times are float32 sums, as in the library.
"""

from __future__ import annotations

import heapq
import math
from collections import deque

import numpy as np


def delivery_step(arrival: np.float32, now: int) -> int:
    return max(math.ceil(float(arrival)), now + 1)


class DelayLine:
    def __init__(self, **_):
        self.slots: dict[int, list] = {}
        self.dropped = 0

    def push(self, a, now):
        self.slots.setdefault(delivery_step(a, now), []).append(a)

    def pop(self, now):
        return self.slots.pop(now, [])

    def pending(self):
        return sum(map(len, self.slots.values()))


class FIFORing:
    def __init__(self, capacity, **_):
        self.q, self.capacity, self.dropped = deque(), capacity, 0

    def push(self, a, now):
        if len(self.q) == self.capacity or (self.q and a < self.q[-1]):
            self.dropped += 1  # full, or out of arrival order
        else:
            self.q.append(a)

    def pop(self, now):
        out = []
        while self.q and self.q[0] <= now:
            out.append(self.q.popleft())
        return out

    def pending(self):
        return len(self.q)


class _Heap:
    def __init__(self, capacity, **_):
        self.h, self.capacity, self.dropped = [], capacity, 0

    def pop(self, now):
        out = []
        while self.h and self.h[0] <= now:
            out.append(heapq.heappop(self.h))
        return out

    def pending(self):
        return len(self.h)


class BinaryHeap(_Heap):
    def push(self, a, now):
        if len(self.h) == self.capacity:
            self.dropped += 1  # the new spike
        else:
            heapq.heappush(self.h, a)


class SortedArray(_Heap):
    def push(self, a, now):
        self.dropped += len(self.h) == self.capacity
        if len(self.h) < self.capacity:
            heapq.heappush(self.h, a)
        elif a < max(self.h):  # the latest arrival of pending + new is the one dropped
            self.h.remove(max(self.h))
            heapq.heapify(self.h)
            heapq.heappush(self.h, a)


class LossyRing:
    def __init__(self, capacity, **_):
        self.slots, self.capacity, self.dropped = {}, capacity, 0

    def push(self, a, now):
        slot = delivery_step(a, now) % self.capacity
        self.dropped += slot in self.slots  # the older spike is overwritten
        self.slots[slot] = a

    def pop(self, now):
        slot = now % self.capacity
        if slot in self.slots and self.slots[slot] <= now:
            return [self.slots.pop(slot)]
        return []

    def pending(self):
        return len(self.slots)


class SingleSpike:
    def __init__(self, keep="newest", **_):
        self.spike, self.keep, self.dropped = None, keep, 0

    def push(self, a, now):
        if self.spike is not None:
            self.dropped += 1
            if self.keep == "oldest":
                return
        self.spike = a

    def pop(self, now):
        if self.spike is not None and self.spike <= now:
            out, self.spike = [self.spike], None
            return out
        return []

    def pending(self):
        return int(self.spike is not None)


class Bitmask:
    def __init__(self, **_):
        self.slots, self.dropped = {}, 0

    def push(self, a, now):
        step = delivery_step(a, now)
        if step % 32 in self.slots:
            self.dropped += 1  # the new spike
        else:
            self.slots[step % 32] = step

    def pop(self, now):
        step = self.slots.get(now % 32)
        if step is not None and step <= now:
            del self.slots[now % 32]
            return [np.float32(now)]  # a bit has no sub-step time
        return []

    def pending(self):
        return len(self.slots)


ORACLES = {
    "delay_line": DelayLine, "fifo_ring": FIFORing, "lossy_ring": LossyRing,
    "sorted_array": SortedArray, "binary_heap": BinaryHeap, "single_spike": SingleSpike,
    "bitmask": Bitmask,
}


def run_oracle(kind, config, spikes, delays, times):
    """Pop-then-push over ``steps``; returns per-step per-queue lists of delivered arrival times,
    and the final dropped and pending counts per queue."""
    steps, n = spikes.shape
    queues = [ORACLES[kind](**config) for _ in range(n)]
    delivered = []
    for now in range(steps):
        delivered.append([q.pop(now) for q in queues])
        for i, q in enumerate(queues):
            if spikes[now, i]:
                q.push(np.float32(times[now, i]) + np.float32(delays[now, i]), now)
    return delivered, np.array([q.dropped for q in queues]), np.array([q.pending() for q in queues])
