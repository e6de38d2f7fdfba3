"""Training losses: functions of a batch's logits and labels, chosen by the `loss` config group."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int


@dataclass(frozen=True)
class CrossEntropy:
    """Softmax cross-entropy of the logits, mean over the batch.

    With ``label_smoothing`` = a > 0 the target of an example of class y over C classes is
    (1 - a) onehot(y) + a / C (``optax.smooth_labels``; Szegedy et al. 2016): the loss stops
    rewarding an ever larger margin once the softmax puts 1 - a + a / C on the label.
    """

    label_smoothing: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"CrossEntropy: label_smoothing must lie in [0, 1); got {self.label_smoothing}")

    def __call__(self, logits: Float[Array, "batch classes"], labels: Int[Array, " batch"]) -> Float[Array, ""]:
        if self.label_smoothing == 0.0:
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), self.label_smoothing)
        return optax.softmax_cross_entropy(logits, targets).mean()


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


@dataclass(frozen=True)
class SpikeCountRegulariser:
    """Keeps hidden neurons near ``target`` spikes per example (the rate regulariser of Zenke & Vogels
    2021 and Nowotny et al. 2025):

        R = strength * mean_i (mean_batch c_i - target)^2

    over the hidden neurons ``i``, where ``c_i`` is the model's differentiable spike count
    (``stats["neuron_counts"]``, e.g. `zoo.eventprop.discounted_counts`, so EventProp gives its exact
    gradient). Added to the loss by the trainer (``regulariser=spike_count``)."""

    strength: float = 1e-3
    target: float = 1.0

    def __post_init__(self):
        if self.strength < 0 or self.target < 0:
            raise ValueError(f"SpikeCountRegulariser: need strength >= 0 and target >= 0; got {self}")

    def __call__(self, stats: dict[str, Array]) -> Float[Array, ""]:
        if "neuron_counts" not in stats:
            raise ValueError("SpikeCountRegulariser: the model reports no differentiable spike counts "
                             f"(stats {sorted(stats)}); use a model with exact spike times (model=lif_network)")
        return self.strength * jnp.mean((stats["neuron_counts"].mean(0) - self.target) ** 2)


@dataclass(frozen=True)
class MapRateFloor:
    """Keeps every feature map of a convolutional SNN spiking: a penalty on the maps whose rate falls
    below ``floor`` spikes per neuron per step, none on the others,

        R = strength * mean_m (max(0, floor - mean_batch r_m) / floor)^2

    over the maps ``m`` of all blocks, ``r_m`` the model's ``stats["map_rates"]`` (`DelayedConv`). A silent
    map costs ``strength``. Why: under `queues.Scheduled` a map that stops spiking sends no event, so the
    loss's gradient never reaches it again (README, silent maps); ``r_m`` is differentiable through the
    surrogate on the map's own membranes, so this gradient does. Added to the loss by the trainer
    (``regulariser=map_rate_floor``)."""

    strength: float = 0.1
    floor: float = 0.001

    def __post_init__(self):
        if not self.strength >= 0 or not self.floor > 0:
            raise ValueError(f"MapRateFloor: need strength >= 0 and floor > 0; got {self}")

    def __call__(self, stats: dict[str, Array]) -> Float[Array, ""]:
        if "map_rates" not in stats:
            raise ValueError(f"MapRateFloor: the model reports no feature-map rates (stats {sorted(stats)}); "
                             "use a model with feature maps (model=delayed_conv)")
        shortfall = jax.nn.relu(self.floor - stats["map_rates"].mean(0)) / self.floor
        return self.strength * jnp.mean(shortfall ** 2)
