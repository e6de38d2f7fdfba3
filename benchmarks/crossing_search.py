"""How a spike's threshold crossing is searched for within its step: time per EventProp training step and
the spike times it finds, the current search (halvings to a bracket, then Newton steps) against halving
alone (one halving per mantissa bit, the search before it), in one process on the same batch.

Network and batch: a recipe of `python train.py` (default: the Yin-Yang EventProp recipe's network),
``--batch`` examples of its dataset; one training step = compiled value and gradient of the trainer's
loss w.r.t. every weight and delay, best of ``--repeats`` rounds that time both searches in turn. The
float32 spike times each search finds on that batch are compared with a float64 simulation halved to
below its resolution (the largest error, in steps, over every hidden spike; None if a search found
other spikes). Rounding in float32 moves later spikes of a neuron by more than the search's own error,
as each reset carries the error of the last.

Usage: python benchmarks/crossing_search.py --out benchmarks/crossing_search_cpu.json [-- overrides]
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from hydra.utils import instantiate

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from queues_vs_adseq import timed  # noqa: E402
from recipes import code_version, compose_recipe, initial_model, save  # noqa: E402

from zoo import eventprop  # noqa: E402

YINYANG = ["model=lif_network", "trainer=eventprop", "dataset=yinyang", "max_delay=8", "model.hidden=[400]",
           "model.max_spikes=16", "model.weight_scale=1.5", "trainer.batch_size=32", "dataset.examples=6250"]


@contextlib.contextmanager
def search(halvings: int, newton_steps: int):
    """Trace `zoo.eventprop` with this search (its module constants) inside the block."""
    before = eventprop.BRACKET_HALVINGS, eventprop.NEWTON_STEPS
    eventprop.BRACKET_HALVINGS, eventprop.NEWTON_STEPS = halvings, newton_steps
    try:
        yield
    finally:
        eventprop.BRACKET_HALVINGS, eventprop.NEWTON_STEPS = before


def hidden_spike_times(model, spikes, times, dtype) -> list[np.ndarray]:
    """The hidden layers' spike times (batch, neurons, slots) of ``model`` simulated in ``dtype``."""
    def one(spikes, times):
        cast = lambda arrays: tuple(a.astype(dtype) for a in arrays)  # noqa: E731
        delays = tuple(jnp.clip(d, 0.0, model.max_delay) for d in model.delays)
        times_in = eventprop.input_times(spikes, times, model.input_slots)[0].astype(dtype)
        return eventprop.network(cast(model.weights), cast(delays), times_in, cell=model.cell,
                                 steps=spikes.shape[0])[1][:-1]
    return [np.asarray(t, np.float64) for t in jax.jit(jax.vmap(one))(spikes, times)]


def compiled_step(trainer, model, batch):
    """One training step, compiled under the current search (it is read when the step is traced)."""
    def loss(model, spikes, times, labels):
        logits, _ = jax.vmap(model)(spikes, times)
        return trainer.loss(logits, labels)

    step = eqx.filter_jit(eqx.filter_value_and_grad(loss))
    jax.block_until_ready(step(model, *batch))
    return step


def interleaved_best(steps: dict, args: tuple, repeats: int) -> dict:
    """Best time (ms) of each compiled step over ``repeats`` rounds that run every step once in turn, so a
    slow spell of the machine falls on all of them rather than on whichever was timed then."""
    best = {name: float("inf") for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            best[name] = min(best[name], 1e3 * timed(step, args, 1))
    return best


def largest_difference(got: list[np.ndarray], want: list[np.ndarray]) -> float | None:
    """The largest difference between two sets of spike times; None if they do not hold the same spikes."""
    if not all(np.array_equal(np.isfinite(a), np.isfinite(b)) for a, b in zip(got, want)):
        return None
    return max(float(np.abs(a[np.isfinite(b)] - b[np.isfinite(b)]).max(initial=0.0)) for a, b in zip(got, want))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("overrides", nargs="*", help="train.py overrides (after --); default: the Yin-Yang network")
    args = parser.parse_args(argv)
    code = code_version(outputs=[args.out])  # as it starts: the code this process imported
    overrides = args.overrides or YINYANG
    cfg = compose_recipe(overrides + [f"seed={args.seed}"])
    data = instantiate(cfg.dataset).load()
    if len(data) < args.batch:
        parser.error(f"--batch {args.batch} is more than the dataset's {len(data)} examples")
    trainer = instantiate(cfg.trainer)
    model = trainer.prepare(initial_model(cfg, data, args.seed, "delays"))
    if not hasattr(model, "cell") or model.rec_weights is not None or model.queue is not None:
        parser.error("the recipe's model must be a feed-forward network simulated with exact spike times from "
                     "arrival tables (model=lif_network, not recurrent, delivery=table)")
    batch = tuple(jnp.asarray(a[:args.batch]) for a in (data.spikes, data.times, data.labels))
    bits = jnp.finfo(model.weights[0].dtype).nmant + 1
    searches = {"newton": (eventprop.BRACKET_HALVINGS, eventprop.NEWTON_STEPS), "halving": (bits, 0)}
    rows, steps = {}, {}
    for name, (halvings, newton_steps) in searches.items():
        with search(halvings, newton_steps):
            steps[name] = compiled_step(trainer, model, batch)
            rows[name] = {"halvings": halvings, "newton_steps": newton_steps,
                          "spike_times": hidden_spike_times(model, *batch[:2], jnp.float32)}
    for name, ms in interleaved_best(steps, (model, *batch), args.repeats).items():
        rows[name]["ms_per_training_step"] = ms
    with jax.enable_x64(True), search(60, 0):  # the reference: float64, halved to below its resolution
        reference = hidden_spike_times(model, *batch[:2], jnp.float64)
    for row in rows.values():
        row["max_spike_time_error"] = largest_difference(row.pop("spike_times"), reference)
    results = {"command": "python benchmarks/crossing_search.py " + shlex.join(argv),
               "device": str(jax.devices()[0]), "jax": jax.__version__, "code": code, "batch": args.batch,
               "overrides": overrides, "searches": rows,
               "hidden_spikes_per_example": float(sum(np.isfinite(t).sum() for t in reference) / args.batch),
               "time_ratio_halving_over_newton": rows["halving"]["ms_per_training_step"]
               / rows["newton"]["ms_per_training_step"]}
    save(results, args.out)
    print(results)


if __name__ == "__main__":
    main()
