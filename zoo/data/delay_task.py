"""A generated task that only delays can solve: the order of two spikes far apart in time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SpikeDataset:
    """Spike rasters with labels: what every dataset loads into and every model consumes.

    ``spikes[i, n, c]`` counts the spikes of channel ``c`` in step ``n`` (time ``(n-1, n]``) of example
    ``i``; ``times``, when given, holds their exact time in that interval (one spike per bin), and
    otherwise the spikes are taken to occur at the step time ``n``.
    """

    spikes: np.ndarray  # (examples, steps, channels) uint8
    labels: np.ndarray  # (examples,) int32
    classes: int
    times: np.ndarray | None = None  # (examples, steps, channels) float32, or None
    frame: tuple[int, int, int] | None = None  # (polarities, height, width) when channels are pixels

    def __post_init__(self):
        if self.spikes.ndim != 3 or self.labels.shape != self.spikes.shape[:1]:
            raise ValueError(f"SpikeDataset: `spikes` must be (examples, steps, channels) and `labels` (examples,), "
                             f"got {self.spikes.shape} and {self.labels.shape}")
        if self.times is not None and self.times.shape != self.spikes.shape:
            raise ValueError(f"SpikeDataset: `times` must match `spikes` {self.spikes.shape}, got {self.times.shape}")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def steps(self) -> int:
        return self.spikes.shape[1]

    @property
    def channels(self) -> int:
        return self.spikes.shape[2]

    def subset(self, index) -> "SpikeDataset":
        return SpikeDataset(self.spikes[index], self.labels[index], self.classes,
                            None if self.times is None else self.times[index], self.frame)

    def split(self, fraction: float, seed: int = 0) -> tuple["SpikeDataset", "SpikeDataset"]:
        """A deterministic shuffle split into (first, rest) with ``fraction`` of the examples first."""
        order = np.random.default_rng(seed).permutation(len(self))
        cut = int(round(fraction * len(self)))
        return self.subset(order[:cut]), self.subset(order[cut:])

    def folds(self, k: int, seed: int = 0) -> list[tuple["SpikeDataset", "SpikeDataset"]]:
        """``k`` stratified ``(train, test)`` pairs for cross-validation: every example is tested once,
        and each class is spread over the folds as evenly as its count allows."""
        if not isinstance(k, int) or not 2 <= k <= len(self):
            raise ValueError(f"SpikeDataset.folds: `k` must be an integer in [2, {len(self)}], got {k!r}")
        rng = np.random.default_rng(seed)
        fold = np.empty(len(self), dtype=np.int64)
        offset = 0  # continue each class where the last one stopped, so fold sizes stay balanced
        for label in np.unique(self.labels):
            members = rng.permutation(np.flatnonzero(self.labels == label))
            fold[members] = (offset + np.arange(len(members))) % k
            offset += len(members)
        return [(self.subset(np.flatnonzero(fold != i)), self.subset(np.flatnonzero(fold == i))) for i in range(k)]


@dataclass(frozen=True)
class DelayTask:
    """Channel A and channel B each spike once, ``interval`` steps apart; the class is their order.

    The interval is several synaptic and membrane time constants long, so the two postsynaptic
    potentials never overlap: without delays a network whose readout is invariant to when things
    happen (maximum or summed membrane, spike count) sees the same two isolated events in both
    classes and stays at chance. Delaying one channel by ``interval`` makes the two coincide in
    one class only. Onsets are uniform in ``[0, jitter)`` plus a sub-step offset.

    ``noise_channels`` (default none) add one spike each, uniform over the window. They leak the class:
    which of A or B comes first also says which lies near the start of the window, and whether a noise
    spike tends to precede or follow a channel's spike reveals that position; a network without delays
    learns it above chance (compare `python train.py model.init_delay=0 optim.lr_delays=0` with and
    without `dataset.noise_channels=2`, and with `dataset.jitter=1`). Keep them off to measure what
    delays add.
    """

    examples: int = 2048
    interval: float = 60.0
    jitter: int = 16
    noise_channels: int = 0
    seed: int = 0

    def __post_init__(self):
        if self.examples < 2 or self.interval <= 0 or self.jitter < 1 or self.noise_channels < 0:
            raise ValueError(f"DelayTask: need examples >= 2, interval > 0, jitter >= 1, noise_channels >= 0; got {self}")

    @property
    def steps(self) -> int:
        return int(np.ceil(self.jitter + self.interval)) + 12

    def load(self) -> SpikeDataset:
        rng = np.random.default_rng(self.seed)
        n = self.examples
        labels = rng.integers(0, 2, n)
        onset = 1 + rng.integers(0, self.jitter, n) + rng.uniform(0, 1, n)
        first, second = onset, onset + self.interval
        a = np.where(labels == 0, first, second)
        b = np.where(labels == 0, second, first)
        noise = rng.uniform(1, self.steps - 1, (n, self.noise_channels))
        times = np.concatenate([a[:, None], b[:, None], noise], axis=1).astype(np.float32)  # one spike per channel
        step = np.ceil(times).astype(int)  # the step whose interval (n-1, n] holds the spike
        spikes = np.zeros((n, self.steps, times.shape[1]), np.uint8)
        exact = np.zeros(spikes.shape, np.float32)
        example, channel = np.meshgrid(np.arange(n), np.arange(times.shape[1]), indexing="ij")
        spikes[example, step, channel] = 1
        exact[example, step, channel] = times
        return SpikeDataset(spikes, labels.astype(np.int32), 2, exact)
