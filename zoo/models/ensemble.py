"""Ensembles: one prediction from several predictions of one example (networks trained apart, or views)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


def mean_prediction(logits: Float[Array, "members classes"], stats: dict) -> tuple[Float[Array, " classes"], dict]:
    r"""One prediction from :math:`M` stacked ones: the log of their mean class probability,

    .. math:: \ell_c = \log \frac{1}{M} \sum_{m=1}^{M} \operatorname{softmax}(z^{(m)})_c,

    so ``argmax`` is the class they agree on most, weighed by their confidence; and ``stats`` (each leaf
    stacked along a first axis of :math:`M`) with the shapes of one prediction's: each scalar (a count:
    spikes, synops, dropped spikes) summed, the whole prediction's cost; each array (per neuron or map:
    rates) averaged."""
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    stats = jax.tree.map(lambda v: v.sum(0) if v.ndim == 1 else v.mean(0), stats)
    return jax.nn.logsumexp(log_probs, axis=0) - jnp.log(logits.shape[0]), stats


class Ensemble(eqx.Module):
    """Models of one architecture (``model(spikes, times, key=...) -> (logits, stats)``), trained apart
    (e.g. from other seeds), predicting together: `mean_prediction` of their predictions. It costs one pass
    of every member: a different model from any member alone, to be reported as such."""

    members: tuple[eqx.Module, ...]

    def __init__(self, members):
        members = tuple(members)
        if len(members) < 2:
            raise ValueError(f"Ensemble: needs at least two members, got {len(members)}")
        self.members = members

    def __call__(self, spikes: Float[Array, "steps channels"], times: Float[Array, "steps channels"] | None = None,
                 *, key: PRNGKeyArray | None = None) -> tuple[Float[Array, " classes"], dict]:
        predictions = [member(spikes, times, key=key) for member in self.members]
        shapes = {tuple(logits.shape) for logits, _ in predictions}
        stats_shapes = {(jax.tree.structure(stats), tuple(v.shape for v in jax.tree.leaves(stats)))
                        for _, stats in predictions}
        if len(shapes) > 1 or len(stats_shapes) > 1:
            raise ValueError(f"Ensemble: members predict differently shaped outputs (logits {sorted(shapes)}); "
                             "an ensemble averages models of one architecture and one class count")
        logits = jnp.stack([logits for logits, _ in predictions])
        stats = jax.tree.map(lambda *v: jnp.stack(v), *[stats for _, stats in predictions])
        return mean_prediction(logits, stats)
