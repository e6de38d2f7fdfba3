"""Surrogates and readouts of the delayed SNN."""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import queues

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from zoo import neurons
from zoo.models import DelayedFeedForward
from zoo.models.common import readout_logits


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
    np.testing.assert_allclose(readout_logits("first_spike", outputs), [-3.0, -2.0])
    silent = jnp.zeros((5, 2))
    np.testing.assert_allclose(readout_logits("first_spike", silent), [-5.0, -5.0])
    np.testing.assert_allclose(readout_logits("spike_count", outputs), [1.0, 2.0])
    np.testing.assert_allclose(readout_logits("sum_membrane", outputs), [0.25, 0.5])
    np.testing.assert_allclose(readout_logits("max_membrane", outputs), [1.0, 1.0])


def test_bad_model_arguments_name_the_choices():
    with pytest.raises(ValueError, match="unknown readout 'last'; choose from max_membrane"):
        model("last")
    with pytest.raises(ValueError, match="`hidden` must be a positive integer"):
        DelayedFeedForward(3, 0, 2, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=r"`spikes` must be \(steps, 3\)"):
        model("max_membrane")(jnp.zeros((10, 5)))


def test_recurrent_model_learns_delays_on_both_layers_and_is_queue_independent():
    import equinox as eqx
    import optax
    from zoo.data import DelayTask
    from zoo.models import DelayedRecurrent, label_delays, project_delays, swap_queues

    data = DelayTask(examples=8, interval=20.0, jitter=4, noise_channels=2).load()
    net = DelayedRecurrent(4, 6, 2, queue=queues.DelayLine(max_delay=24.0), key=jax.random.PRNGKey(3),
                           threshold=0.3, recurrent_scale=2.0)
    x = (jnp.asarray(data.spikes), jnp.asarray(data.times))
    logits, stats = jax.vmap(net)(*x)
    assert float(stats["spikes"].sum()) > 0  # the hidden layer is active, so recurrence matters
    big = swap_queues(net, lambda d: queues.SortedArray(capacity=32, max_delay=d))
    np.testing.assert_allclose(jax.vmap(big)(*x)[0], logits, rtol=1e-5, atol=1e-6)

    def loss(model):
        out, _ = jax.vmap(model)(*x)
        return optax.softmax_cross_entropy_with_integer_labels(out, jnp.asarray(data.labels)).mean()

    grads = eqx.filter_grad(loss)(net)
    for g in (grads.input.delays, grads.recurrent.delays):
        assert np.all(np.isfinite(g)) and float(jnp.abs(g).sum()) > 0

    labels = label_delays(eqx.filter(net, eqx.is_array))
    assert labels.input.delays == labels.recurrent.delays == "delays" and labels.w_out == "weights"
    stretched = eqx.tree_at(lambda m: m.recurrent.delays, net, net.recurrent.delays + 100.0)
    assert float(project_delays(stretched).recurrent.delays.max()) == 24.0


def test_conv_model_gradients_reach_both_kinds_of_delay_and_queue_independence():
    import equinox as eqx
    from zoo.models import DelayedConv, label_delays, swap_queues

    frame = (2, 6, 6)
    spikes = jax.random.bernoulli(jax.random.PRNGKey(0), 0.3, (3, 20, 72)).astype(jnp.float32)
    net = DelayedConv(72, 8, 3, frame=frame, queue=queues.DelayLine(max_delay=5.0), key=jax.random.PRNGKey(1),
                      threshold=0.2, features=4)
    logits, stats = jax.vmap(net)(spikes)
    assert logits.shape == (3, 3) and float(stats["spikes"].sum()) > 0 and int(stats["dropped"].sum()) == 0
    other = swap_queues(net, lambda d: queues.SortedArray(capacity=8, max_delay=d))
    np.testing.assert_allclose(jax.vmap(other)(spikes)[0], logits, rtol=1e-5, atol=1e-6)

    grads = eqx.filter_grad(lambda m: jax.vmap(m)(spikes)[0].sum())(net)
    for g in (grads.map_delays, grads.dense.delays):
        assert np.all(np.isfinite(g)) and float(jnp.abs(g).sum()) > 0
    labels = label_delays(eqx.filter(net, eqx.is_array))
    assert labels.map_delays == labels.dense.delays == "delays" and labels.convs[0].weight == "weights"
    with pytest.raises(ValueError, match="must multiply to channels=72"):
        DelayedConv(72, 8, 3, frame=(2, 5, 6), key=jax.random.PRNGKey(0))


def test_shift_averaged_is_the_log_mean_probability_of_the_shifted_views():
    """`ShiftAveraged`: each view is the example moved as `RandomShift` moves it (`shift_frames`), run through
    the network alone; its logits are the log of the views' mean softmax, and with no shift the network's own
    log-softmax. Its stats are the views', counts summed and rates averaged."""
    from zoo.data import shift_frames
    from zoo.models import DelayedConv, ShiftAveraged

    frame = (2, 6, 6)
    spikes = jax.random.bernoulli(jax.random.PRNGKey(0), 0.3, (2, 20, 72)).astype(jnp.float32)
    net = DelayedConv(72, 8, 3, frame=frame, queue=queues.Scheduled(max_delay=5.0), key=jax.random.PRNGKey(1),
                      threshold=0.2, features=4)
    alone, _ = jax.vmap(net)(spikes)
    np.testing.assert_allclose(jax.vmap(ShiftAveraged(net, frame, 0))(spikes)[0], jax.nn.log_softmax(alone),
                               rtol=1e-5, atol=1e-6)
    averaged = ShiftAveraged(net, frame, 1)
    assert len(averaged.shifts) == 9 and (0, 0) in averaged.shifts and (-1, 1) in averaged.shifts
    logits, stats = jax.vmap(averaged)(spikes)
    views = np.stack([[shift_frames(np.asarray(x), frame, dy, dx) for dy, dx in averaged.shifts] for x in spikes])
    each, each_stats = jax.vmap(jax.vmap(net))(jnp.asarray(views))
    assert not np.allclose(each[:, 0], each[:, 4])  # the views differ, so the average is over distinct inputs
    np.testing.assert_allclose(logits, np.log(np.asarray(jax.nn.softmax(each, -1)).mean(1)), rtol=1e-5, atol=1e-5)
    # the model's stats shapes: counts summed over the views (the whole prediction's), rates averaged
    np.testing.assert_array_equal(stats["dropped"], each_stats["dropped"].sum(1))
    np.testing.assert_allclose(stats["spikes"], each_stats["spikes"].sum(1), rtol=1e-6)
    np.testing.assert_allclose(stats["map_rates"], each_stats["map_rates"].mean(1), rtol=1e-6)
    assert all(stats[k].shape == v.shape for k, v in jax.vmap(net)(spikes)[1].items())
    with pytest.raises(ValueError, match="`max_shift` must be a non-negative integer"):
        ShiftAveraged(net, frame, -1)
    with pytest.raises(ValueError, match="needs the frame shape"):
        ShiftAveraged(net, None, 1)
    with pytest.raises(ValueError, match="72 channels do not make frames of"):
        ShiftAveraged(net, (2, 5, 6), 1)(spikes[0])


def test_ensemble_is_the_log_mean_probability_of_its_members():
    """`Ensemble`: networks of one architecture with other weights predict together, the log of their mean
    softmax; its stats have one network's shapes, counts summed over the members and rates averaged. Members
    that predict other shapes, or fewer than two, are refused by name."""
    from zoo.models import DelayedConv, Ensemble

    frame = (2, 6, 6)
    spikes = jax.random.bernoulli(jax.random.PRNGKey(0), 0.3, (3, 20, 72)).astype(jnp.float32)
    nets = [DelayedConv(72, 8, 3, frame=frame, queue=queues.Scheduled(max_delay=5.0), key=jax.random.PRNGKey(k),
                        threshold=0.2, features=4) for k in (1, 2)]
    logits, stats = jax.vmap(Ensemble(nets))(spikes)
    (a, a_stats), (b, b_stats) = (jax.vmap(net)(spikes) for net in nets)
    assert not np.allclose(a, b)  # the members differ, so the mean is over distinct predictions
    by_hand = np.log((np.asarray(jax.nn.softmax(a, -1)) + np.asarray(jax.nn.softmax(b, -1))) / 2)
    np.testing.assert_allclose(logits, by_hand, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(stats["dropped"], a_stats["dropped"] + b_stats["dropped"])
    np.testing.assert_allclose(stats["spikes"], a_stats["spikes"] + b_stats["spikes"], rtol=1e-6)
    np.testing.assert_allclose(stats["map_rates"], (a_stats["map_rates"] + b_stats["map_rates"]) / 2, rtol=1e-6)
    assert all(stats[k].shape == v.shape for k, v in a_stats.items())
    with pytest.raises(ValueError, match="needs at least two members, got 1"):
        Ensemble(nets[:1])
    other = DelayedConv(72, 8, 4, frame=frame, queue=queues.Scheduled(max_delay=5.0), key=jax.random.PRNGKey(3),
                        threshold=0.2, features=4)
    with pytest.raises(ValueError, match="members predict differently shaped outputs"):
        Ensemble([nets[0], other])(spikes[0])


def test_map_spikes_counts_each_feature_map_and_finds_a_silent_one():
    """``DelayedConv.map_spikes``: each block's spikes per map over one recording, those of the first block
    as its convolution block counts them, all within the model's spike count; a map whose weights and bias
    are 0 never reaches the threshold, and is the one reported silent."""
    import equinox as eqx
    from zoo.models import DelayedConv

    frame = (2, 8, 8)
    spikes = jax.random.bernoulli(jax.random.PRNGKey(0), 0.3, (20, 128)).astype(jnp.float32)
    net = DelayedConv(128, 8, 3, frame=frame, queue=queues.Scheduled(max_delay=5.0), key=jax.random.PRNGKey(1),
                      threshold=0.2, features=(4, 6), weight_scale=2.0)
    conv = net.convs[1]
    silenced = eqx.tree_at(lambda m: (m.convs[1].weight, m.convs[1].bias), net,
                           (conv.weight.at[2].set(0.0), conv.bias.at[2].set(0.0)))
    first, second = silenced.map_spikes(spikes)
    assert first.shape == (4,) and second.shape == (6,)
    assert np.all(np.asarray(first) > 0) and np.flatnonzero(np.asarray(second) == 0).tolist() == [2]
    # the maps' spikes are the model's spike count less the hidden neurons' (the dense layer's outputs)
    beta = float(np.exp(-1 / net.dense.tau_mem))
    pooled, per_step = silenced._conv_block(silenced.convs[0], spikes.reshape(20, *frame), beta, net.spike_fn())
    assert per_step.shape == (20, 4) and np.array_equal(np.asarray(per_step.sum(0)), np.asarray(first))
    _, stats = silenced(spikes)
    assert float(stats["spikes"]) >= float(first.sum() + second.sum()) > 0


def test_map_rate_floor_wakes_a_silent_map_the_loss_cannot_reach():
    """``stats["map_rates"]`` is each map's spikes per neuron per step (`map_spikes` over steps x the block's
    neurons per map). Under `queues.Scheduled` the loss's gradient at a silent map's weights is exactly 0
    (no event carries it); `zoo.losses.MapRateFloor`'s is not, and gradient steps on it alone make the map
    spike again; maps above the floor cost nothing; bad settings and models without maps are errors."""
    import equinox as eqx
    import optax
    from zoo.losses import MapRateFloor
    from zoo.models import DelayedConv, DelayedFeedForward

    frame = (2, 8, 8)
    spikes = jax.random.bernoulli(jax.random.PRNGKey(0), 0.3, (3, 20, 128)).astype(jnp.float32)
    labels = jnp.array([0, 1, 2])
    net = DelayedConv(128, 8, 3, frame=frame, queue=queues.Scheduled(max_delay=5.0), key=jax.random.PRNGKey(1),
                      threshold=0.2, features=(4, 6), weight_scale=2.0)
    conv = net.convs[1]
    silenced = eqx.tree_at(lambda m: (m.convs[1].weight, m.convs[1].bias), net,
                           (conv.weight.at[2].set(0.0), conv.bias.at[2].set(0.0)))
    _, stats = jax.vmap(silenced)(spikes)
    first, second = jax.vmap(silenced.map_spikes)(spikes)
    expected = np.concatenate([np.asarray(first) / (20 * 64), np.asarray(second) / (20 * 16)], axis=1)
    np.testing.assert_allclose(np.asarray(stats["map_rates"]), expected, rtol=1e-6)
    assert float(stats["map_rates"][:, 4 + 2].max()) == 0.0 and float(stats["map_rates"].min(0)[:4].min()) > 0

    def loss(model):
        return optax.softmax_cross_entropy_with_integer_labels(jax.vmap(model)(spikes)[0], labels).mean()

    floor = MapRateFloor(strength=1.0, floor=0.05)
    penalty = lambda model: floor(jax.vmap(model)(spikes)[1])  # noqa: E731
    silent_grad = lambda g: (g.convs[1].weight[2], g.convs[1].bias[2])  # noqa: E731
    assert all(float(jnp.abs(g).max()) == 0.0 for g in silent_grad(eqx.filter_grad(loss)(silenced)))
    weight_grad, bias_grad = silent_grad(eqx.filter_grad(penalty)(silenced))
    assert float(bias_grad.sum()) < 0 and float(jnp.abs(weight_grad).max()) > 0  # a higher bias lowers the penalty
    assert float(penalty(silenced)) >= 1.0 / 10  # the silent map alone: strength / 10 maps

    model, optimiser = silenced, optax.sgd(0.05)
    state = optimiser.init(eqx.filter(model, eqx.is_array))
    for _ in range(50):
        grads = eqx.filter_grad(penalty)(model)
        updates, state = optimiser.update(grads, state)
        model = eqx.apply_updates(model, updates)
        if float(jax.vmap(model.map_spikes)(spikes)[1][:, 2].sum()) > 0:
            break
    assert float(jax.vmap(model.map_spikes)(spikes)[1][:, 2].sum()) > 0, "the floor did not wake the map"

    assert float(MapRateFloor(strength=1.0, floor=1e-6)(jax.vmap(net)(spikes)[1])) == 0.0  # all maps above it
    for bad in ({"floor": 0.0}, {"strength": -1.0}, {"strength": float("nan")}):
        with pytest.raises(ValueError, match="MapRateFloor: need strength >= 0 and floor > 0"):
            MapRateFloor(**bad)
    ffn = DelayedFeedForward(128, 8, 3, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="reports no feature-map rates.*model=delayed_conv"):
        floor(jax.vmap(ffn)(spikes)[1])


def test_stacked_conv_blocks_read_the_pooled_spikes_below_and_all_learn():
    """``features=(4, 6)``: the second convolution reads the first block's pooled spikes, the dense layer
    the second's; every convolution and both kinds of delay get gradients, and sizes that pool a frame
    away are refused."""
    import equinox as eqx
    from zoo.models import DelayedConv

    frame = (2, 8, 8)
    spikes = jax.random.bernoulli(jax.random.PRNGKey(0), 0.3, (3, 20, 128)).astype(jnp.float32)
    net = DelayedConv(128, 8, 3, frame=frame, queue=queues.Scheduled(max_delay=5.0), key=jax.random.PRNGKey(1),
                      threshold=0.2, features=(4, 6), weight_scale=2.0)
    assert [c.in_channels for c in net.convs] == [2, 4] and [c.out_channels for c in net.convs] == [4, 6]
    assert net.map_delays.shape == (6,) and net.dense.delays.shape == (6 * 2 * 2, 8)
    beta = float(np.exp(-1 / net.dense.tau_mem))
    first, _ = net._conv_block(net.convs[0], spikes[0].reshape(20, *frame), beta, net.spike_fn())
    assert first.shape == (20, 4, 4, 4) and float(first.sum()) > 0
    second, _ = net._conv_block(net.convs[1], first, beta, net.spike_fn())
    assert second.shape == (20, 6, 2, 2) and float(second.sum()) > 0

    logits, stats = jax.vmap(net)(spikes)
    assert logits.shape == (3, 3) and int(stats["dropped"].sum()) == 0
    from zoo.build import reconfigured
    half_net = reconfigured(net, dtype=jnp.bfloat16)  # a bfloat16 variant (zoo.autotune)
    maps, _ = half_net._conv_block(half_net.convs[0], spikes[0].reshape(20, *frame).astype(jnp.bfloat16), beta,
                                   net.spike_fn())
    assert maps.dtype == jnp.bfloat16  # what the second block's bfloat16 convolution reads
    half, half_stats = jax.vmap(half_net)(spikes.astype(jnp.bfloat16))
    assert np.all(np.isfinite(np.asarray(half, np.float32))) and int(half_stats["dropped"].sum()) == 0
    assert half.dtype == jnp.float32  # the LIF state integrates in float32 whatever the weights' (hidden_state)
    grads = eqx.filter_grad(lambda m: jnp.sum(jnp.tanh(jax.vmap(m)(spikes)[0])))(net)
    for g in (grads.convs[0].weight, grads.convs[1].weight, grads.map_delays, grads.dense.delays):
        assert np.all(np.isfinite(g)) and float(jnp.abs(g).sum()) > 0
    # the initial gain multiplies every convolution's weights and biases, nothing else
    plain = DelayedConv(128, 8, 3, frame=frame, key=jax.random.PRNGKey(1), features=(4, 6))
    np.testing.assert_allclose(net.convs[1].weight, 2.0 * plain.convs[1].weight, rtol=1e-6)
    np.testing.assert_array_equal(net.w_out, plain.w_out)
    with pytest.raises(ValueError, match="3 blocks of 2x2 pooling leave nothing of a 4x4 frame"):
        DelayedConv(32, 8, 3, frame=(2, 4, 4), key=jax.random.PRNGKey(0), features=(2, 2, 2))
    with pytest.raises(ValueError, match=r"`features\[1\]` must be a positive integer, got 0"):
        DelayedConv(128, 8, 3, frame=frame, key=jax.random.PRNGKey(0), features=(4, 0))
    with pytest.raises(ValueError, match="`weight_scale` must be positive"):
        DelayedConv(128, 8, 3, frame=frame, key=jax.random.PRNGKey(0), weight_scale=0.0)


def test_scheduled_conv_model_equals_its_stepped_queues_in_values_and_gradients():
    """Both of DelayedConv's delays (axonal per map, synaptic per synapse) scheduled at once give what
    stepped queues give; too small a capacity is counted, not hidden. The gradients agree except the
    convolutions': scheduled events carry their spikes' surrogate derivative, queues only spike times."""
    import equinox as eqx
    from zoo.models import DelayedConv, swap_queues

    spikes = jax.random.bernoulli(jax.random.PRNGKey(0), 0.3, (3, 20, 72)).astype(jnp.float32)
    stepped = DelayedConv(72, 8, 3, frame=(2, 6, 6), queue=queues.FIFORing(capacity=8, max_delay=5.0),
                          key=jax.random.PRNGKey(1), threshold=0.2, features=4)

    def loss(model):
        logits, stats = jax.vmap(model)(spikes)
        return jnp.sum(jnp.tanh(logits)), stats

    (ref, ref_stats), ref_grads = eqx.filter_value_and_grad(loss, has_aux=True)(stepped)
    assert int(ref_stats["dropped"].sum()) == 0 and float(ref_stats["spikes"].sum()) > 0
    scheduled = swap_queues(stepped, lambda d: queues.Scheduled(max_delay=d))
    (value, stats), grads = eqx.filter_value_and_grad(loss, has_aux=True)(scheduled)
    np.testing.assert_allclose(value, ref, rtol=1e-5)
    for key in ("spikes", "synops", "dropped"):
        np.testing.assert_array_equal(stats[key], ref_stats[key])
    without_convs = lambda g: eqx.filter(eqx.tree_at(lambda m: m.convs, g, ()), eqx.is_array)  # noqa: E731
    for a, b in zip(jax.tree_util.tree_leaves(without_convs(grads)), jax.tree_util.tree_leaves(without_convs(ref_grads))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert float(jnp.abs(ref_grads.map_delays).sum()) > 0 and float(jnp.abs(ref_grads.dense.delays).sum()) > 0
    assert float(jnp.abs(ref_grads.convs[0].weight).sum()) == 0 < float(jnp.abs(grads.convs[0].weight).sum())
    short = swap_queues(stepped, lambda d: queues.Scheduled(max_delay=d, capacity=4))
    assert int(jax.vmap(short)(spikes)[1]["dropped"].min()) > 0
    # a capacity below the raster's size (20 x 36 pooled units) that drops nothing only pads the events with
    # zeros: the same values and gradients to the bit, at less cost
    padded = swap_queues(stepped, lambda d: queues.Scheduled(max_delay=d, capacity=360))
    (less, less_stats), less_grads = eqx.filter_value_and_grad(loss, has_aux=True)(padded)
    assert int(less_stats["dropped"].sum()) == 0 and less == value
    for a, b in zip(jax.tree_util.tree_leaves(eqx.filter(less_grads, eqx.is_array)),
                    jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_array))):
        np.testing.assert_array_equal(a, b)
    # every delay 0 (the no-delay ablation): a unit's spike of step 0 reaches the dense layer just after 0
    zero = eqx.tree_at(lambda m: (m.map_delays, m.dense.delays), stepped,
                       (jnp.zeros_like(stepped.map_delays), jnp.zeros_like(stepped.dense.delays)))
    np.testing.assert_allclose(eqx.filter_jit(jax.vmap(swap_queues(zero, lambda d: queues.Scheduled(max_delay=d))))(
        spikes)[0], eqx.filter_jit(jax.vmap(zero))(spikes)[0], rtol=1e-5, atol=1e-6)


def test_scheduled_conv_spikes_of_the_last_two_steps_never_reach_the_hidden_neurons():
    """A pooled spike of step n reaches the dense layer at step n + 1 at the earliest (its axon), and the
    hidden neurons at n + 2 (their synapses): those of the last two steps arrive after the window. The
    last step's take no capacity (`Schedule.late`); a capacity that drops only the step before's counts
    the drops but changes neither the logits nor the gradients; one that drops half the earlier events
    changes the logits. (Why the batch-8 conv recipe's training drops with delays changed nothing: its
    queue.capacity=16384 run trained the same network.)"""
    import equinox as eqx
    from zoo.models import DelayedConv, swap_queues
    from zoo.models.common import decays

    spikes = jax.random.bernoulli(jax.random.PRNGKey(0), 0.3, (20, 72)).astype(jnp.float32)
    net = DelayedConv(72, 8, 3, frame=(2, 6, 6), queue=queues.Scheduled(max_delay=5.0), key=jax.random.PRNGKey(1),
                      threshold=0.2, features=4)
    _, beta = decays(net.dense.tau_syn, net.dense.tau_mem)
    pooled, _ = net._conv_block(net.convs[0], spikes.reshape(20, 2, 6, 6), beta, net.spike_fn())
    per_step = np.asarray((pooled > 0).reshape(20, -1).sum(1))
    assert per_step[-2:].sum() > 0
    early = int(per_step[:-2].sum())

    def loss(model):
        logits, stats = model(spikes)
        return jnp.sum(jnp.tanh(logits)), (logits, stats["dropped"])

    (_, (logits, dropped)), grads = eqx.filter_value_and_grad(loss, has_aux=True)(net)
    assert int(dropped) == 0
    short = swap_queues(net, lambda d: queues.Scheduled(max_delay=d, capacity=early))
    (_, (short_logits, short_dropped)), short_grads = eqx.filter_value_and_grad(loss, has_aux=True)(short)
    assert per_step[-2] > 0 and int(short_dropped) == per_step[-2]   # the last step's are late, not dropped
    np.testing.assert_array_equal(short_logits, logits)
    for a, b in zip(jax.tree_util.tree_leaves(eqx.filter(short_grads, eqx.is_array)),
                    jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_array))):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    shorter = swap_queues(net, lambda d: queues.Scheduled(max_delay=d, capacity=early // 2))
    assert not np.array_equal(shorter(spikes)[0], logits)


@pytest.mark.parametrize("cls", ["DelayedFeedForward", "DelayedRecurrent"])
def test_rematerialisation_changes_memory_not_results(cls):
    import equinox as eqx
    from zoo import models
    from zoo.data import DelayTask
    from queues_vs_adseq import peak_bytes

    data = DelayTask(examples=8, noise_channels=2).load()
    x = (jnp.asarray(data.spikes), jnp.asarray(data.times))
    make = getattr(models, cls)
    plain = make(4, 16, 2, queue=queues.SortedArray(capacity=4, max_delay=64.0), key=jax.random.PRNGKey(0))
    remat = make(4, 16, 2, queue=queues.SortedArray(capacity=4, max_delay=64.0), key=jax.random.PRNGKey(0),
                 remat_chunk=10)

    def loss(m):
        return jax.vmap(m)(*x)[0].sum()

    np.testing.assert_allclose(loss(remat), loss(plain), rtol=1e-6)
    g_plain, g_remat = eqx.filter_grad(loss)(plain), eqx.filter_grad(loss)(remat)
    for a, b in zip(jax.tree_util.tree_leaves(g_plain), jax.tree_util.tree_leaves(g_remat)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    def compiled_grad(m):
        params, static = eqx.partition(m, eqx.is_array)
        return jax.jit(jax.grad(lambda p: loss(eqx.combine(p, static)))).lower(params).compile()

    memory = [peak_bytes(compiled_grad(m)) for m in (plain, remat)]
    assert memory[1] < memory[0] / 2
    with pytest.raises(ValueError, match="`remat_chunk` must be a positive"):
        make(4, 16, 2, key=jax.random.PRNGKey(0), remat_chunk=0)


def test_models_count_their_synaptic_operations():
    """SynOps per example (evaluate.py's benchmark): each presynaptic event times its fan-out."""
    from zoo.models import DelayedConv
    x = (jax.random.uniform(jax.random.PRNGKey(1), (12, 2 * 6 * 6)) < 0.2).astype(jnp.float32)
    events = int((x > 0).sum())
    ffn = DelayedFeedForward(72, 8, 3, queue=queues.FIFORing(capacity=4, max_delay=8.0), key=jax.random.PRNGKey(0))
    _, stats = ffn(x)
    assert int(stats["synops"]) == events * 8 + int(stats["spikes"]) * 3
    conv = DelayedConv(72, 8, 3, key=jax.random.PRNGKey(0), frame=(2, 6, 6),
                       queue=queues.FIFORing(capacity=2, max_delay=8.0))
    _, stats = conv(x)
    assert int(stats["synops"]) >= events * conv.convs[0].out_channels * 9  # the convolution's share alone


def test_scheduled_delivery_equals_a_stepped_queue_and_only_feed_forward_models_take_it():
    import equinox as eqx
    from zoo.data import DelayTask
    from zoo.models import DelayedRecurrent, ExactLIFNetwork, swap_queues

    data = DelayTask(examples=8, noise_channels=3).load()
    x = (jnp.asarray(data.spikes), jnp.asarray(data.times))
    events = int((data.spikes > 0).sum((1, 2)).max())
    stepped = DelayedFeedForward(5, 8, 2, queue=queues.FIFORing(capacity=8, max_delay=24.0), key=jax.random.PRNGKey(2),
                                 threshold=0.5)

    def loss(model):
        logits, stats = jax.vmap(model)(*x)
        return jnp.sum(jnp.tanh(logits)), stats

    (ref, ref_stats), ref_grads = eqx.filter_value_and_grad(loss, has_aux=True)(stepped)
    assert int(ref_stats["dropped"].sum()) == 0 and float(ref_stats["spikes"].sum()) > 0
    for capacity in (None, events):
        model = swap_queues(stepped, lambda d: queues.Scheduled(max_delay=d, capacity=capacity))
        (value, stats), grads = eqx.filter_value_and_grad(loss, has_aux=True)(model)
        np.testing.assert_allclose(value, ref, rtol=1e-5)
        np.testing.assert_array_equal(stats["spikes"], ref_stats["spikes"])
        for a, b in zip(jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_array)),
                        jax.tree_util.tree_leaves(eqx.filter(ref_grads, eqx.is_array))):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert float(jnp.abs(ref_grads.input.delays).sum()) > 0
    short = swap_queues(stepped, lambda d: queues.Scheduled(max_delay=d, capacity=events - 1))
    dropped = jax.vmap(short)(*x)[1]["dropped"]
    assert int(dropped.max()) == 8 and int(dropped.min()) >= 0  # one event x 8 hidden synapses, counted

    scheduled = queues.Scheduled(max_delay=8.0)
    with pytest.raises(ValueError, match="queue=scheduled needs every spike before the layer runs"):
        DelayedRecurrent(5, 8, 2, queue=scheduled, key=jax.random.PRNGKey(0))
    recurrent = swap_queues(DelayedRecurrent(5, 8, 2, key=jax.random.PRNGKey(0)), lambda d: queues.Scheduled(max_delay=d))
    with pytest.raises(ValueError, match="DelayedRecurrent: queue=scheduled"):
        recurrent(*(a[0] for a in x))
    with pytest.raises(ValueError, match="delivery='table' is scheduled delivery already"):
        ExactLIFNetwork(5, 8, 2, key=jax.random.PRNGKey(0), delivery="queue", queue=scheduled)


@pytest.mark.parametrize("cls", ["DelayedFeedForward", "DelayedRecurrent", "DelayedConv"])
def test_dropout_hides_the_same_hidden_neurons_from_the_readout_for_the_whole_example(cls):
    """With a key, the readout sees ``m_j s_j[n]`` (one mask per example, ``m_j`` 0 or ``1/(1-p)``): the
    logits of the model without dropout whose readout weights are scaled by that mask. The hidden
    neurons still spike (the same count); without a key, or at p = 0, the key changes nothing."""
    import equinox as eqx
    from zoo import models

    kwargs = {"frame": (2, 6, 6)} if cls == "DelayedConv" else {}
    x = (jax.random.uniform(jax.random.PRNGKey(1), (16, 72)) < 0.3).astype(jnp.float32)
    make = lambda p: getattr(models, cls)(72, 32, 3, queue=queues.FIFORing(capacity=4, max_delay=8.0),  # noqa: E731
                                          key=jax.random.PRNGKey(0), threshold=0.3, dropout=p, **kwargs)
    net, key = make(0.5), jax.random.PRNGKey(7)
    mask = net.readout_mask(key, 32)
    assert set(np.unique(np.asarray(mask)).tolist()) == {0.0, 2.0}
    logits, stats = net(x, key=key)
    masked = eqx.tree_at(lambda m: m.w_out, net, net.w_out * mask)
    plain_logits, plain_stats = masked(x)  # no key: no dropout
    assert float(stats["spikes"]) > 0 and int(stats["spikes"]) == int(plain_stats["spikes"])
    np.testing.assert_allclose(logits, plain_logits, rtol=1e-6, atol=1e-6)
    assert not np.allclose(net(x)[0], logits)
    assert not np.allclose(net(x, key=jax.random.PRNGKey(8))[0], logits)  # another example, another mask
    np.testing.assert_array_equal(make(0.0)(x, key=key)[0], make(0.0)(x)[0])
    with pytest.raises(ValueError, match="`dropout` must lie in"):
        make(1.0)


def test_dropout_masks_are_unbiased():
    net = DelayedFeedForward(3, 4000, 2, key=jax.random.PRNGKey(0), dropout=0.3)
    mask = np.asarray(net.readout_mask(jax.random.PRNGKey(3), 4000))
    assert abs((mask == 0).mean() - 0.3) < 0.03 and abs(mask.mean() - 1) < 0.05
    assert net.readout_mask(None, 4000) is None
