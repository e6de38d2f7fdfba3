"""EventProp gradients: against central finite differences, autodiff through the same simulation, and
surrogate gradients (float64)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import eventprop, neurons

CELL = eventprop.LIFCell(tau_syn=2.0, tau_mem=4.0, threshold=1.0, max_spikes=4)
STEPS = 30


def problem(seed: int, sizes=(4, 6, 5, 3)):
    """Input spike times and a 2-hidden-layer network in a regime where every layer spikes."""
    keys = jax.random.split(jax.random.PRNGKey(seed), 2 * len(sizes))
    times = jax.random.uniform(keys[0], (sizes[0], 2), jnp.float64, 0.5, 10.0)
    weights = tuple(jax.random.normal(keys[1 + k], (post, pre), jnp.float64) * 0.3 + (0.45 if k == 0 else 0.7)
                    for k, (pre, post) in enumerate(zip(sizes, sizes[1:])))
    delays = tuple(jax.random.uniform(keys[len(sizes) + k], (pre, post), jnp.float64, 0.0, 5.0)
                   for k, (pre, post) in enumerate(zip(sizes, sizes[1:])))
    return weights, delays, times


def loss(weights, delays, times, method="eventprop", **kw):
    v, spike_times, _ = eventprop.network(weights, delays, times, cell=CELL, steps=STEPS, method=method, **kw)
    # a membrane loss on the readout plus a direct loss on the first hidden layer's spike times
    first = jnp.where(jnp.isfinite(spike_times[0]), spike_times[0], 0.0)
    return jnp.tanh(v.max(0)).sum() + 0.01 * (v ** 2).sum() + 0.02 * first.sum()


def reference_network(weights, delays, times, cell, steps):
    """The forward simulation written out arrival by arrival in NumPy (float64), from the equations of
    `zoo.neurons` alone: at the end of step ``n`` (covering ``(n-1, n]``)

        v(n) = e^{-1/tau_mem} v(n-1) + K(1) i(n-1) + sum_a w K(n - a),  i(n) = e^{-1/tau_syn} i(n-1) + sum_a w e^{-(n-a)/tau_syn},

    and a neuron whose ``v(n)`` reaches threshold spikes at the time found by bisecting the membrane in
    the step (at the step's start if ``v(n-1)`` was at threshold already); it restarts from 0 there, so
    ``v(n) = K(n - t*) i(t*) + sum_{a > t*} w K(n - a)``. Hidden
    layers spike, the readout does not. Returns the readout's membrane per step and each layer's spike
    times (post, max_spikes; inf where none)."""
    kernel = neurons.membrane_kernel(cell.tau_syn, cell.tau_mem)
    K = lambda x: float(kernel(x))  # noqa: E731
    times = np.asarray(times, np.float64)
    layer_times = []
    for k, (weight, delay) in enumerate(zip(weights, delays)):
        weight, delay = np.asarray(weight, np.float64), np.asarray(delay, np.float64)
        post = weight.shape[0]
        spiking = k < len(weights) - 1
        out = np.full((post, cell.max_spikes), np.inf)
        trace = np.zeros((steps, post))
        for j in range(post):
            arrivals = [(t + delay[src, j], weight[j, src]) for src in range(times.shape[0])
                        for t in times[src] if np.isfinite(t)]
            v = i = 0.0
            count = 0
            for n in range(steps):
                here = [(a, w) for a, w in arrivals if n - 1 < a <= n]

                def membrane(t, v=v, i=i, here=here, n=n):
                    h = t - (n - 1)
                    return (np.exp(-h / cell.tau_mem) * v + K(h) * i
                            + sum(w * K(t - a) for a, w in here if a <= t))

                def current(t, i=i, here=here, n=n):
                    return np.exp(-(t - (n - 1)) / cell.tau_syn) * i + sum(
                        w * np.exp(-(t - a) / cell.tau_syn) for a, w in here if a <= t)

                v_end, i_end = membrane(float(n)), current(float(n))
                if spiking and v_end >= cell.threshold:
                    lo, hi = n - 1.0, float(n)
                    for _ in range(60 if v < cell.threshold else 0):  # else: at threshold when the step starts
                        mid = (lo + hi) / 2
                        lo, hi = (lo, mid) if membrane(mid) >= cell.threshold else (mid, hi)
                    t_star = hi if v < cell.threshold else lo  # the step's start ("pinned")
                    if count < cell.max_spikes:
                        out[j, count] = t_star
                    count += 1
                    v_end = K(n - t_star) * current(t_star) + sum(w * K(n - a) for a, w in here if a > t_star)
                v, i = v_end, i_end
                trace[n, j] = v
        layer_times.append(out)
        times = out
    return trace, layer_times[:-1]


def test_forward_matches_an_arrival_by_arrival_reference():
    """The simulation itself (not only its gradients) against `reference_network`: spike times and the
    readout's membrane, on networks whose neurons spike several times (more than their slots hold, and
    some spikes pinned to a step's start), with several arrivals in one step."""
    with jax.enable_x64(True):
        for seed in (0, 1):
            weights, delays, times = problem(seed)
            v, spike_times, _ = eventprop.network(weights, delays, times, cell=CELL, steps=STEPS)
            ref_v, ref_times = reference_network(weights, delays, times, CELL, STEPS)
            assert sum(int(np.isfinite(t).sum()) for t in ref_times) >= 10
            for got, want in zip(spike_times[:-1], ref_times):
                np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
                np.testing.assert_allclose(np.where(np.isfinite(want), got, 0.0), np.where(np.isfinite(want), want, 0.0),
                                           rtol=0, atol=1e-9)
            np.testing.assert_allclose(v, ref_v, rtol=1e-9, atol=1e-9)


def test_float32_spike_times_are_found_to_float32_resolution():
    """The crossing search (halvings to a bracket, then Newton steps) gives float32 spike times within a few
    float32 ulps (1.9e-6 at t = 30) of `reference_network`'s 60 float64 halvings: no staircase from a
    search stopped short (the bracket alone is 1/64 of a step)."""
    with jax.enable_x64(True):
        worst = 0.0
        for seed in range(4):
            weights, delays, times = problem(seed)
            single = lambda arrays: tuple(a.astype(jnp.float32) for a in arrays)  # noqa: E731
            _, got, _ = eventprop.network(single(weights), single(delays), times.astype(jnp.float32), cell=CELL,
                                          steps=STEPS)
            _, want = reference_network(weights, delays, times, CELL, STEPS)
            for g, w in zip(got[:-1], want):
                assert g.dtype == jnp.float32
                np.testing.assert_array_equal(np.isfinite(g), np.isfinite(w))
                spiked = np.isfinite(w)
                worst = max(worst, float(np.abs(np.asarray(g, np.float64)[spiked] - w[spiked]).max()))
        assert worst <= 1e-5, worst


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eventprop_matches_finite_differences(seed):
    with jax.enable_x64(True):
        weights, delays, times = problem(seed)
        _, spike_times, counts = eventprop.network(weights, delays, times, cell=CELL, steps=STEPS)
        assert all(int(jnp.isfinite(t).sum()) > 0 for t in spike_times[:2])  # both hidden layers spike
        grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(weights, delays, times)
        f = jax.jit(loss)
        rng = np.random.default_rng(seed)
        eps, checked = 1e-6, 0
        for which, params in ((0, weights), (1, delays)):
            for k, p in enumerate(params):
                for _ in range(4):
                    idx = tuple(int(rng.integers(s)) for s in p.shape)
                    e = jnp.zeros_like(p).at[idx].set(eps)
                    bump = lambda sign: tuple(x + sign * e if j == k else x for j, x in enumerate(params))  # noqa: E731
                    args = ([bump(1), delays], [bump(-1), delays]) if which == 0 else ([weights, bump(1)],
                                                                                       [weights, bump(-1)])
                    fd = (f(*args[0], times) - f(*args[1], times)) / (2 * eps)
                    np.testing.assert_allclose(grads[which][k][idx], fd, rtol=1e-5, atol=1e-7)
                    checked += abs(float(fd)) > 1e-4
        for idx in [(0, 0), (1, 1), (3, 0)]:
            e = jnp.zeros_like(times).at[idx].set(eps)
            fd = (f(weights, delays, times + e) - f(weights, delays, times - e)) / (2 * eps)
            np.testing.assert_allclose(grads[2][idx], fd, rtol=1e-5, atol=1e-7)
        assert checked >= 8  # most of the sampled gradients are far from zero


@pytest.mark.parametrize("seed", [0, 3])
def test_eventprop_equals_autodiff_through_the_exact_simulation(seed):
    with jax.enable_x64(True):
        weights, delays, times = problem(seed, sizes=(5, 8, 7, 6, 3))  # three hidden layers
        ep = jax.grad(loss, argnums=(0, 1, 2))(weights, delays, times, "eventprop")
        ad = jax.grad(loss, argnums=(0, 1, 2))(weights, delays, times, "exact")
        for a, b in zip(jax.tree_util.tree_leaves(ep), jax.tree_util.tree_leaves(ad)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        assert float(jnp.abs(ep[1][0]).max()) > 1e-3  # the lowest layer's delays get gradients


def test_surrogate_gradients_share_the_loss_and_tend_to_eventprop_as_the_surrogate_narrows():
    """Same forward simulation, so the same loss. The surrogate adds what EventProp leaves out: a
    derivative of each threshold crossing's presence (in the reset and in the spikes it sends), nonzero
    wherever the membrane is near threshold; it vanishes as the surrogate narrows to a step."""
    with jax.enable_x64(True):
        weights, delays, times = problem(0)
        exact = jax.grad(loss)(weights, delays, times)
        gaps = []
        for slope in (1.0, 10.0, 100.0, 10_000.0):
            fn = neurons.fast_sigmoid(slope)
            assert float(loss(weights, delays, times, "surrogate", surrogate_fn=fn)) == pytest.approx(
                float(loss(weights, delays, times)), rel=1e-12)
            grad = jax.grad(loss)(weights, delays, times, "surrogate", surrogate_fn=fn)
            gaps.append(max(float(jnp.abs(a - b).max()) for a, b in zip(grad, exact)))
        assert gaps[0] > 0.1 * max(float(jnp.abs(g).max()) for g in exact)  # a wide surrogate differs a lot
        assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-3 * gaps[0]


def test_pinned_and_overflowing_spikes_are_counted_and_bad_input_named():
    with jax.enable_x64(True):
        weights, delays, times = (jax.tree_util.tree_map(lambda x: x.astype(jnp.float32), p) for p in problem(0))
    strong = (weights[0] * 6.0, *weights[1:])  # drives neurons to fire more often than once per step
    _, spike_times, counts = eventprop.network(strong, delays, times, cell=CELL, steps=STEPS)
    assert int(counts[0]["overflow"]) > 0 and int(counts[0]["pinned"]) > 0
    assert spike_times[0].shape == (6, CELL.max_spikes)
    with pytest.raises(ValueError, match="unknown method 'bptt'"):
        eventprop.network(weights, delays, times, cell=CELL, steps=STEPS, method="bptt")
    with pytest.raises(ValueError, match=r"layer 1 has weight \(5, 6\) and delays \(5, 5\)"):
        eventprop.network(weights, (delays[0], delays[1][:5, :], delays[2]), times, cell=CELL, steps=STEPS)
    with pytest.raises(ValueError, match="needs surrogate_fn"):
        eventprop.network(weights, delays, times, cell=CELL, steps=STEPS, method="surrogate")
    with pytest.raises(ValueError, match="max_spikes >= 1"):
        eventprop.LIFCell(max_spikes=0)


def test_input_times_from_a_raster():
    spikes = jnp.array([[0, 1], [1, 0], [1, 1], [0, 1]], jnp.uint8)
    exact = jnp.array([[0, -0.5], [0.25, 0], [1.5, 1.75], [0, 2.5]], jnp.float32)
    times, left_out = eventprop.input_times(spikes, exact, slots=2)
    np.testing.assert_array_equal(times, [[0.25, 1.5], [-0.5, 1.75]])
    np.testing.assert_array_equal(left_out, [0, 1])  # channel 1 has a third spike: counted, not hidden
    times, _ = eventprop.input_times(spikes, None, slots=3)
    np.testing.assert_array_equal(times, [[1.0, 2.0, np.inf], [0.0, 2.0, 3.0]])


def test_lif_network_trains_with_eventprop_and_bounds_its_delays():
    import equinox as eqx
    from zoo.data import YinYang
    from zoo.models import DelayedFeedForward, ExactLIFNetwork, label_delays, project_delays
    from zoo.trainer import EventPropTrainer, SurrogateTrainer

    data = YinYang(examples=480, seed=1).load()
    net = ExactLIFNetwork(5, [16, 8], 3, key=jax.random.PRNGKey(0), max_delay=4.0, weight_scale=2.0)
    labels = label_delays(eqx.filter(net, eqx.is_array))
    assert labels.delays == ("delays", "delays", "delays") and labels.weights == ("weights",) * 3
    stretched = eqx.tree_at(lambda m: m.delays, net, tuple(d + 10.0 for d in net.delays))
    assert all(float(d.max()) == 4.0 for d in project_delays(stretched).delays)

    assert EventPropTrainer().prepare(net).gradient == "eventprop"
    assert SurrogateTrainer().prepare(net.with_gradient("exact")).gradient == "surrogate"
    trained, metrics = EventPropTrainer(epochs=4, batch_size=32).fit(net, data, log=lambda _: None)
    assert trained.gradient == "eventprop" and metrics["val_accuracy"] > 0.6  # chance: 1/3
    assert any(float(jnp.abs(a - b).max()) > 1e-3 for a, b in zip(trained.delays, net.delays))  # delays learned
    logits, stats = trained(jnp.asarray(data.spikes[0]), jnp.asarray(data.times[0]))
    assert logits.shape == (3,) and int(stats["spikes"]) > 0

    ffn = DelayedFeedForward(5, 4, 3, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="DelayedFeedForward has no eventprop gradient; use a model simulated with"):
        EventPropTrainer(epochs=1, batch_size=32).fit(ffn, data, log=lambda _: None)
    with pytest.raises(ValueError, match="unknown readout 'spike_count'"):
        ExactLIFNetwork(5, 4, 3, key=jax.random.PRNGKey(0), readout="spike_count")


def test_train_and_evaluate_with_eventprop(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    run = tmp_path / "run"
    subprocess.run([sys.executable, "train.py", "model=lif_network", "trainer=eventprop", "dataset=yinyang",
                    "dataset.examples=300", "trainer.epochs=2", "trainer.batch_size=30", "max_delay=4",
                    "regulariser=spike_count",
                    f"hydra.run.dir={run}"], cwd=root, check=True, capture_output=True, text=True, timeout=600)
    assert json.loads((run / "metrics.json").read_text())["history"][-1]["epoch"] == 2
    out = tmp_path / "eval.json"
    subprocess.run([sys.executable, "evaluate.py", f"run={run}", "test_examples=90", "benchmark=true", "repeats=3",
                    f"out={out}"], cwd=root, check=True, capture_output=True, text=True, timeout=600)
    result = json.loads(out.read_text())
    assert result["num_samples"] == 90 and 0 <= result["accuracy"] <= 1
    assert [r["queue"] for r in result["benchmark"]] == ["none"]  # no queue to swap: one row, not fake ones


def test_recurrent_eventprop_matches_autodiff_and_finite_differences():
    with jax.enable_x64(True):
        weights, delays, times = problem(0)
        keys = jax.random.split(jax.random.PRNGKey(7), 4)
        h1, h2 = weights[0].shape[0], weights[1].shape[0]
        recurrent = ((jax.random.normal(keys[0], (h1, h1), jnp.float64) * 0.3,
                      jax.random.uniform(keys[1], (h1, h1), jnp.float64, 1.0, 6.0)),
                     (jax.random.normal(keys[2], (h2, h2), jnp.float64) * 0.3,
                      jax.random.uniform(keys[3], (h2, h2), jnp.float64, 1.0, 6.0)), None)

        def rec_loss(rec, method):
            v, spike_times, _ = eventprop.network(weights, delays, times, cell=CELL, steps=STEPS, method=method,
                                                  recurrent=rec)
            first = jnp.where(jnp.isfinite(spike_times[0]), spike_times[0], 0.0)
            return jnp.tanh(v.max(0)).sum() + 0.01 * (v ** 2).sum() + 0.02 * first.sum()

        ep = jax.grad(rec_loss)(recurrent, "eventprop")
        ad = jax.grad(rec_loss)(recurrent, "exact")
        for a, b in zip(jax.tree_util.tree_leaves(ep), jax.tree_util.tree_leaves(ad)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        f, eps, nonzero = jax.jit(lambda rec: rec_loss(rec, "exact")), 1e-6, 0
        for layer in (0, 1):
            for which in (0, 1):  # recurrent weights and recurrent delays
                grad = np.asarray(ep[layer][which])
                for idx in [np.unravel_index(np.abs(grad).argmax(), grad.shape), (2, 3)]:
                    bump = lambda sign: tuple(  # noqa: E731
                        None if r is None else tuple(x.at[idx].add(sign * eps) if (k, j) == (layer, which) else x
                                                     for j, x in enumerate(r)) for k, r in enumerate(recurrent))
                    fd = (f(bump(1)) - f(bump(-1))) / (2 * eps)
                    np.testing.assert_allclose(grad[idx], fd, rtol=1e-5, atol=1e-7)
                    nonzero += abs(float(fd)) > 1e-4
        assert nonzero >= 4
        with pytest.raises(ValueError, match="recurrent weight and delays must be"):
            eventprop.network(weights, delays, times, cell=CELL, steps=STEPS,
                              recurrent=(recurrent[1], recurrent[1], None))


def test_recurrent_lif_network_gradients_reach_recurrent_delays():
    import equinox as eqx
    from zoo.data import YinYang
    from zoo.models import ExactLIFNetwork, label_delays

    data = YinYang(examples=12, seed=2).load()
    net = ExactLIFNetwork(5, [12], 3, key=jax.random.PRNGKey(1), max_delay=6.0, recurrent=True, recurrent_scale=1.0)
    assert net.rec_weights[0].shape == (12, 12) and float(net.rec_delays[0].min()) >= 1.0
    assert label_delays(eqx.filter(net, eqx.is_array)).rec_delays == ("delays",)
    x = (jnp.asarray(data.spikes), jnp.asarray(data.times))

    def loss(model):
        return jax.vmap(model)(*x)[0].max(-1).sum()

    ep = eqx.filter_grad(loss)(net)
    exact = eqx.filter_grad(loss)(net.with_gradient("exact"))
    for a, b in zip(jax.tree_util.tree_leaves(ep), jax.tree_util.tree_leaves(exact)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert float(jnp.abs(ep.rec_delays[0]).max()) > 0 and float(jnp.abs(ep.rec_weights[0]).max()) > 0
    clipped = eqx.tree_at(lambda m: m.rec_delays, net, (net.rec_delays[0] - 5.0,)).clipped()
    assert float(clipped.rec_delays[0].min()) == 1.0
    with pytest.raises(ValueError, match="`max_delay` must be >= 1"):
        ExactLIFNetwork(5, 4, 3, key=jax.random.PRNGKey(0), max_delay=0.5, recurrent=True)


def test_first_spike_loss_with_its_regulariser_trains_through_eventprop():
    import equinox as eqx
    from zoo.data import YinYang
    from zoo.losses import FirstSpikeCrossEntropy
    from zoo.models import ExactLIFNetwork
    from zoo.trainer import EventPropTrainer

    logits, labels = jnp.array([[-3.0, -5.0], [-4.0, -2.0]]), jnp.array([0, 0])
    loss = FirstSpikeCrossEntropy(tau0=2.0, tau1=10.0, alpha=0.1)
    by_hand = np.mean([np.log(1 + np.exp((-5 + 3) / 2)) + 0.1 * (np.exp(0.3) - 1),
                       np.log(1 + np.exp((-2 + 4) / 2)) + 0.1 * (np.exp(0.4) - 1)])
    assert float(loss(logits, labels)) == pytest.approx(by_hand, rel=1e-6)
    with pytest.raises(ValueError, match="need tau0 > 0"):
        FirstSpikeCrossEntropy(tau0=0.0)

    data = YinYang(examples=96, seed=3).load()
    net = ExactLIFNetwork(5, [16], 3, key=jax.random.PRNGKey(2), max_delay=4.0, readout="first_spike",
                          weight_scale=2.0, max_spikes=8)
    x, y = (jnp.asarray(data.spikes[:16]), jnp.asarray(data.times[:16])), jnp.asarray(data.labels[:16])
    grads = [eqx.filter_grad(lambda m: loss(jax.vmap(m)(*x)[0], y))(net.with_gradient(g)) for g in ("eventprop", "exact")]
    for a, b in zip(*(jax.tree_util.tree_leaves(g) for g in grads)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert float(jnp.abs(grads[0].delays[-1]).max()) > 0  # output spike times move with the output delays
    _, metrics = EventPropTrainer(epochs=2, batch_size=16, loss=loss).fit(net, data, log=lambda _: None)
    assert np.isfinite(metrics["history"][-1]["loss"])


@pytest.mark.parametrize("kind", ["sorted_array", "fifo_ring"])
def test_delivery_through_queues_equals_arrival_tables(kind):
    import queues

    with jax.enable_x64(True):
        weights, delays, times = problem(0)
        queue = queues.make_queue(kind, capacity=8, max_delay=6.0)  # delays < 5 + the one-step lead
        keys = jax.random.split(jax.random.PRNGKey(7), 2)
        recurrent = ((jax.random.normal(keys[0], (6, 6), jnp.float64) * 0.3,
                      jax.random.uniform(keys[1], (6, 6), jnp.float64, 1.0, 5.0)), None, None)

        def run(method, q):
            def f(w, d, rec, t):
                v, spike_times, counts = eventprop.network(w, d, t, cell=CELL, steps=STEPS, method=method,
                                                           recurrent=rec, queue=q)
                first = jnp.where(jnp.isfinite(spike_times[0]), spike_times[0], 0.0)
                return jnp.tanh(v.max(0)).sum() + 0.02 * first.sum(), counts
            (value, counts), grads = jax.value_and_grad(f, argnums=(0, 1, 2, 3), has_aux=True)(
                weights, delays, recurrent, times)
            return value, counts, grads

        value, _, table = run("eventprop", None)
        for method in ("eventprop", "exact"):
            v, counts, grads = run(method, queue)
            assert all(int(c["queue_dropped"]) == 0 for c in counts)
            assert float(v) == pytest.approx(float(value), rel=1e-12)
            for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(table)):
                np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        with pytest.raises(ValueError, match="DelayLine merges the spikes"):
            eventprop.network(weights, delays, times, cell=CELL, steps=STEPS, queue=queues.DelayLine(max_delay=6.0))
        with pytest.raises(ValueError, match="needs arrival tables"):
            eventprop.network(weights, delays, times, cell=CELL, steps=STEPS, queue=queue, method="surrogate",
                              surrogate_fn=neurons.fast_sigmoid(5.0))


def test_lif_network_delivers_through_the_queue_group():
    import queues
    from zoo.data import YinYang
    from zoo.models import ExactLIFNetwork

    data = YinYang(examples=20).load()
    x = (jnp.asarray(data.spikes), jnp.asarray(data.times))
    kw = dict(key=jax.random.PRNGKey(0), max_delay=4.0, weight_scale=1.5)
    table = ExactLIFNetwork(5, [16], 3, **kw)
    queued = ExactLIFNetwork(5, [16], 3, **kw, delivery="queue", queue=queues.FIFORing(capacity=4, max_delay=4.0))
    assert queued.queue.max_delay == 5.0  # one step of lead for the inputs known in advance
    np.testing.assert_allclose(jax.vmap(queued)(*x)[0], jax.vmap(table)(*x)[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="delivery='queue' needs a `queue`"):
        ExactLIFNetwork(5, [16], 3, **kw, delivery="queue")


def test_spike_count_regulariser_has_exact_gradients_and_reduces_hidden_spikes():
    import equinox as eqx
    from zoo.data import YinYang
    from zoo.losses import SpikeCountRegulariser
    from zoo.models import ExactLIFNetwork
    from zoo.trainer import EventPropTrainer

    times = jnp.array([[0.0, 5.0, jnp.inf], [jnp.inf, jnp.inf, jnp.inf]])
    np.testing.assert_allclose(eventprop.discounted_counts(times, 10), [1.0 + 0.5, 0.0])
    reg = SpikeCountRegulariser(strength=2.0, target=1.0)
    counts = jnp.array([[1.5, 0.0], [0.5, 2.0]])  # batch 2 x neurons 2: means 1.0 and 1.0
    assert float(reg({"neuron_counts": counts})) == 0.0
    assert float(reg({"neuron_counts": counts + 1})) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="strength >= 0"):
        SpikeCountRegulariser(strength=-1.0)

    data = YinYang(examples=480, seed=4).load()
    net = ExactLIFNetwork(5, [16], 3, key=jax.random.PRNGKey(1), max_delay=4.0, weight_scale=3.0, max_spikes=8)
    x = (jnp.asarray(data.spikes[:16]), jnp.asarray(data.times[:16]))
    silent = SpikeCountRegulariser(strength=1.0, target=0.0)
    grads = [eqx.filter_grad(lambda m: silent(jax.vmap(m)(*x)[1]))(net.with_gradient(g)) for g in ("eventprop", "exact")]
    for a, b in zip(*(jax.tree_util.tree_leaves(g) for g in grads)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert float(jnp.abs(grads[0].weights[0]).max()) > 0 and float(jnp.abs(grads[0].delays[0]).max()) > 0

    # the exact gradient of a discounted count is weak (1/steps per spike): a strong penalty, a few epochs
    spikes, accuracy = {}, {}
    for name, regulariser in (("free", None), ("regularised", SpikeCountRegulariser(strength=5.0, target=0.5))):
        _, metrics = EventPropTrainer(epochs=3, batch_size=32, regulariser=regulariser).fit(net, data, log=lambda _: None)
        spikes[name] = metrics["history"][-1]["hidden_spikes_per_example"]
        accuracy[name] = metrics["val_accuracy"]
    assert spikes["regularised"] < 0.9 * spikes["free"], spikes
    assert accuracy["regularised"] > 0.5, accuracy  # still learning the task (chance: 1/3)
    with pytest.raises(ValueError, match="reports no differentiable spike counts"):
        reg({"spikes": jnp.ones(3)})
