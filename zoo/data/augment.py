"""Training-time augmentation of event frames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .delay_task import SpikeDataset


@dataclass(frozen=True)
class RandomShift:
    """Translate every example's event frames by its own random ``(dy, dx)`` in ``[-max_shift, max_shift]``
    pixels, the same for all its steps (as a small camera offset would); events shifted off the frame
    are lost and the uncovered border is empty. Only for datasets with a ``frame`` shape."""

    max_shift: int = 2

    def __post_init__(self):
        if not isinstance(self.max_shift, int) or self.max_shift < 0:
            raise ValueError(f"RandomShift: `max_shift` must be a non-negative integer, got {self.max_shift!r}")

    def __call__(self, data: SpikeDataset, rng: np.random.Generator) -> SpikeDataset:
        if data.frame is None:
            raise ValueError("RandomShift: the dataset has no frame shape (polarities, height, width) to shift")
        shifts = rng.integers(-self.max_shift, self.max_shift + 1, size=(len(data), 2))
        return SpikeDataset(self._shift(data.spikes, data.frame, shifts), data.labels, data.classes,
                            None if data.times is None else self._shift(data.times, data.frame, shifts), data.frame)

    def _shift(self, x: np.ndarray, frame: tuple[int, int, int], shifts: np.ndarray) -> np.ndarray:
        pol, height, width = frame
        s = self.max_shift
        padded = np.pad(x.reshape(len(x), x.shape[1], pol, height, width), [(0, 0)] * 3 + [(s, s), (s, s)])
        out = np.empty_like(x.reshape(len(x), x.shape[1], pol, height, width))
        for i, (dy, dx) in enumerate(shifts):  # content moves by (dy, dx)
            out[i] = padded[i, :, :, s - dy: s - dy + height, s - dx: s - dx + width]
        return out.reshape(x.shape)
