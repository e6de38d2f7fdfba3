"""Training losses: functions of a batch's logits and labels, chosen by the `loss` config group."""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int


@dataclass(frozen=True)
class CrossEntropy:
    """Softmax cross-entropy of the logits, mean over the batch."""

    def __call__(self, logits: Float[Array, "batch classes"], labels: Int[Array, " batch"]) -> Float[Array, ""]:
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


@dataclass(frozen=True)
class FirstSpikeCrossEntropy:
    """For first-spike readouts, whose logits are ``-t`` (the output neurons' first spike times):

        L = -log softmax(-t / tau0)[label] + alpha (exp(t_label / tau1) - 1)

    the cross-entropy of the spike times at temperature ``tau0`` plus the regulariser of Göltz et al.
    (2021) and Wunderlich & Pehle (2021) that pulls the correct neuron's spike earlier (times in steps).
    """

    tau0: float = 1.0
    tau1: float = 10.0
    alpha: float = 0.01

    def __post_init__(self):
        if self.tau0 <= 0 or self.tau1 <= 0 or self.alpha < 0:
            raise ValueError(f"FirstSpikeCrossEntropy: need tau0 > 0, tau1 > 0, alpha >= 0; got {self}")

    def __call__(self, logits: Float[Array, "batch classes"], labels: Int[Array, " batch"]) -> Float[Array, ""]:
        t_label = -jnp.take_along_axis(logits, labels[:, None], 1)[:, 0]
        ce = optax.softmax_cross_entropy_with_integer_labels(logits / self.tau0, labels)
        return (ce + self.alpha * (jnp.exp(t_label / self.tau1) - 1)).mean()
