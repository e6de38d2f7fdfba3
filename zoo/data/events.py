"""Event-camera recordings: tonic's readers and transforms underneath, cached spike rasters out.

Every recording becomes an array of tonic's structured events (``x``, ``y``, ``t`` in µs, ``p``);
`to_raster` bins them into ``steps`` time bins of ``channels = polarities x height x width`` (after
tonic's denoising and spatial downsampling), and `cached_rasters` stores the result as ``.npz``
keyed by the recordings and the preprocessing, so a dataset is decoded once.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tonic

EVENT_DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])


class BadEventFile(ValueError):
    """A recording that cannot be decoded; the message names the file."""


# ---------------------------------------------------------------------------------------------
# Single recordings, by format
# ---------------------------------------------------------------------------------------------
def read_event_file(path: str) -> np.ndarray:
    """Events of one recording as ``EVENT_DTYPE`` (``x``, ``y``, ``t`` µs, ``p`` in {0, 1}), by format:

    * ``.bin``: N-MNIST / N-Caltech101 binary (tonic's reader), size checked;
    * ``.dat``: Prophesee DAT, e.g. N-CARS (expelliarmus, tonic's dependency);
    * ``.aedat4``: iniVation AEDAT 4 (tonic's reader, the ``aedat`` package);
    * ``.aedat``: AEDAT 2/3 AER (tonic's header and event readers), DVS128 address layout
      (``x = addr >> 1 & 127``, ``y = addr >> 8 & 127``, ``p = addr & 1``);
    * ``.mat``: ST-MNIST ``spiketrain`` (100 taxel rows of -1/0/+1, then a row of times in seconds).

    A file that cannot be decoded raises `BadEventFile` naming it.
    """
    readers = {".bin": _read_bin, ".dat": _read_dat, ".aedat4": _read_aedat4, ".aedat": _read_aedat,
               ".mat": _read_stmnist}
    suffix = Path(path).suffix.lower()
    if suffix not in readers:
        raise ValueError(f"read_event_file: {path}: unknown format {suffix!r}; supported: {', '.join(readers)}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"read_event_file: {path} not found")
    try:
        events = readers[suffix](path)
    except BadEventFile:
        raise
    except Exception as exc:  # the readers raise many types on damaged input
        raise BadEventFile(f"{path}: cannot be decoded as {suffix} ({type(exc).__name__}: {exc})") from exc
    if len(events) and np.any(np.diff(events["t"]) < 0):
        raise BadEventFile(f"{path}: timestamps go backwards (corrupt?)")
    return events


def _structured(x, y, t, p) -> np.ndarray:
    events = np.zeros(len(t), EVENT_DTYPE)
    events["x"], events["y"], events["t"], events["p"] = x, y, t, p
    return events


def _read_bin(path):
    problem = _nmnist_size_problem(path)
    if problem:
        raise BadEventFile(f"{path}: {problem}")
    return tonic.io.read_mnist_file(path, dtype=EVENT_DTYPE)


def _read_dat(path):
    import expelliarmus

    with open(path, "rb") as f:  # header: "%" lines, then event type and event size bytes
        while f.peek(1)[:1] == b"%":
            f.readline()
        event_type, event_size = f.read(2)
        payload = os.path.getsize(path) - f.tell()
    if event_size == 0 or payload % event_size:
        raise BadEventFile(f"{path}: {payload} bytes of events is not a whole number of {event_size}-byte DAT "
                           "events (truncated?)")
    raw = expelliarmus.Wizard(encoding="dat").read(path)
    return _structured(raw["x"], raw["y"], raw["t"], raw["p"])


def _read_aedat4(path):
    raw = tonic.io.read_aedat4(path)
    return _structured(raw["x"], raw["y"], raw["t"], raw["p"].astype(int))


def _read_aedat(path):
    version, data_start, _ = tonic.io.read_aedat_header_from_file(path)
    if data_start < 0:
        raise BadEventFile(f"{path}: no AEDAT header")
    size = os.path.getsize(path)
    if data_start == size - 1:  # tonic seeks back one byte even when the header ran to the end of the file
        with open(path, "rb") as f:
            f.seek(data_start)
            if f.read() == b"\n":
                return _structured([], [], [], [])
    payload = size - data_start
    if 2 <= version < 3 and payload % 8:
        raise BadEventFile(f"{path}: {payload} bytes of events is not a whole number of 8-byte AER events (truncated?)")
    raw = tonic.io.get_aer_events_from_file(path, version, data_start)
    address = raw["address"].astype(np.int64)
    return _structured((address >> 1) & 0x7F, (address >> 8) & 0x7F, raw["timeStamp"].astype(np.int64), address & 1)


def _read_stmnist(path):
    from scipy.io import loadmat

    train = loadmat(path, squeeze_me=True)["spiketrain"]
    if train.ndim != 2 or train.shape[0] != 101:
        raise BadEventFile(f"{path}: `spiketrain` must be 101 rows (100 taxels + times), got {train.shape}")
    taxel, column = np.nonzero(train[:100])
    order = np.argsort(column, kind="stable")
    taxel, column = taxel[order], column[order]
    times = np.round(train[100, column] * 1e6).astype(np.int64)
    return _structured(taxel % 10, taxel // 10, times, (train[taxel, column] > 0).astype(int))


# ---------------------------------------------------------------------------------------------
# N-MNIST from an extracted folder
# ---------------------------------------------------------------------------------------------
class NMNIST(tonic.datasets.NMNIST):
    """tonic's N-MNIST, reading an extracted ``ROOT/NMNIST/{Train,Test}/<label>/<id>.bin`` folder.

    tonic's own class insists on the downloaded archive; this one accepts any folder with that
    layout (e.g. a subset) and downloads only when asked. Files are checked before decoding: a size
    that is not a whole number of 5-byte events, coordinates outside the 34x34 sensor or
    decreasing timestamps raise `BadEventFile` naming the file, or, with ``on_bad_file="skip"``,
    the file is left out and listed in ``skipped``.
    """

    def __init__(self, root: str, split: str = "train", download: bool = False, on_bad_file: str = "raise",
                 **kwargs):
        if split not in ("train", "test"):
            raise ValueError(f"NMNIST: `split` must be 'train' or 'test', got {split!r}")
        if on_bad_file not in ("raise", "skip"):
            raise ValueError(f"NMNIST: `on_bad_file` must be 'raise' or 'skip', got {on_bad_file!r}")
        self.split, self.allow_download, self.on_bad_file = split, download, on_bad_file
        self.skipped: list[tuple[str, str]] = []
        super().__init__(save_to=root, train=split == "train", **kwargs)
        if on_bad_file == "skip":
            keep = []
            for i, path in enumerate(self.data):
                problem = _nmnist_size_problem(path)
                if problem:
                    self.skipped.append((path, problem))
                else:
                    keep.append(i)
            self.data = [self.data[i] for i in keep]
            self.targets = [self.targets[i] for i in keep]

    @property
    def folder(self) -> str:
        return os.path.join(self.location_on_system, self.folder_name)

    def _check_exists(self) -> bool:
        return os.path.isdir(self.folder) and any(Path(self.folder).glob("*/*.bin"))

    def download(self) -> None:
        if not self.allow_download:
            raise FileNotFoundError(
                f"N-MNIST {self.split} recordings not found: expected {self.folder}/<label>/<id>.bin. "
                "Pass download=True (dataset.download=true) to let tonic fetch the official archive (needs "
                f"internet), or point root (dataset.root=) at a folder holding NMNIST/{self.folder_name}.")
        super().download()

    def __getitem__(self, index):
        path = self.data[index]
        problem = _nmnist_size_problem(path)
        if problem:
            raise BadEventFile(f"{path}: {problem}")
        check_events(tonic.io.read_mnist_file(path, dtype=self.dtype), self.sensor_size, path)
        return super().__getitem__(index)  # tonic's decoding, saccade selection and transforms


def _nmnist_size_problem(path: str) -> str | None:
    size = os.path.getsize(path)
    if size == 0:
        return "empty file"
    if size % 5:
        return f"{size} bytes is not a whole number of 5-byte N-MNIST events (truncated?)"
    return None


def check_events(events: np.ndarray, sensor_size: tuple[int, int, int], path: str) -> None:
    """Raise `BadEventFile` naming ``path`` if events fall off the sensor or go back in time."""
    width, height, polarities = sensor_size
    if len(events) == 0:
        raise BadEventFile(f"{path}: no events")
    if events["x"].min() < 0 or events["x"].max() >= width or events["y"].min() < 0 or events["y"].max() >= height:
        raise BadEventFile(f"{path}: coordinates outside the {width}x{height} sensor (corrupt?)")
    if np.any(np.diff(events["t"]) < 0):
        raise BadEventFile(f"{path}: timestamps go backwards (corrupt?)")


# ---------------------------------------------------------------------------------------------
# HOTS letters
# ---------------------------------------------------------------------------------------------
class HOTSLetters:
    """The 76 ATIS recordings of 36 characters (Orchard et al. 2015, Lagorce et al. 2016), 32x32.

    Reads ``ROOT/hots_letters/ExtractedStabilized.mat`` (struct array ``ROI``: ``x``, ``y`` 1-based,
    ``p`` in {-1, +1}, ``ts`` µs) and ``labels.csv`` (``index,label,n_events``, checked against the
    .mat). Customary split: entries 0-35 train (one per class), 36-75 test.
    """

    sensor_size = (32, 32, 2)
    classes = sorted("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")

    def __init__(self, root: str, split: str = "train", transform=None):
        from scipy.io import loadmat

        if split not in ("train", "test"):
            raise ValueError(f"HOTSLetters: `split` must be 'train' or 'test', got {split!r}")
        folder = os.path.join(root, "hots_letters")
        mat, table = os.path.join(folder, "ExtractedStabilized.mat"), os.path.join(folder, "labels.csv")
        for path in (mat, table):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"HOTS letters: {path} not found; `root` must hold hots_letters/"
                                        "ExtractedStabilized.mat and labels.csv")
        try:
            roi = loadmat(mat, squeeze_me=True, struct_as_record=False)["ROI"]
        except Exception as exc:  # scipy raises several types for damaged files
            raise BadEventFile(f"{mat}: cannot be read as a MATLAB file with a `ROI` struct array ({exc})") from exc
        with open(table) as f:
            rows = list(csv.DictReader(f))
        if len(rows) != len(roi):
            raise BadEventFile(f"{table}: {len(rows)} rows but {mat} holds {len(roi)} recordings")
        picks = range(36) if split == "train" else range(36, len(rows))
        self.samples, self.targets, self.transform = [], [], transform
        for i in picks:
            entry, row = roi[i], rows[i]
            events = np.zeros(len(entry.x), dtype=EVENT_DTYPE)
            events["x"], events["y"] = np.asarray(entry.x) - 1, np.asarray(entry.y) - 1
            events["t"], events["p"] = np.asarray(entry.ts), (np.asarray(entry.p) > 0).astype(int)
            if len(events) != int(row["n_events"]):
                raise BadEventFile(f"{mat}: entry {i} has {len(events)} events, {table} says {row['n_events']}")
            check_events(events, self.sensor_size, f"{mat} entry {i}")
            self.samples.append(events)
            self.targets.append(self.classes.index(row["label"]))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index):
        events = self.samples[index]
        return (self.transform(events) if self.transform else events), self.targets[index]


# ---------------------------------------------------------------------------------------------
# Rasters and their cache
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RasterSpec:
    """How recordings become spike rasters of ``steps`` x ``channels``."""

    steps: int = 50
    duration_us: float = 300_000.0  # the span binned into `steps`; later events are cut
    spatial_factor: float = 1.0  # tonic.transforms.Downsample factor (0.5 halves width and height)
    denoise_us: float | None = 10_000.0  # tonic.transforms.Denoise filter time; None: off

    def __post_init__(self):
        if self.steps < 1 or self.duration_us <= 0 or not 0 < self.spatial_factor <= 1:
            raise ValueError(f"RasterSpec: need steps >= 1, duration_us > 0, 0 < spatial_factor <= 1; got {self}")


def to_raster(events: np.ndarray, sensor_size: tuple[int, int, int], spec: RasterSpec) -> np.ndarray:
    """``(steps, polarities * height * width)`` uint8 spike counts, clipped at 255."""
    transforms = []
    if spec.denoise_us:
        transforms.append(tonic.transforms.Denoise(filter_time=spec.denoise_us))
    size = sensor_size
    if spec.spatial_factor != 1:
        transforms.append(tonic.transforms.Downsample(spatial_factor=spec.spatial_factor))
        size = (int(np.ceil(sensor_size[0] * spec.spatial_factor)), int(np.ceil(sensor_size[1] * spec.spatial_factor)),
                sensor_size[2])
    events = tonic.transforms.Compose(transforms)(events) if transforms else events
    events = events[(events["t"] >= 0) & (events["t"] < spec.duration_us)]
    frames = np.zeros((spec.steps, size[2], size[1], size[0]), np.int64)
    step = np.minimum((events["t"] * spec.steps / spec.duration_us).astype(int), spec.steps - 1)
    np.add.at(frames, (step, events["p"].astype(int), events["y"].astype(int), events["x"].astype(int)), 1)
    return np.minimum(frames, 255).astype(np.uint8).reshape(spec.steps, -1)


def cached_rasters(dataset, sensor_size, spec: RasterSpec, cache_dir: str | None, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Rasters and labels of every item of ``dataset`` (events, label), decoded once and cached.

    The cache file name hashes ``key`` (the recordings' identity), the sensor size and ``spec``; it is
    written atomically (temporary file, then rename), so an interrupted run leaves no partial cache.
    """
    digest = hashlib.sha256(json.dumps([key, list(sensor_size), asdict(spec)], sort_keys=True).encode()).hexdigest()[:16]
    path = os.path.join(cache_dir, f"rasters-{digest}.npz") if cache_dir else None
    if path and os.path.isfile(path):
        with np.load(path) as cached:
            return cached["rasters"], cached["labels"]
    rasters = np.stack([to_raster(dataset[i][0], sensor_size, spec) for i in range(len(dataset))])
    labels = np.asarray(dataset.targets, np.int32)
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = path + f".tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            np.savez(f, rasters=rasters, labels=labels)
        os.replace(tmp, path)
    return rasters, labels


def files_key(paths) -> str:
    """Identity of a list of recordings: their paths, sizes and modification times."""
    h = hashlib.sha256()
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()
