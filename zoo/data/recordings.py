"""Recorded event datasets as configs that `load()` cached spike rasters."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import numpy as np
import tonic

from .delay_task import SpikeDataset
from .events import EVENT_DTYPE, NMNIST, HOTSLetters, RasterSpec, cached_rasters, files_key


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
        return SpikeDataset(rasters, labels, len(data.classes), frame=raster_frame(data.sensor_size, self.raster))


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
        return SpikeDataset(rasters, labels, len(data.classes), frame=raster_frame(data.sensor_size, self.raster))


# tonic class and how it names splits: "train" -> keyword arguments
TONIC_DATASETS = {
    "dvsgesture": ("DVSGesture", lambda split: {"train": split == "train"}),
    "pokerdvs": ("POKERDVS", lambda split: {"train": split == "train"}),
    "shd": ("SHD", lambda split: {"train": split == "train"}),
    "ssc": ("SSC", lambda split: {"split": {"val": "valid"}.get(split, split)}),
    "cifar10dvs": ("CIFAR10DVS", lambda split: {}),
    "ncaltech101": ("NCALTECH101", lambda split: {}),
}


@dataclass(frozen=True)
class TonicRasters:
    """Any of tonic's datasets in `TONIC_DATASETS`, binned into cached rasters.

    With ``download=True`` tonic fetches the dataset into ``root`` on first use (needs internet);
    otherwise a dataset not yet under ``root`` is an error naming where tonic looks and how to get it
    (no network is touched). CIFAR10-DVS and N-Caltech101 have no official split: ``split`` must be
    "all" (make folds with `SpikeDataset.split`). Audio datasets (SHD, SSC) have one row of channels.
    """

    name: str
    root: str
    split: str = "train"
    raster: RasterSpec = field(default_factory=RasterSpec)
    cache_dir: str | None = None
    download: bool = False

    def __post_init__(self):
        if self.name not in TONIC_DATASETS:
            raise ValueError(f"TonicRasters: unknown dataset {self.name!r}; choose from {', '.join(TONIC_DATASETS)}")
        unsplit = self.name in ("cifar10dvs", "ncaltech101")
        allowed = ("all",) if unsplit else (("train", "val", "test") if self.name == "ssc" else ("train", "test"))
        if self.split not in allowed:
            raise ValueError(f"TonicRasters: {self.name} has splits {', '.join(allowed)}; got {self.split!r}")

    def dataset(self):
        class_name, split_kwargs = TONIC_DATASETS[self.name]
        base = getattr(tonic.datasets, class_name)
        if self.download:
            return base(save_to=self.root, **split_kwargs(self.split))

        def refuse(this):
            raise FileNotFoundError(
                f"{class_name} not found under {this.location_on_system}: pass download=True "
                f"(dataset.download=true) to let tonic fetch it there (needs internet), or point root at a folder "
                f"that already holds {class_name}/")

        # the same class name: tonic derives the folder from it
        offline = type(class_name, (base,), {"download": refuse, "_copy_and_extract_local_data": refuse})
        return offline(save_to=self.root, **split_kwargs(self.split))

    def load(self) -> SpikeDataset:
        data = self.dataset()
        key = f"{self.name}:{self.split}:{files_key(_files_of(data))}"
        size = _planar_size(data.sensor_size)
        rasters, labels = cached_rasters(_Planar(data, size[2]), size, self.raster,
                                         _cache_dir(self.cache_dir, self.root), key)
        return SpikeDataset(rasters, labels, len(getattr(data, "classes", np.unique(labels))),
                            frame=raster_frame(size, self.raster))


class _Planar:
    """Items of a tonic dataset as ``EVENT_DTYPE`` events: ``y = 0`` for one-row sensors, ``p = 0`` for
    one-polarity sensors (SHD marks every event ``p = 1``)."""

    def __init__(self, data, polarities: int):
        self.data, self.targets, self.polarities = data, list(getattr(data, "targets", [])), polarities

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        events, target = self.data[index]
        planar = np.zeros(len(events), EVENT_DTYPE)
        planar["x"], planar["t"] = events["x"], events["t"]
        planar["p"] = events["p"] if self.polarities > 1 else 0
        planar["y"] = events["y"] if "y" in events.dtype.names else 0
        if len(self.targets) <= index:
            self.targets.append(int(target))
        return planar, target


def _planar_size(sensor_size):
    width, height, polarities = (tuple(sensor_size) + (1, 1))[:3]
    return width, height, polarities


def _files_of(data) -> list[str]:
    files = [f for f in getattr(data, "data", []) if isinstance(f, str) and os.path.exists(f)]
    return files or [data.location_on_system]


def raster_frame(sensor_size, spec: RasterSpec) -> tuple[int, int, int]:
    """``(polarities, height, width)`` of the rasters `to_raster` makes for ``sensor_size``."""
    width, height, polarities = sensor_size
    if spec.spatial_factor != 1:
        width, height = int(np.ceil(width * spec.spatial_factor)), int(np.ceil(height * spec.spatial_factor))
    return polarities, height, width


def _cache_dir(cache_dir: str | None, root: str) -> str:
    if cache_dir:
        return cache_dir
    local = os.path.join(root, ".cache")
    if os.access(root, os.W_OK):
        return local
    digest = hashlib.sha256(os.path.abspath(root).encode()).hexdigest()[:16]
    return os.path.join(os.path.expanduser("~"), ".cache", "delay-snn-zoo", digest)
