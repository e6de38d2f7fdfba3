"""Surrogates and readouts of the delayed SNN."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import queues
from zoo import neurons
from zoo.models import DelayedFeedForward


@pytest.mark.parametrize("name,slope,at0,far", [("fast_sigmoid", 10.0, 1.0, 1 / (1 + 10 * 2.0) ** 2),
                                                 ("arctan", 2.0, 1.0, 1.0 / (1 + (np.pi * 2.0) ** 2)),
                                                 ("triangle", 1.0, 1.0, 0.0)])
def test_surrogates_are_heaviside_with_their_derivative(name, slope, at0, far):
    spike = neurons.surrogate(name, slope)
    x = jnp.array([-2.0, -0.1, 0.0, 0.3])
    np.testing.assert_array_equal(spike(x), [0, 0, 1, 1])
    grad = jax.vmap(jax.grad(spike))(jnp.array([0.0, 2.0]))
    np.testing.assert_allclose(grad, [at0, far], rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="choose from fast_sigmoid, arctan, triangle"):
        neurons.surrogate("sigmoid", 1.0)


def model(readout):
    return DelayedFeedForward(3, 4, 2, queue=queues.DelayLine(max_delay=4.0), key=jax.random.PRNGKey(0),
                              readout=readout)


def test_first_spike_logits_are_minus_the_first_spike_step():
    outputs = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])  # class 0 fires first at 3, class 1 at 2
    np.testing.assert_allclose(model("first_spike")._logits(outputs), [-3.0, -2.0])
    silent = jnp.zeros((5, 2))
    np.testing.assert_allclose(model("first_spike")._logits(silent), [-5.0, -5.0])
    np.testing.assert_allclose(model("spike_count")._logits(outputs), [1.0, 2.0])
    np.testing.assert_allclose(model("sum_membrane")._logits(outputs), [0.25, 0.5])
    np.testing.assert_allclose(model("max_membrane")._logits(outputs), [1.0, 1.0])


def test_bad_model_arguments_name_the_choices():
    with pytest.raises(ValueError, match="unknown readout 'last'; choose from max_membrane"):
        model("last")
    with pytest.raises(ValueError, match="`hidden` must be a positive integer"):
        DelayedFeedForward(3, 0, 2, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=r"`spikes` must be \(steps, 3\)"):
        model("max_membrane")(jnp.zeros((10, 5)))
