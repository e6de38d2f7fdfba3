"""The training losses of `zoo.losses` against their formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.losses import CrossEntropy


def test_label_smoothing_mixes_a_uniform_share_into_the_targets():
    logits = jax.random.normal(jax.random.key(0), (6, 10)) * 3
    labels = jnp.array([0, 3, 9, 3, 5, 1])
    log_p = np.asarray(jax.nn.log_softmax(logits))
    rows = np.arange(6)
    plain = -log_p[rows, labels].mean()
    a = 0.1
    # (1 - a) onehot + a / C as the target: -(1 - a) log p_y - a / C sum_c log p_c
    smoothed = (-(1 - a) * log_p[rows, labels] - a / 10 * log_p.sum(1)).mean()
    np.testing.assert_allclose(CrossEntropy()(logits, labels), plain, rtol=1e-6)
    np.testing.assert_allclose(CrossEntropy(label_smoothing=a)(logits, labels), smoothed, rtol=1e-6)
    assert abs(smoothed - plain) > 1e-3   # the two differ on these logits, so the check can fail


def test_label_smoothing_stops_rewarding_a_larger_margin():
    labels = jnp.array([2])
    margins = jnp.array([2.0, 6.0, 20.0])
    def loss(fn, m):
        return fn(jnp.zeros((1, 10)).at[0, 2].set(m), labels)
    plain = [float(loss(CrossEntropy(), m)) for m in margins]
    smoothed = [float(loss(CrossEntropy(label_smoothing=0.1), m)) for m in margins]
    assert plain[0] > plain[1] > plain[2]          # without: a larger margin always lowers the loss
    assert smoothed[1] < smoothed[0] and smoothed[2] > smoothed[1]   # with: a margin too large costs


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_label_smoothing_outside_zero_one_is_an_error_naming_it(bad):
    with pytest.raises(ValueError, match="label_smoothing must lie in"):
        CrossEntropy(label_smoothing=bad)
