"""Export to NIR (the Neuromorphic Intermediate Representation) for neuromorphic hardware toolchains.

    python -m zoo.nir_export delayed_ffn.nmnist out.nir [--dt 1e-3]

NIR's `Delay` node delays each element of a vector, so per-synapse delays are **expanded**: the
``pre -> post`` synapses with weights ``w[j, i]`` and delays ``d[i, j]`` become

    Linear(F) -> Delay(d.ravel() * dt) -> Linear(G)

with ``F`` (pre*post x pre) copying input ``i`` to the ``post`` slots ``i*post + j`` and ``G``
(post x pre*post) weighting slot ``i*post + j`` by ``w[j, i]`` into neuron ``j``: ``G F = w``, and every
synapse keeps its own delay. The cost is one delay line per synapse (pre x post), which is what the
model computes too.

Units and conventions (also in the graph's metadata): time in seconds, one simulation step = ``dt``;
spikes are unit Dirac impulses; our neurons follow ``tau_mem dV/dt = -V + tau_mem I`` (time in steps)
with the synaptic current ``I`` jumping by ``w`` at each arrival, so in NIR's `CubaLIF`
(``tau_syn dI/dt = -I + w_in x``, ``tau_mem dV/dt = v_leak - V + r I``) ``tau = tau_steps * dt``,
``r = tau_mem_steps`` and ``w_in = tau_syn * dt``; reset to 0. The readout's logits are the maximum
(``max_membrane``) or the time mean (``sum_membrane``) of the output node's membrane: NIR has no node
for either, so the consumer takes it (``metadata["readout"]``).
"""

from __future__ import annotations

import argparse

import numpy as np

import nir

from .models import DelayedFeedForward, ExactLIFNetwork


def expanded_synapses(prefix: str, weight: np.ndarray, delays: np.ndarray, dt: float) -> dict[str, nir.NIRNode]:
    """``{prefix}_fanout -> {prefix}_delay -> {prefix}_weight`` for ``weight`` (post, pre) and
    ``delays`` (pre, post, in steps)."""
    post, pre = weight.shape
    fanout = np.zeros((pre * post, pre), np.float32)
    fanout[np.arange(pre * post), np.repeat(np.arange(pre), post)] = 1.0
    gather = np.zeros((post, pre * post), np.float32)
    gather[np.tile(np.arange(post), pre), np.arange(pre * post)] = weight.T.ravel()
    return {f"{prefix}_fanout": nir.Linear(weight=fanout),
            f"{prefix}_delay": nir.Delay(delay=(np.asarray(delays, np.float64).ravel() * dt).astype(np.float32)),
            f"{prefix}_weight": nir.Linear(weight=gather)}


def _cuba(n: int, tau_syn: float, tau_mem: float, threshold: float | None, dt: float) -> nir.NIRNode:
    full = lambda x: np.full(n, x, np.float32)  # noqa: E731
    common = dict(tau_syn=full(tau_syn * dt), tau_mem=full(tau_mem * dt), r=full(tau_mem), v_leak=full(0.0),
                  w_in=full(tau_syn * dt))
    if threshold is None:
        return nir.CubaLI(**common)
    return nir.CubaLIF(**common, v_threshold=full(threshold), v_reset=full(0.0))


def export(model, dt: float = 1e-3) -> nir.NIRGraph:
    """The NIR graph of ``model`` (`DelayedFeedForward` or `ExactLIFNetwork`, feed-forward or recurrent)."""
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []

    def chain(*names):
        edges.extend(zip(names, names[1:]))

    if isinstance(model, DelayedFeedForward):
        syn = model.input.clipped()
        channels, hidden = syn.delays.shape
        classes = model.w_out.shape[0]
        nodes["input"] = nir.Input(input_type={"input": np.array([channels])})
        nodes.update(expanded_synapses("syn0", np.asarray(syn.weight), np.asarray(syn.delays), dt))
        nodes["lif0"] = _cuba(hidden, syn.tau_syn, syn.tau_mem, model.threshold, dt)
        # the readout integrates the hidden spikes directly (voltage jumps of w_out): a plain LI
        nodes["readout_weight"] = nir.Linear(weight=np.asarray(model.w_out, np.float32))
        spiking_out = model.readout in ("spike_count", "first_spike")
        full = lambda x: np.full(classes, x, np.float32)  # noqa: E731
        nodes["readout"] = (nir.LIF(tau=full(syn.tau_mem * dt), r=full(syn.tau_mem * dt), v_leak=full(0.0),
                                    v_threshold=full(model.threshold), v_reset=full(0.0)) if spiking_out
                            else nir.LI(tau=full(syn.tau_mem * dt), r=full(syn.tau_mem * dt), v_leak=full(0.0)))
        chain("input", "syn0_fanout", "syn0_delay", "syn0_weight", "lif0", "readout_weight", "readout", "output")
        tau_syn, tau_mem = syn.tau_syn, syn.tau_mem
    elif isinstance(model, ExactLIFNetwork):
        model = model.clipped()
        cell = model.cell
        nodes["input"] = nir.Input(input_type={"input": np.array([model.weights[0].shape[1]])})
        previous = "input"
        layers = len(model.weights)
        for k, (w, d) in enumerate(zip(model.weights, model.delays)):
            last = k == layers - 1
            name = "readout" if last else f"lif{k}"
            nodes.update(expanded_synapses(f"syn{k}", np.asarray(w), np.asarray(d), dt))
            spiking = not last or model.readout == "first_spike"
            nodes[name] = _cuba(w.shape[0], cell.tau_syn, cell.tau_mem, cell.threshold if spiking else None, dt)
            chain(previous, f"syn{k}_fanout", f"syn{k}_delay", f"syn{k}_weight", name)
            if model.rec_weights is not None and not last:
                nodes.update(expanded_synapses(f"rec{k}", np.asarray(model.rec_weights[k]),
                                               np.asarray(model.rec_delays[k]), dt))
                chain(name, f"rec{k}_fanout", f"rec{k}_delay", f"rec{k}_weight", name)
            previous = name
        edges.append(("readout", "output"))
        classes, tau_syn, tau_mem = model.weights[-1].shape[0], cell.tau_syn, cell.tau_mem
    else:
        raise NotImplementedError(f"NIR export: {type(model).__name__} is not supported (supported: "
                                  "DelayedFeedForward, ExactLIFNetwork); convolutional and DelayedRecurrent models "
                                  "are not exported yet")
    nodes["output"] = nir.Output(output_type={"output": np.array([classes])})
    metadata = {"time_unit": "s", "dt": dt, "spikes": "unit Dirac impulses",
                "readout": f"{model.readout}: logits from the output node's membrane (max_membrane: maximum over time; "
                           "sum_membrane: time mean; first_spike: minus the first spike time)",
                "tau_steps": [tau_syn, tau_mem], "source": "delay-snn-zoo zoo.nir_export"}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="export a zoo model to a NIR file")
    parser.add_argument("name", help="a zoo name, a pretrained directory or a Hub id")
    parser.add_argument("out", help="the .nir file to write")
    parser.add_argument("--dt", type=float, default=1e-3, help="seconds per simulation step")
    args = parser.parse_args(argv)
    from .registry import load
    graph = export(load(args.name), dt=args.dt)
    nir.write(args.out, graph)
    print(f"{args.out}: {len(graph.nodes)} nodes, {len(graph.edges)} edges")


if __name__ == "__main__":
    main()
