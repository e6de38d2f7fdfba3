"""The Yin-Yang dataset (Kriener, Göltz & Petrovici 2022) as input spike times."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .delay_task import SpikeDataset


def yinyang_class(x: np.ndarray, y: np.ndarray, r_big: float = 0.5, r_small: float = 0.1) -> np.ndarray:
    """Class of points inside the big circle of radius ``r_big`` centred at ``(r_big, r_big)``.

    The two lobes are half-size circles centred at ``(r_big / 2, r_big)`` and ``(3 r_big / 2, r_big)``.
    Class 2: the dots, within ``r_small`` of a lobe centre. Class 1: the left lobe, plus the upper half
    outside the right lobe. Class 0: the rest (the right lobe and the lower half outside the left one).
    """
    d_left = np.hypot(x - r_big / 2, y - r_big)
    d_right = np.hypot(x - 3 * r_big / 2, y - r_big)
    dots = (d_left < r_small) | (d_right < r_small)
    one = (d_left <= r_big / 2) | ((y > r_big) & (d_right > r_big / 2))
    return np.where(dots, 2, np.where(one, 1, 0))


@dataclass(frozen=True)
class YinYang:
    """Class-balanced Yin-Yang points, each encoded as five input spikes.

    Channels ``x, y, 1-x, 1-y`` (coordinates in ``[0, 2 r_big]`` scaled to ``[0, 1]``) spike at
    ``t_min + value (t_max - t_min)`` steps, exactly (sub-step times); a fifth, bias channel spikes at
    ``t_min``. Simulations run ``steps`` steps. Points are drawn uniformly in the big circle and kept
    by rejection so every class has the same count (``examples`` rounded down to a multiple of 3).
    """

    examples: int = 5000
    seed: int = 0
    r_big: float = 0.5
    r_small: float = 0.1
    t_min: float = 1.5
    t_max: float = 16.5
    steps: int = 40
    bias: bool = True

    def __post_init__(self):
        if self.examples < 3 or not 0 < self.r_small < self.r_big / 2 or not 0 < self.t_min < self.t_max < self.steps:
            raise ValueError(f"YinYang: need examples >= 3, 0 < r_small < r_big / 2, 0 < t_min < t_max < steps; got {self}")

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        per_class = self.examples // 3
        xs, ys, labels = [], [], []
        for label in range(3):
            got = 0
            while got < per_class:
                x, y = rng.uniform(0, 2 * self.r_big, (2, 4 * per_class))
                keep = (np.hypot(x - self.r_big, y - self.r_big) <= self.r_big) & (
                    yinyang_class(x, y, self.r_big, self.r_small) == label)
                x, y = x[keep][: per_class - got], y[keep][: per_class - got]
                xs.append(x), ys.append(y), labels.append(np.full(len(x), label))
                got += len(x)
        order = rng.permutation(3 * per_class)
        return (np.concatenate([np.concatenate(xs)[order][:, None], np.concatenate(ys)[order][:, None]], 1),
                np.concatenate(labels)[order].astype(np.int32))

    def load(self) -> SpikeDataset:
        coords, labels = self.points()
        values = coords / (2 * self.r_big)
        features = np.concatenate([values, 1 - values] + ([np.zeros((len(values), 1))] if self.bias else []), axis=1)
        times = (self.t_min + features * (self.t_max - self.t_min)).astype(np.float32)
        step = np.ceil(times).astype(int)
        spikes = np.zeros((len(labels), self.steps, times.shape[1]), np.uint8)
        exact = np.zeros(spikes.shape, np.float32)
        example, channel = np.meshgrid(np.arange(len(labels)), np.arange(times.shape[1]), indexing="ij")
        spikes[example, step, channel] = 1
        exact[example, step, channel] = times
        return SpikeDataset(spikes, labels, 3, exact)
