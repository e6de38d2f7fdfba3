"""Event readers and datasets on the real recordings in ../shared/data (skipped where absent)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from zoo.data.events import (EVENT_DTYPE, NMNIST, BadEventFile, HOTSLetters, RasterSpec, cached_rasters, files_key,
                             read_event_file, to_raster)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLES = SHARED / "format_samples"


@pytest.fixture(scope="module")
def shared():
    if not SHARED.is_dir():
        pytest.skip(f"real event recordings not found at {SHARED} (a fresh clone has no ../shared/data; "
                    "see README: the tests that read real recordings need it beside the repository)")
    return SHARED


@pytest.mark.parametrize("name,count,width,height", [
    ("sample_nmnist.bin", 4325, 34, 34), ("sample_ncars.dat", 2009, 120, 100), ("sample.aedat4", 111954, 346, 260),
    ("sample_stmnist.mat", 2346, 10, 10), ("sample_aedat_header.aedat", 0, 128, 128)])
def test_format_samples_decode(shared, name, count, width, height):
    events = read_event_file(str(SAMPLES / name))
    assert events.dtype == EVENT_DTYPE and len(events) == count
    if count:
        assert events["x"].min() >= 0 and events["x"].max() < width
        assert events["y"].min() >= 0 and events["y"].max() < height
        assert set(np.unique(events["p"])) <= {0, 1} and np.all(np.diff(events["t"]) >= 0)


@pytest.mark.parametrize("name", ["sample_nmnist.bin", "sample_ncars.dat", "sample.aedat4", "sample_stmnist.mat",
                                  "sample_aedat_header.aedat"])
def test_truncated_files_raise_naming_the_file(shared, tmp_path, name):
    data = (SAMPLES / name).read_bytes()
    bad = tmp_path / name
    bad.write_bytes(data[: len(data) * 2 // 3 + 1])
    with pytest.raises(BadEventFile, match=str(bad)):
        read_event_file(str(bad))


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="unknown format '.txt'"):
        read_event_file(str(tmp_path / "x.txt"))
    with pytest.raises(FileNotFoundError, match="nope.bin not found"):
        read_event_file(str(tmp_path / "nope.bin"))


def test_nmnist_subset_reads_as_tonic_layout(shared):
    train = NMNIST(str(shared), "train")
    assert len(train) == 1000
    # the per-class counts documented with the data (../shared/data/README.md)
    assert np.bincount(train.targets).tolist() == [97, 116, 99, 93, 105, 92, 94, 117, 87, 100]
    events, label = train[0]
    assert label == 0 and 1069 <= len(events) <= 7152
    with pytest.raises(FileNotFoundError, match="NMNIST/Test/<label>/<id>.bin.*download=True"):
        NMNIST(str(shared), "test")  # withheld on purpose


def _copy_subset(shared, root, per_class=2):
    for label in range(10):
        src = sorted((shared / "NMNIST" / "Train" / str(label)).glob("*.bin"))[:per_class]
        dst = root / "NMNIST" / "Train" / str(label)
        dst.mkdir(parents=True)
        for f in src:
            shutil.copy(f, dst / f.name)
    return root


def test_nmnist_corrupt_files_raise_or_are_skipped_and_counted(shared, tmp_path):
    root = _copy_subset(shared, tmp_path)
    truncated = next((root / "NMNIST" / "Train" / "3").glob("*.bin"))
    truncated.write_bytes(truncated.read_bytes()[:-2])
    off_sensor = next((root / "NMNIST" / "Train" / "7").glob("*.bin"))
    off_sensor.write_bytes(bytes([200, 3, 0, 0, 9]) + off_sensor.read_bytes()[5:])

    strict = NMNIST(str(root), "train")
    index = strict.data.index(str(truncated))
    with pytest.raises(BadEventFile, match=f"{truncated}.*not a whole number of 5-byte"):
        strict[index]
    with pytest.raises(BadEventFile, match=f"{off_sensor}.*outside the 34x34 sensor"):
        strict[strict.data.index(str(off_sensor))]

    lenient = NMNIST(str(root), "train", on_bad_file="skip")
    assert [p for p, _ in lenient.skipped] == [str(truncated)] and len(lenient) == 19
    with pytest.raises(ValueError, match="`on_bad_file` must be"):
        NMNIST(str(root), "train", on_bad_file="ignore")


def test_rasters_and_their_cache(shared, tmp_path):
    root = _copy_subset(shared, tmp_path / "data", per_class=1)
    data = NMNIST(str(root), "train")
    spec = RasterSpec(steps=20, spatial_factor=0.5)
    events, _ = data[0]
    raster = to_raster(events, data.sensor_size, spec)
    assert raster.shape == (20, 2 * 17 * 17) and raster.dtype == np.uint8 and raster.sum() > 100

    cache = tmp_path / "cache"
    rasters, labels = cached_rasters(data, data.sensor_size, spec, str(cache), files_key(data.data))
    assert rasters.shape == (10, 20, 578) and labels.tolist() == list(range(10))
    [cached] = list(cache.glob("rasters-*.npz"))
    again, _ = cached_rasters(data, data.sensor_size, spec, str(cache), files_key(data.data))
    np.testing.assert_array_equal(again, rasters)
    other = RasterSpec(steps=10, spatial_factor=0.5)  # another preprocessing: another cache entry
    cached_rasters(data, data.sensor_size, other, str(cache), files_key(data.data))
    assert len(list(cache.glob("rasters-*.npz"))) == 2 and not list(cache.glob("*.tmp-*"))
    with pytest.raises(ValueError, match="RasterSpec"):
        RasterSpec(spatial_factor=2.0)


def test_hots_letters(shared, tmp_path):
    train, test = HOTSLetters(str(shared), "train"), HOTSLetters(str(shared), "test")
    assert len(train) == 36 and sorted(train.targets) == list(range(36)) and len(test) == 40
    events, _ = train[0]
    assert events["x"].max() < 32 and events["y"].max() < 32 and set(np.unique(events["p"])) == {0, 1}

    bad = tmp_path / "hots_letters"
    bad.mkdir()
    shutil.copy(shared / "hots_letters" / "ExtractedStabilized.mat", bad)
    rows = (shared / "hots_letters" / "labels.csv").read_text().splitlines()
    rows[1] = rows[1].rsplit(",", 1)[0] + ",12345"
    (bad / "labels.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(BadEventFile, match="entry 0 has 14813 events, .*labels.csv says 12345"):
        HOTSLetters(str(tmp_path), "train")
    with pytest.raises(FileNotFoundError, match="ExtractedStabilized.mat not found"):
        HOTSLetters(str(tmp_path / "missing"), "train")


@pytest.mark.parametrize("name", ["dvsgesture", "pokerdvs", "shd", "ssc", "cifar10dvs", "ncaltech101"])
def test_tonic_datasets_without_download_name_where_and_how(tmp_path, name):
    from zoo.data import TonicRasters
    split = "all" if name in ("cifar10dvs", "ncaltech101") else "train"
    with pytest.raises(FileNotFoundError, match=f"not found under {tmp_path}.*download=True"):
        TonicRasters(name, str(tmp_path), split).load()


def test_tonic_dataset_names_and_splits_are_checked():
    from zoo.data import TonicRasters
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; choose from dvsgesture"):
        TonicRasters("mnist", "/tmp")
    with pytest.raises(ValueError, match="cifar10dvs has splits all"):
        TonicRasters("cifar10dvs", "/tmp", "train")
    with pytest.raises(ValueError, match="ssc has splits train, val, test"):
        TonicRasters("ssc", "/tmp", "valid")


def test_one_row_sensors_become_rasters(tmp_path):
    """SHD-like events (no y) go through the same raster code as a 700 x 1 sensor."""
    from zoo.data.recordings import _Planar, _planar_size
    shd_dtype = np.dtype([("t", int), ("x", int), ("p", int)])
    items = [(np.array([(1000, 5, 1), (2000, 699, 1)], shd_dtype), 3), (np.array([(500, 0, 1)], shd_dtype), 7)]
    planar = _Planar(items, polarities=1)
    rasters, labels = cached_rasters(planar, _planar_size((700, 1, 1)), RasterSpec(steps=4, duration_us=4000.0,
                                                                                  denoise_us=None), None, "shd-test")
    assert rasters.shape == (2, 4, 700) and labels.tolist() == [3, 7]
    assert rasters[0, 1, 5] == 1 and rasters[0, 2, 699] == 1 and rasters[1, 0, 0] == 1 and rasters.sum() == 3
