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
        return np.stack([shift_frames(xi, frame, dy, dx) for xi, (dy, dx) in zip(x, shifts)]) if len(x) else x


def shift_frames(x, frame: tuple[int, int, int], dy: int, dx: int, xp=np):
    """One example's ``(steps, channels)`` event frames (channels = polarities x height x width) with their
    content moved by ``(dy, dx)`` pixels: events moved off the frame are lost, the uncovered border is empty.
    ``xp`` is the array module (``numpy``, or ``jax.numpy`` inside a traced function); the shift is static."""
    pol, height, width = frame
    sy, sx = abs(dy), abs(dx)
    frames = xp.pad(x.reshape(x.shape[0], pol, height, width), [(0, 0), (0, 0), (sy, sy), (sx, sx)])
    return frames[:, :, sy - dy: sy - dy + height, sx - dx: sx - dx + width].reshape(x.shape)


@dataclass(frozen=True)
class RandomAffine:
    r"""Rotate and scale every example's event frames about the frame centre by its own random angle
    :math:`\theta \sim U[-\text{max\_rotation}, \text{max\_rotation}]` (degrees) and factor
    :math:`s \sim U[1 - \text{max\_scale}, 1 + \text{max\_scale}]`, the same for all its steps (a tilted
    or nearer digit). Output pixel :math:`p` takes the events of the input pixel nearest to
    :math:`c + R(-\theta)(p - c) / s` (nearest neighbour keeps counts integer: scaling up repeats a pixel's
    events, scaling down merges none but skips some); pixels mapped from outside the frame are empty.
    Only for datasets with a ``frame`` shape; compose with :class:`RandomShift` through :class:`Compose`."""

    max_rotation: float = 15.0
    max_scale: float = 0.1

    def __post_init__(self):
        if not 0 <= self.max_rotation <= 180:
            raise ValueError(f"RandomAffine: `max_rotation` must be in [0, 180] degrees, got {self.max_rotation!r}")
        if not 0 <= self.max_scale < 1:
            raise ValueError(f"RandomAffine: `max_scale` must be in [0, 1), got {self.max_scale!r}")

    def __call__(self, data: SpikeDataset, rng: np.random.Generator) -> SpikeDataset:
        if data.frame is None:
            raise ValueError("RandomAffine: the dataset has no frame shape (polarities, height, width) to transform")
        angles = np.deg2rad(rng.uniform(-self.max_rotation, self.max_rotation, len(data)))
        scales = rng.uniform(1 - self.max_scale, 1 + self.max_scale, len(data))
        source = self._source_pixels(data.frame[1:], angles, scales)
        return SpikeDataset(self._gather(data.spikes, data.frame, *source), data.labels, data.classes,
                            None if data.times is None else self._gather(data.times, data.frame, *source), data.frame)

    @staticmethod
    def _source_pixels(size: tuple[int, int], angles: np.ndarray, scales: np.ndarray):
        height, width = size
        cy, cx = (height - 1) / 2, (width - 1) / 2
        y, x = np.meshgrid(np.arange(height) - cy, np.arange(width) - cx, indexing="ij")
        cos, sin = (np.cos(angles) / scales)[:, None, None], (np.sin(angles) / scales)[:, None, None]
        sy = np.rint(cy + cos * y - sin * x).astype(int)  # R(-theta) / s applied to the output pixel
        sx = np.rint(cx + sin * y + cos * x).astype(int)
        inside = (sy >= 0) & (sy < height) & (sx >= 0) & (sx < width)
        return np.clip(sy, 0, height - 1), np.clip(sx, 0, width - 1), inside

    @staticmethod
    def _gather(x: np.ndarray, frame: tuple[int, int, int], sy: np.ndarray, sx: np.ndarray,
                inside: np.ndarray) -> np.ndarray:
        frames = x.reshape(len(x), x.shape[1], *frame)
        picked = frames[np.arange(len(x))[:, None, None], :, :, sy, sx]  # (examples, height, width, steps, pol)
        picked = picked * inside[..., None, None].astype(x.dtype)
        return np.ascontiguousarray(picked.transpose(0, 3, 4, 1, 2)).reshape(x.shape)


@dataclass(frozen=True)
class RandomDrop:
    r"""Drop spikes at random, as a sensor that misses events would (EventDrop, Gu et al., IJCAI 2021):
    every example draws its own rate :math:`r \sim U[0, \text{max\_drop}]` and keeps each of its spikes
    independently with probability :math:`1 - r`, so a bin of :math:`k` spikes keeps
    :math:`\text{Binomial}(k, 1 - r)`. Spike times stay as they are (a kept spike keeps its time; the time
    of an emptied bin is never read). Works on any dataset, with or without a frame."""

    max_drop: float = 0.2

    def __post_init__(self):
        _fraction("RandomDrop", "max_drop", self.max_drop)

    def __call__(self, data: SpikeDataset, rng: np.random.Generator) -> SpikeDataset:
        rates = rng.uniform(0.0, self.max_drop, len(data))
        kept = rng.binomial(data.spikes, (1.0 - rates)[:, None, None]).astype(data.spikes.dtype)
        return SpikeDataset(kept, data.labels, data.classes, data.times, data.frame)


def _fraction(name: str, field: str, value: float) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"{name}: `{field}` must be in [0, 1), got {value!r}")


def _random_windows(rng: np.random.Generator, size: int, lengths: np.ndarray) -> np.ndarray:
    """``(len(lengths), size)`` masks: row ``i`` covers ``lengths[i]`` consecutive indices of ``range(size)``
    from a uniformly drawn start, so the window lies inside."""
    starts = rng.integers(0, size - lengths + 1)
    index = np.arange(size)
    return (index >= starts[:, None]) & (index < (starts + lengths)[:, None])


@dataclass(frozen=True)
class RandomDropTime:
    r"""Drop every spike of a random window of steps, as a sensor blind for a while would (EventDrop's drop
    by time): every example draws a fraction :math:`f \sim U[0, \text{max\_fraction}]` and loses all its
    spikes in :math:`\operatorname{round}(f \cdot \text{steps})` consecutive steps from a uniformly drawn
    start (the window lies inside the recording). Works on any dataset, with or without a frame."""

    max_fraction: float = 0.2

    def __post_init__(self):
        _fraction("RandomDropTime", "max_fraction", self.max_fraction)

    def __call__(self, data: SpikeDataset, rng: np.random.Generator) -> SpikeDataset:
        lengths = np.rint(rng.uniform(0.0, self.max_fraction, len(data)) * data.steps).astype(int)
        blind = _random_windows(rng, data.steps, lengths)  # (examples, steps)
        kept = np.where(blind[:, :, None], 0, data.spikes).astype(data.spikes.dtype)
        return SpikeDataset(kept, data.labels, data.classes, data.times, data.frame)


@dataclass(frozen=True)
class RandomDropArea:
    r"""Drop every spike of a random rectangle of pixels, as an occluder would (EventDrop's drop by area):
    every example draws a fraction :math:`f \sim U[0, \text{max\_fraction}]` and loses, in all steps and
    both polarities, the spikes of a :math:`\operatorname{round}(f H) \times \operatorname{round}(f W)`
    rectangle at a uniformly drawn position inside the frame. Only for datasets with a ``frame`` shape."""

    max_fraction: float = 0.3

    def __post_init__(self):
        _fraction("RandomDropArea", "max_fraction", self.max_fraction)

    def __call__(self, data: SpikeDataset, rng: np.random.Generator) -> SpikeDataset:
        if data.frame is None:
            raise ValueError("RandomDropArea: the dataset has no frame shape (polarities, height, width) to occlude")
        pol, height, width = data.frame
        fractions = rng.uniform(0.0, self.max_fraction, len(data))
        inside_y = _random_windows(rng, height, np.rint(fractions * height).astype(int))  # (examples, height)
        inside_x = _random_windows(rng, width, np.rint(fractions * width).astype(int))  # (examples, width)
        occluded = (inside_y[:, :, None] & inside_x[:, None, :])[:, None, None]  # (examples, 1, 1, H, W)
        frames = data.spikes.reshape(len(data), data.steps, pol, height, width)
        kept = np.where(occluded, 0, frames).astype(data.spikes.dtype).reshape(data.spikes.shape)
        return SpikeDataset(kept, data.labels, data.classes, data.times, data.frame)


@dataclass(frozen=True)
class Identity:
    """Leave the examples as they are: the "as recorded" choice of :class:`OneOf`."""

    def __call__(self, data: SpikeDataset, rng: np.random.Generator) -> SpikeDataset:
        return data


def _callables(name: str, augments) -> tuple:
    augments = tuple(augments)  # a config's list, hashable and fixed
    for augment in augments:
        if not callable(augment):
            raise ValueError(f"{name}: every augmentation must be callable (data, rng) -> data, got {augment!r}")
    return augments


@dataclass(frozen=True)
class OneOf:
    """Apply to each example one of ``augments``, drawn uniformly for that example, as EventDrop picks one of
    its strategies per sample: ``OneOf([Identity(), RandomDrop(0.4), RandomDropTime(0.2), RandomDropArea(0.3)])``.
    Each augmentation sees only the examples that drew it; labels are never changed."""

    augments: tuple

    def __post_init__(self):
        object.__setattr__(self, "augments", _callables("OneOf", self.augments))
        if not self.augments:
            raise ValueError("OneOf: needs at least one augmentation to choose from")

    def __call__(self, data: SpikeDataset, rng: np.random.Generator) -> SpikeDataset:
        chosen = rng.integers(0, len(self.augments), len(data))
        spikes = data.spikes.copy()
        times = None if data.times is None else data.times.copy()
        for k, augment in enumerate(self.augments):
            picked = np.flatnonzero(chosen == k)
            if picked.size:
                out = augment(data.subset(picked), rng)
                spikes[picked] = out.spikes
                if times is not None:
                    times[picked] = out.times
        return SpikeDataset(spikes, data.labels, data.classes, times, data.frame)


@dataclass(frozen=True)
class Compose:
    """Apply augmentations in order, each drawing from the same generator (like ``optax.chain``):
    ``Compose([RandomAffine(15, 0.1), RandomShift(1)])``."""

    augments: tuple

    def __post_init__(self):
        object.__setattr__(self, "augments", _callables("Compose", self.augments))

    def __call__(self, data: SpikeDataset, rng: np.random.Generator) -> SpikeDataset:
        for augment in self.augments:
            data = augment(data, rng)
        return data
