"""NIR export: the written graph, read back and simulated by an independent continuous-time simulator
in this file, reproduces the model's readout; per-synapse delays survive the expansion."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nir
from zoo import eventprop
from zoo.data import YinYang
from zoo.models import DelayedFeedForward, DelayedRecurrent, ExactLIFNetwork
from zoo.nir_export import export

ROOT = Path(__file__).resolve().parents[1]


def simulate(graph: nir.NIRGraph, input_times: list[list[float]], steps: int, substeps: int = 200) -> np.ndarray:
    """The readout membrane at the end of each step, by exact exponential integration of every NIR
    `CubaLIF`/`CubaLI` node over ``substeps`` per step (spike times to 1/substeps of a step).
    Feed-forward graphs; times in seconds as the graph's metadata says."""
    dt = graph.metadata["dt"]
    h = dt / substeps
    successor = dict(graph.edges)
    spikes, node = [sorted(t) for t in input_times], successor["input"]
    while True:
        fanout, delay, gather = graph.nodes[node], graph.nodes[successor[node]], graph.nodes[successor[successor[node]]]
        target = successor[successor[successor[node]]]
        weight = gather.weight @ fanout.weight  # (post, pre)
        post, pre = weight.shape
        delays = np.asarray(delay.delay).reshape(pre, post)
        cell = graph.nodes[target]
        arrivals = sorted((t + delays[i, j], j, weight[j, i]) for i in range(pre) for t in spikes[i]
                          for j in range(post))
        current, v = np.zeros(post), np.zeros(post)
        out_spikes, trace, a = [[] for _ in range(post)], [], 0
        tau_s, tau_m = np.asarray(cell.tau_syn), np.asarray(cell.tau_mem)
        for k in range(steps * substeps):
            t1 = (k + 1) * h
            while a < len(arrivals) and arrivals[a][0] <= t1:  # arrivals inside the substep, at its start
                _, j, w = arrivals[a]
                current[j] += np.asarray(cell.w_in)[j] * w / tau_s[j]
                a += 1
            ds, dm = np.exp(-h / tau_s), np.exp(-h / tau_m)
            v = v * dm + np.asarray(cell.r) * current / tau_m * (dm - ds) / (1 / tau_s - 1 / tau_m)
            current = current * ds
            if isinstance(cell, nir.CubaLIF):
                for j in np.nonzero(v >= np.asarray(cell.v_threshold))[0]:
                    out_spikes[j].append(t1)
                    v[j] = 0.0
            if (k + 1) % substeps == 0:
                trace.append(v.copy())
        if successor.get(target) == "output":
            return np.array(trace)
        spikes, node = out_spikes, successor[target]


@pytest.mark.parametrize("hidden", [[8], [8, 6]])
def test_exported_graph_reproduces_the_model(tmp_path, hidden):
    data = YinYang(examples=12, seed=5).load()
    model = ExactLIFNetwork(5, hidden, 3, key=jax.random.PRNGKey(3), max_delay=4.0, weight_scale=1.2, max_spikes=8)
    path = tmp_path / "model.nir"
    nir.write(str(path), export(model, dt=1e-3))
    graph = nir.read(str(path))
    checked = compared = 0
    for n in range(len(data)):
        spikes, times = jnp.asarray(data.spikes[n]), jnp.asarray(data.times[n])
        logits, stats = model(spikes, times)
        if int(stats["dropped"]) or int(stats["pinned"]):  # the model's own limits, not NIR's: not comparable
            continue
        if compared == 5:
            break
        compared += 1
        times_in, _ = eventprop.input_times(spikes, times, model.input_slots)
        inputs = [[float(t) * 1e-3 for t in row if math.isfinite(float(t))] for row in np.asarray(times_in)]
        trace = simulate(graph, inputs, steps=spikes.shape[0])
        np.testing.assert_allclose(trace.max(0), np.asarray(logits), rtol=0.02, atol=0.02)
        checked += int(stats["spikes"]) > 0
    assert compared >= 4 and checked >= 2  # the hidden layers spiked: spike times and delays were exercised


def test_every_synapse_keeps_its_weight_and_delay():
    model = ExactLIFNetwork(4, [5], 3, key=jax.random.PRNGKey(0), recurrent=True, max_delay=6.0)
    graph = export(model, dt=2e-3)
    for prefix, w, d in (("syn0", model.weights[0], model.delays[0]), ("rec0", model.rec_weights[0], model.rec_delays[0])):
        fan, delay, gather = (graph.nodes[f"{prefix}_{x}"] for x in ("fanout", "delay", "weight"))
        np.testing.assert_allclose(gather.weight @ fan.weight, np.asarray(w), rtol=1e-6)
        pre, post = np.asarray(d).shape
        np.testing.assert_allclose(np.asarray(delay.delay).reshape(pre, post), np.asarray(d) * 2e-3, rtol=1e-6)
    assert ("rec0_weight", "lif0") in graph.edges and ("lif0", "rec0_fanout") in graph.edges

    ffn = DelayedFeedForward(2, 6, 2, queue=__import__("queues").FIFORing(capacity=2, max_delay=8.0),
                             key=jax.random.PRNGKey(1))
    g = export(ffn)
    assert isinstance(g.nodes["lif0"], nir.CubaLIF) and isinstance(g.nodes["readout"], nir.LI)
    np.testing.assert_allclose(g.nodes["syn0_weight"].weight @ g.nodes["syn0_fanout"].weight, np.asarray(ffn.input.weight),
                               rtol=1e-6)
    rnn = DelayedRecurrent(2, 4, 2, queue=__import__("queues").FIFORing(capacity=2, max_delay=8.0), key=jax.random.PRNGKey(1))
    with pytest.raises(NotImplementedError, match="DelayedRecurrent is not supported"):
        export(rnn)


def test_command_line_exports_a_shipped_model(tmp_path):
    out = tmp_path / "m.nir"
    proc = subprocess.run([sys.executable, "-m", "zoo.nir_export", "delayed_ffn.delay_task", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert set(nir.read(str(out)).nodes) >= {"input", "syn0_delay", "lif0", "readout", "output"}
