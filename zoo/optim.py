"""Optimisers with a learning rate of their own for the delays."""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import optax

from .models import label_delays

OPTIMIZERS = {"adam": optax.adam, "adamw": optax.adamw, "sgd": optax.sgd}


@dataclass(frozen=True)
class DelayAwareOptimizer:
    """``name`` (adam, adamw, sgd) at ``lr`` for weights and ``lr_delays`` for delays (0 freezes them),
    after optional global-norm gradient clipping, optionally decayed to zero along a cosine.

    ``warmup_fraction`` raises both rates linearly from 0 over that fraction of the run's updates first.
    Full-rate first updates can silence spiking units for good: a unit that no longer spikes sends no event,
    and where events carry the only gradient (`queues.Scheduled`) nothing wakes it again.

    ``weight_decay`` (adamw only) shrinks the weights, never the delays: a delay is a time, not a
    magnitude, and decaying it would pull every synapse towards zero delay."""

    name: str = "adam"
    lr: float = 1e-2
    lr_delays: float = 0.5
    clip_norm: float | None = None
    cosine_decay: bool = False
    weight_decay: float | None = None  # adamw only; None: optax's default (1e-4)
    warmup_fraction: float = 0.0  # of the updates, over which both rates rise linearly from 0

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer: unknown name {self.name!r}; choose from {', '.join(OPTIMIZERS)}")
        if self.lr < 0 or self.lr_delays < 0 or (self.clip_norm is not None and self.clip_norm <= 0):
            raise ValueError(f"optimizer: learning rates must be >= 0 and clip_norm > 0, got {self}")
        if self.weight_decay is not None and (self.name != "adamw" or self.weight_decay < 0):
            raise ValueError(f"optimizer: `weight_decay` must be >= 0 and needs name=adamw (it would do nothing "
                             f"for {self.name}), got {self.weight_decay}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"optimizer: `warmup_fraction` must lie in [0, 1), got {self.warmup_fraction}")

    def build(self, model, total_steps: int | None = None) -> optax.GradientTransformation:
        """The optimiser for ``model``; with ``cosine_decay``, both rates follow a cosine from their value
        to zero over ``total_steps`` updates (the trainer passes its epochs x batches), after the warmup's
        ``round(warmup_fraction * total_steps)`` updates, if any, have raised them linearly from 0."""
        make = OPTIMIZERS[self.name]
        for option in ("cosine_decay", "warmup_fraction"):
            if getattr(self, option) and not total_steps:
                raise ValueError(f"optimizer: {option} needs the number of updates (total_steps)")
        warmup = max(1, round(self.warmup_fraction * total_steps)) if self.warmup_fraction else 0

        def rate(lr):
            if self.cosine_decay and warmup:  # optax's decay_steps is the whole schedule, warmup included
                return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, total_steps)
            if warmup:
                return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), optax.constant_schedule(lr)],
                                            [warmup])
            return optax.cosine_decay_schedule(lr, total_steps) if self.cosine_decay else lr

        labels = label_delays(eqx.filter(model, eqx.is_array))
        if self.name == "adamw":
            decay = {} if self.weight_decay is None else {"weight_decay": self.weight_decay}
            weights = optax.adamw(rate(self.lr), **decay)
            delays = optax.adam(rate(self.lr_delays))  # the same update, without the decay
        else:
            weights, delays = make(rate(self.lr)), make(rate(self.lr_delays))
        delays = delays if self.lr_delays > 0 else optax.set_to_zero()
        # a lambda: the label tree is itself a (callable) Module, which optax would call on the params
        split = optax.multi_transform({"weights": weights, "delays": delays}, lambda _: labels)
        return optax.chain(optax.clip_by_global_norm(self.clip_norm), split) if self.clip_norm else split
