"""A generated task that only delays can solve: the order of two spikes far apart in time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SpikeDataset:
    """Spike times per example and input channel (``inf`` = no spike) with integer labels."""

    times: np.ndarray  # (examples, channels), in steps
    labels: np.ndarray  # (examples,)
    steps: int  # simulation length per example
    classes: int

    def __post_init__(self):
        if self.times.ndim != 2 or self.labels.shape != self.times.shape[:1]:
            raise ValueError(f"SpikeDataset: `times` must be (examples, channels) and `labels` (examples,), "
                             f"got {self.times.shape} and {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.labels)

    def split(self, fraction: float, seed: int = 0) -> tuple["SpikeDataset", "SpikeDataset"]:
        """A deterministic shuffle split into (first, rest) with ``fraction`` of the examples first."""
        order = np.random.default_rng(seed).permutation(len(self))
        cut = int(round(fraction * len(self)))
        pick = lambda idx: SpikeDataset(self.times[idx], self.labels[idx], self.steps, self.classes)  # noqa: E731
        return pick(order[:cut]), pick(order[cut:])


@dataclass(frozen=True)
class DelayTask:
    """Channel A and channel B each spike once, ``interval`` steps apart; the class is their order.

    The interval is several synaptic and membrane time constants long, so the two postsynaptic
    potentials never overlap: without delays a network whose readout is invariant to when things
    happen (maximum or summed membrane, spike count) sees the same two isolated events in both
    classes and stays at chance. Delaying one channel by ``interval`` makes the two coincide in
    one class only. Onsets are uniform in ``[0, jitter)`` plus a sub-step offset; ``noise_channels``
    add one random spike each.
    """

    examples: int = 2048
    interval: float = 60.0
    jitter: int = 16
    noise_channels: int = 2
    seed: int = 0

    def __post_init__(self):
        if self.examples < 2 or self.interval <= 0 or self.jitter < 1 or self.noise_channels < 0:
            raise ValueError(f"DelayTask: need examples >= 2, interval > 0, jitter >= 1, noise_channels >= 0; got {self}")

    @property
    def steps(self) -> int:
        return int(np.ceil(self.jitter + self.interval)) + 12

    def generate(self) -> SpikeDataset:
        rng = np.random.default_rng(self.seed)
        n = self.examples
        labels = rng.integers(0, 2, n)
        onset = 1 + rng.integers(0, self.jitter, n) + rng.uniform(0, 1, n)
        first, second = onset, onset + self.interval
        a = np.where(labels == 0, first, second)
        b = np.where(labels == 0, second, first)
        noise = rng.uniform(1, self.steps - 1, (n, self.noise_channels))
        times = np.concatenate([a[:, None], b[:, None], noise], axis=1).astype(np.float32)
        return SpikeDataset(times, labels.astype(np.int32), self.steps, 2)
