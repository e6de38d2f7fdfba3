"""Recorded event datasets as configs that `load()` cached spike rasters."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import numpy as np

from .delay_task import SpikeDataset
from .events import NMNIST, HOTSLetters, RasterSpec, cached_rasters, files_key


@dataclass(frozen=True)
class NMNISTRasters:
    """N-MNIST recordings under ``root/NMNIST/{Train,Test}`` (tonic's layout), binned into rasters.

    ``download=True`` lets tonic fetch the official archive into ``root`` (needs internet); otherwise
    a missing folder is an error naming the path. Rasters are cached in ``cache_dir`` (default
    ``root/.cache``, or a user cache directory when ``root`` is read-only).
    """

    root: str
    split: str = "train"
    raster: RasterSpec = field(default_factory=RasterSpec)
    cache_dir: str | None = None
    download: bool = False
    on_bad_file: str = "raise"

    def load(self) -> SpikeDataset:
        data = NMNIST(self.root, self.split, download=self.download, on_bad_file=self.on_bad_file)
        rasters, labels = cached_rasters(data, data.sensor_size, self.raster, _cache_dir(self.cache_dir, self.root),
                                         f"nmnist:{files_key(data.data)}")
        return SpikeDataset(rasters, labels, len(data.classes))


@dataclass(frozen=True)
class HOTSLettersRasters:
    """The HOTS letters recordings under ``root/hots_letters``, binned into rasters (36 classes)."""

    root: str
    split: str = "train"
    raster: RasterSpec = field(default_factory=lambda: RasterSpec(steps=50, duration_us=150_000.0))
    cache_dir: str | None = None

    def load(self) -> SpikeDataset:
        data = HOTSLetters(self.root, self.split)
        key = f"hots:{self.split}:{files_key([os.path.join(self.root, 'hots_letters', 'ExtractedStabilized.mat')])}"
        rasters, labels = cached_rasters(data, data.sensor_size, self.raster, _cache_dir(self.cache_dir, self.root), key)
        return SpikeDataset(rasters, labels, len(data.classes))


def _cache_dir(cache_dir: str | None, root: str) -> str:
    if cache_dir:
        return cache_dir
    local = os.path.join(root, ".cache")
    if os.access(root, os.W_OK):
        return local
    digest = hashlib.sha256(os.path.abspath(root).encode()).hexdigest()[:16]
    return os.path.join(os.path.expanduser("~"), ".cache", "delay-snn-zoo", digest)
