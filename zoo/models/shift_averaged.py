"""Test-time shift averaging: one prediction from a frame model's views of the example moved by a pixel or so."""

from __future__ import annotations

import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ..data.augment import shift_frames
from .ensemble import mean_prediction


class ShiftAveraged(eqx.Module):
    r"""A frame model (``model(spikes, times, key=...) -> (logits, stats)``) that predicts from every view
    of the example moved by :math:`(d_y, d_x) \in \{-s, \dots, s\}^2` pixels (``s = max_shift``; moved as
    `RandomShift` moves training examples: events moved off the frame are lost), the `mean_prediction` of
    its :math:`(2s + 1)^2` views: logits the log of the views' mean class probability, ``stats`` with the
    shapes of ``model``'s (counts summed over the views, rates averaged). The views run one after another
    (``lax.map``: the memory of one view). It costs :math:`(2s + 1)^2` passes of the network: a
    different model from ``model`` alone, to be reported as such."""

    model: eqx.Module
    frame: tuple[int, int, int] = eqx.field(static=True)
    max_shift: int = eqx.field(static=True)

    def __init__(self, model: eqx.Module, frame: tuple[int, int, int], max_shift: int = 1):
        if not isinstance(max_shift, int) or max_shift < 0:
            raise ValueError(f"ShiftAveraged: `max_shift` must be a non-negative integer, got {max_shift!r}")
        if frame is None or len(frame) != 3:
            raise ValueError(f"ShiftAveraged: needs the frame shape (polarities, height, width), got {frame!r}")
        self.model, self.frame, self.max_shift = model, tuple(int(f) for f in frame), max_shift

    @property
    def shifts(self) -> list[tuple[int, int]]:
        return list(itertools.product(range(-self.max_shift, self.max_shift + 1), repeat=2))

    def __call__(self, spikes: Float[Array, "steps channels"], times: Float[Array, "steps channels"] | None = None,
                 *, key: PRNGKeyArray | None = None) -> tuple[Float[Array, " classes"], dict]:
        if spikes.shape[-1] != math.prod(self.frame):
            raise ValueError(f"ShiftAveraged: {spikes.shape[-1]} channels do not make frames of {self.frame}")

        def views(x):
            return jnp.stack([shift_frames(x, self.frame, dy, dx, xp=jnp) for dy, dx in self.shifts])

        def one(view):
            s, t = view
            return self.model(s, t, key=key)

        logits, stats = jax.lax.map(one, (views(spikes), None if times is None else views(times)))
        return mean_prediction(logits, stats)
