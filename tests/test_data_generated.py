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
