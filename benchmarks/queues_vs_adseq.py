"""Our queues against adseq (the paper's library), side by side in one process.

Two benchmarks of the paper (arXiv 2512.05906), with the queue state threaded correctly for both
libraries (adseq's own Poisson script discards the state returned by ``pop``):

* ``poisson``: independent queues fed Bernoulli spikes (p = 1/400 per step) with a fixed delay of 80
  steps; µs per simulated step, spikes delivered, and the conservation check
  delivered + dropped + pending == pushed for both (adseq does not count drops: its figure is
  implied by the other three).
* ``rsnn_grad``: 100 LIF neurons all-to-all with per-synapse delays N(4, 0.5) ms, dt 0.025 ms,
  tau_syn 2 ms, tau_mem 10 ms, threshold 1, drive 1.0 for t < 2 ms; reverse-mode gradient of the
  total spike count w.r.t. the 100x100 weights: µs per step and peak memory from XLA's compiled
  memory statistics (arguments + outputs + temporaries). Failures are recorded, not hidden.

Usage: python benchmarks/queues_vs_adseq.py --steps 4000 --out results.json
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import shlex
import time
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp

import queues

INT_MAX = 0x7FFFFFFF


class NotFinite(ValueError):
    """A benchmarked step returned NaN or infinity: its time is not the speed of a valid step."""


def require_finite(outputs: Any) -> None:
    """Raise `NotFinite` unless every float in the PyTree ``outputs`` is finite."""
    leaves = [x for x in jax.tree_util.tree_leaves(outputs) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    bad = [i for i, x in enumerate(leaves) if not bool(jnp.isfinite(x).all())]
    if bad:
        raise NotFinite(f"outputs {bad} of {len(leaves)} hold NaN or infinity: no speed is reported for this step")


def timed(compiled: Callable, args: tuple, repeats: int) -> float:
    """Best wall time of up to ``repeats`` runs of an already compiled function (seconds).

    Refuses (`NotFinite`) a function whose outputs (values, gradients) are not all finite, so that no
    benchmark reports the speed of a step that computed nothing usable."""
    best = math.inf
    for i in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - start)
        if i == 0:
            require_finite(out)
        if best > 5.0:  # long runs vary little; spare the machine
            break
    return best


# --------------------------------------------------------------------------------------------
# Poisson benchmark
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pair:
    name: str
    ours: Callable[..., queues.SpikeQueue]  # (max_delay, validate) -> queue
    adseq: Callable[[Any], Any]  # module -> queue class
    adseq_pending: Callable[[Any], Any]  # final adseq state -> pending per queue


def _pending_not_empty(s):
    return (s.buffer != INT_MAX).sum(-1)


PAIRS = [
    Pair("delay_line", lambda d, v: queues.DelayLine(max_delay=d, validate=v),
         lambda a: a.Ring, lambda s: s.buffer.sum(-1)),
    Pair("fifo_ring[4]", lambda d, v: queues.FIFORing(capacity=4, max_delay=d, validate=v),
         lambda a: a.FIFORing.sized(4), lambda s: s.size),
    Pair("lossy_ring[4]", lambda d, v: queues.LossyRing(capacity=4, max_delay=d, validate=v),
         lambda a: a.LossyRing.sized(4), _pending_not_empty),
    Pair("sorted_array[4]", lambda d, v: queues.SortedArray(capacity=4, max_delay=d, validate=v),
         lambda a: a.SortedArray.sized(4), _pending_not_empty),
    Pair("binary_heap[7]", lambda d, v: queues.BinaryHeap(capacity=7, max_delay=d, validate=v),
         lambda a: a.BinaryHeap.sized(7), lambda s: s.size),
    Pair("single_spike(newest)", lambda d, v: queues.SingleSpike(max_delay=d, keep="newest", validate=v),
         lambda a: a.SingleSpike, lambda s: (s.last_spike != INT_MAX).sum(-1) if s.last_spike.ndim > 1
         else (s.last_spike != INT_MAX)),
    Pair("single_spike(oldest)", lambda d, v: queues.SingleSpike(max_delay=d, keep="oldest", validate=v),
         lambda a: a.SingleSpikeKeep, lambda s: (s.last_spike != INT_MAX)),
    Pair("bitmask", lambda d, v: queues.Bitmask(max_delay=d, validate=v),
         lambda a: a.BitArray32, lambda s: jax.lax.population_count(s.buffer)),
]


def poisson_stream(steps: int, n: int, rate: float, seed: int = 0) -> jax.Array:
    return jax.random.bernoulli(jax.random.PRNGKey(seed), rate, (steps, n))


def ours_poisson(queue: queues.SpikeQueue, spikes: jax.Array, delay: int):
    def step(carry, xs):
        state, delivered = carry
        now, mask = xs
        state, delivery = queue.pop(state, now)
        state = queue.push(state, now, float(delay), mask)
        return (state, delivered + delivery.count()), None

    def run(spikes):
        n = spikes.shape[1]
        init = (queue.init((n,)), jnp.zeros(n, queue.dtype))
        (state, delivered), _ = jax.lax.scan(step, init, (jnp.arange(spikes.shape[0], dtype=jnp.int32), spikes))
        return delivered.sum(), state.dropped.sum(), queue.pending(state).sum()

    return run


def adseq_poisson(queue_cls, pending: Callable, spikes: jax.Array, delay: int):
    def step(carry, xs):
        qs, delivered = carry
        now, mask = xs
        qs, hit = jax.vmap(lambda q: q.pop(now))(qs)  # thread the popped state (the bug fixed)
        qs = jax.vmap(lambda e, q: jax.lax.cond(e, lambda: q.enqueue(now + delay), lambda: q))(mask, qs)
        return (qs, delivered + hit.astype(jnp.float32)), None

    def run(spikes):
        n = spikes.shape[1]
        init = (jax.vmap(lambda _: queue_cls.init(delay))(jnp.zeros(n)), jnp.zeros(n, jnp.float32))
        (qs, delivered), _ = jax.lax.scan(step, init, (jnp.arange(spikes.shape[0], dtype=jnp.int32), spikes))
        return delivered.sum(), pending(qs).sum()

    return run


def conservation_line(row) -> str:
    parts = [f"{row['queue']}: pushed {row['pushed']}"]
    if "ours_delivered" in row:
        parts.append(f"ours delivered {row['ours_delivered']} + dropped {row['ours_dropped']} + pending "
                     f"{row['ours_pending']} = {row['ours_delivered'] + row['ours_dropped'] + row['ours_pending']} "
                     f"({'conserved' if row['ours_conserved'] else 'NOT conserved'})")
    if "adseq_delivered" in row:
        parts.append(f"adseq delivered {row['adseq_delivered']} + pending {row['adseq_pending']}, so it lost "
                     f"{row['adseq_implied_dropped']} without counting them")
    return "; ".join(parts)


def bench_poisson(adseq, steps: int, n: int, repeats: int, rate: float = 1 / 400, delay: int = 80, kinds=None):
    spikes = poisson_stream(steps, n, rate)
    pushed = int(spikes.sum())
    rows = []
    for pair in PAIRS:
        if kinds and pair.name not in kinds:
            continue
        d = delay if pair.name != "bitmask" else 31  # both bitmask queues hold delays < 32 only
        row: dict[str, Any] = {"queue": pair.name, "delay_steps": d, "pushed": pushed}
        stream = spikes if d == delay else poisson_stream(steps, n, rate)
        try:
            # headline: run-time checks off, as adseq has none; `ours_validated_*`: the defaults
            fn = jax.jit(ours_poisson(pair.ours(float(d), True), stream, d)).lower(stream).compile()
            row["ours_validated_us_per_step"] = timed(fn, (stream,), repeats) / steps * 1e6
            fn = jax.jit(ours_poisson(pair.ours(float(d), False), stream, d)).lower(stream).compile()
            row["ours_us_per_step"] = timed(fn, (stream,), repeats) / steps * 1e6
            delivered, dropped, pending = (int(x) for x in fn(stream))
            row.update(ours_delivered=delivered, ours_dropped=dropped, ours_pending=pending,
                       ours_conserved=delivered + dropped + pending == pushed)
        except Exception as exc:  # noqa: BLE001 - recorded in the output
            row["ours_error"] = f"{type(exc).__name__}: {exc}"[:500]
        try:
            fn = jax.jit(adseq_poisson(pair.adseq(adseq), pair.adseq_pending, stream, d)).lower(stream).compile()
            row["adseq_us_per_step"] = timed(fn, (stream,), repeats) / steps * 1e6
            delivered, pending = (int(x) for x in fn(stream))
            row.update(adseq_delivered=delivered, adseq_pending=pending,
                       adseq_implied_dropped=pushed - delivered - pending)
        except Exception as exc:  # noqa: BLE001
            row["adseq_error"] = f"{type(exc).__name__}: {exc}"[:500]
        if "ours_us_per_step" in row and "adseq_us_per_step" in row:
            row["speedup"] = row["adseq_us_per_step"] / row["ours_us_per_step"]
        if "ours_dropped" in row and "adseq_implied_dropped" in row:
            # adseq counts no drops; with the same policy its implied drops must equal ours
            row["drops_agree"] = row["ours_dropped"] == row["adseq_implied_dropped"]
        print(conservation_line(row), flush=True)
        print(json.dumps(row), flush=True)
        rows.append(row)
        gc.collect()
    return rows


# --------------------------------------------------------------------------------------------
# Recurrent LIF network, reverse-mode gradient
# --------------------------------------------------------------------------------------------
N_NEURONS, DT, TAU_SYN, TAU_MEM, THRESHOLD, DRIVE, DRIVE_UNTIL = 100, 0.025, 2.0, 10.0, 1.0, 1.0, 2.0
DELAY_MEAN, DELAY_STD, MAX_DELAY_MS = 4.0, 0.5, 7.0


@jax.custom_jvp
def superspike(x):
    """Heaviside with the SuperSpike surrogate derivative 1 / (1 + |x|)^2 (Zenke & Ganguli 2018)."""
    return jnp.where(x < 0, 0.0, 1.0)


@superspike.defjvp
def _superspike_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return superspike(x), dx / (jnp.abs(x) + 1) ** 2


def lif_step(v, current):
    """Both libraries' neuron: reset to 0 after a spike, forward Euler with the previous current."""
    spike = superspike(v - THRESHOLD)
    return (1 - spike) * (jnp.exp(-DT / TAU_MEM) * v + current * DT), spike


def rsnn_setup(seed: int = 0):
    """Weights and per-synapse delays (ms), as adseq's profile_recurrent_snn builds them."""
    key = jax.random.PRNGKey(seed)
    n = N_NEURONS
    off_diagonal = 1 - jnp.eye(n)
    weight = jnp.sqrt(23.0) / jnp.sqrt(n) * 0.05 * (jax.random.normal(key, (n, n)) * off_diagonal) ** 2
    delays = jnp.clip(DELAY_MEAN + DELAY_STD * jax.random.normal(key, (n, n)), 0.0, MAX_DELAY_MS)
    return weight, delays  # weight[post, pre]; delays[pre, post]


def ours_rsnn(queue: queues.SpikeQueue, delays_ms: jax.Array, steps: int, scan=jax.lax.scan):
    """Total spike count; synapse (pre i, post j) is queue [i, j] of one layer-level state."""
    n = N_NEURONS
    delays = delays_ms / DT  # in steps
    tau = TAU_SYN / DT
    alpha = jnp.exp(-1.0 / tau)

    def loss(weight):
        def step(carry, now):
            v, current, state = carry
            state, delivery = queue.pop(state, now)
            drive = jnp.where(now * DT < DRIVE_UNTIL, DRIVE, 0.0)
            v_next, spike = lif_step(v, current + drive)
            # exact threshold-crossing time in (now-1, now] by linear interpolation of v
            crossed = (v < THRESHOLD) & (v_next >= THRESHOLD)
            frac = (THRESHOLD - v) / jnp.where(crossed, v_next - v, 1.0)
            times = jnp.where(crossed, now - 1 + frac, now.astype(v.dtype))
            state = queue.push(state, now, delays, jnp.broadcast_to(crossed[:, None], (n, n)), times[:, None])
            # synaptic current sum_i w[j, i] trace[i, j]: the traces share one decay, so the weighted
            # jumps suffice
            current = alpha * current + jnp.einsum("ji,ij->j", weight, delivery.exponential(now, tau))
            return (v_next, current, state), spike

        init = (jnp.zeros(n), jnp.zeros(n), queue.init((n, n)))
        (_, _, state), spikes = scan(step, init, jnp.arange(1, steps + 1, dtype=jnp.int32))
        return spikes.sum(), state.dropped.sum()

    return loss


def adseq_rsnn(adseq, queue_cls, delays_ms: jax.Array, steps: int, scan=jax.lax.scan):
    """The same network on adseq's synapse model (one vmapped queue per synapse)."""
    n = N_NEURONS

    def loss(weight):
        syn = adseq.synapse.mk_synapses(queue_cls, delay_ms=delays_ms.reshape(-1), dt_ms=DT, vthres=THRESHOLD,
                                        tau_syn_ms=TAU_SYN, n=n * n, max_delay_ms=MAX_DELAY_MS)

        def step(carry, t):
            v, syn = carry
            # synapse k = i * n + j has pre i (adseq repeats v along synapses): current_j = sum_i w[j, i] isyn[i, j]
            current = jnp.einsum("ji,ij->j", weight, syn.isyn.reshape(n, n)) + jnp.where(t < DRIVE_UNTIL, DRIVE, 0.0)
            v_next, spike = lif_step(v, current)
            syn = syn.timestep_spike_detect_pre(ts=t, v=jnp.repeat(v, n), vnext=jnp.repeat(v_next, n))
            return (v_next, syn), spike

        _, spikes = scan(step, (jnp.zeros(n), syn), jnp.arange(steps) * DT)
        return spikes.sum(), jnp.int32(0)

    return loss


RSNN_PAIRS = [  # the gradient-capable kinds of both libraries
    ("delay_line", lambda d: queues.DelayLine(max_delay=d, validate=False), lambda a: a.Ring),
    ("fifo_ring[4]", lambda d: queues.FIFORing(capacity=4, max_delay=d, validate=False), lambda a: a.FIFORing.sized(4)),
    ("lossy_ring[4]", lambda d: queues.LossyRing(capacity=4, max_delay=d, validate=False), lambda a: a.LossyRing.sized(4)),
    ("sorted_array[4]", lambda d: queues.SortedArray(capacity=4, max_delay=d, validate=False),
     lambda a: a.SortedArray.sized(4)),
    ("binary_heap[7]", lambda d: queues.BinaryHeap(capacity=7, max_delay=d, validate=False),
     lambda a: a.BinaryHeap.sized(7)),
    ("single_spike(newest)", lambda d: queues.SingleSpike(max_delay=d, validate=False), lambda a: a.SingleSpike),
    ("single_spike(oldest)", lambda d: queues.SingleSpike(max_delay=d, keep="oldest", validate=False),
     lambda a: a.SingleSpikeKeep),
]


def peak_bytes(compiled) -> int:
    """Arguments + outputs + temporaries of a compiled XLA executable."""
    stats = compiled.memory_analysis()
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
               - stats.alias_size_in_bytes)


def measure_grad(loss, weight, steps: int, repeats: int, memory_limit: int) -> dict[str, Any]:
    """Compile ``grad(loss)``, then time it unless its compiled memory exceeds ``memory_limit``."""
    compiled = jax.jit(jax.grad(loss, has_aux=True)).lower(weight).compile()
    out: dict[str, Any] = {"peak_bytes": peak_bytes(compiled)}
    if out["peak_bytes"] > memory_limit:
        out["error"] = (f"not run: needs {out['peak_bytes'] / 2**30:.1f} GiB of compiled memory "
                        f"(limit {memory_limit / 2**30:.1f} GiB on this machine)")
        return out
    out["us_per_step"] = timed(compiled, (weight,), repeats) / steps * 1e6
    grad, dropped = compiled(weight)
    spikes, _ = jax.jit(loss)(weight)
    out.update(spikes=int(spikes), dropped=int(dropped), grad_norm=float(jnp.linalg.norm(grad)),
               grad_finite=bool(jnp.isfinite(grad).all()))
    return out


def bench_rsnn(adseq, steps: int, repeats: int, memory_limit: int, chunk: int, kinds=None):
    """Every gradient-capable pair, each with a plain scan and with chunked rematerialisation."""
    weight, delays_ms = rsnn_setup()
    max_delay_steps = MAX_DELAY_MS / DT
    remat = lambda f, c, xs: queues.checkpointed_scan(f, c, xs, chunk)  # noqa: E731
    rows = []
    for name, ours_queue, adseq_queue in RSNN_PAIRS:
        if kinds and name not in kinds:
            continue
        row: dict[str, Any] = {"queue": name, "steps": steps}
        for lib, make_loss in (("ours", lambda scan: ours_rsnn(ours_queue(max_delay_steps), delays_ms, steps, scan)),
                               ("adseq", lambda scan: adseq_rsnn(adseq, adseq_queue(adseq), delays_ms, steps, scan))):
            for suffix, scan in (("", jax.lax.scan), ("_remat", remat)):
                try:
                    result = measure_grad(make_loss(scan), weight, steps, repeats, memory_limit)
                except Exception as exc:  # noqa: BLE001 - recorded in the output
                    result = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"[:400]}
                if lib == "adseq":
                    result.pop("dropped", None)  # adseq does not count drops
                row.update({f"{lib}{suffix}_{k}": v for k, v in result.items()})
                gc.collect()
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows, rsnn_summary(rows)


def rsnn_summary(rows) -> dict[str, Any]:
    """Ours against adseq's fastest gradient-capable queue, same kind, for each pairing of scan modes.

    Same kind, because the kinds drop different spikes on this workload (every capacity-4 queue
    drops in both libraries) and so compute different networks; ``ours_fastest_any_kind`` is given
    for reference, with its drop count.
    """
    summary: dict[str, Any] = {}
    for mode_ours, mode_adseq in (("", ""), ("_remat", ""), ("_remat", "_remat")):
        peers = [r for r in rows if f"adseq{mode_adseq}_us_per_step" in r]
        if not peers:
            continue
        peer = min(peers, key=lambda r: r[f"adseq{mode_adseq}_us_per_step"])
        if f"ours{mode_ours}_us_per_step" not in peer:
            continue
        mine = [r for r in rows if f"ours{mode_ours}_us_per_step" in r]
        fastest = min(mine, key=lambda r: r[f"ours{mode_ours}_us_per_step"])
        summary[f"ours{mode_ours or '_plain'}_vs_adseq{mode_adseq or '_plain'}"] = {
            "queue": peer["queue"],
            "adseq_us_per_step": peer[f"adseq{mode_adseq}_us_per_step"],
            "adseq_peak_bytes": peer[f"adseq{mode_adseq}_peak_bytes"],
            "ours_us_per_step": peer[f"ours{mode_ours}_us_per_step"],
            "ours_peak_bytes": peer[f"ours{mode_ours}_peak_bytes"],
            "speedup": peer[f"adseq{mode_adseq}_us_per_step"] / peer[f"ours{mode_ours}_us_per_step"],
            "memory_ratio": peer[f"ours{mode_ours}_peak_bytes"] / peer[f"adseq{mode_adseq}_peak_bytes"],
            "ours_fastest_any_kind": {"queue": fastest["queue"],
                                      "us_per_step": fastest[f"ours{mode_ours}_us_per_step"],
                                      "dropped": fastest[f"ours{mode_ours}_dropped"]},
        }
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4000, help="Poisson benchmark steps (paper: 40,000)")
    parser.add_argument("--queues", type=int, default=10_000, help="independent queues in the Poisson benchmark")
    parser.add_argument("--rsnn-steps", type=int, default=2000, help="recurrent benchmark steps (paper: 10,000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (best is kept)")
    parser.add_argument("--memory-limit-gib", type=float, default=12.0,
                        help="skip running a compiled gradient that needs more memory than this")
    parser.add_argument("--remat-chunk", type=int, default=0,
                        help="steps per rematerialised chunk in the *_remat runs (0: sqrt of the steps)")
    parser.add_argument("--kinds", help="comma-separated queue names to run (default: all), e.g. 'fifo_ring[4],bitmask'")
    parser.add_argument("--skip-rsnn", action="store_true")
    parser.add_argument("--write-measurements", metavar="PATH",
                        help="also store our Poisson µs/step per kind as the cpu table of queues/measurements.json")
    parser.add_argument("--out", required=True, help="JSON results file")
    args = parser.parse_args(argv)

    import adseq  # the peer; installed with `pip install .[bench]`

    kinds = set(args.kinds.split(",")) if args.kinds else None
    known = {p.name for p in PAIRS}
    if kinds and not kinds <= known:
        parser.error(f"--kinds: unknown {sorted(kinds - known)}; choose from {sorted(known)}")

    results: dict[str, Any] = {
        "command": "python benchmarks/queues_vs_adseq.py " + shlex.join(argv if argv is not None else __import__("sys").argv[1:]),
        "device": str(jax.devices()[0]), "device_kind": jax.devices()[0].platform, "platform": platform.platform(), "processor": platform.processor(),
        "cpu_count": __import__("os").cpu_count(), "jax": jax.__version__, "adseq": adseq_version(),
        "poisson_config": {"queues": args.queues, "steps": args.steps, "spike_probability": 1 / 400,
                           "delay_steps": 80, "stream": "pre-generated Bernoulli spikes, identical for both"},
        "poisson": bench_poisson(adseq, args.steps, args.queues, args.repeats, kinds=kinds),
    }
    if not args.skip_rsnn:
        results["rsnn_config"] = {"neurons": N_NEURONS, "dt_ms": DT, "tau_syn_ms": TAU_SYN, "tau_mem_ms": TAU_MEM,
                                  "delay_ms": [DELAY_MEAN, DELAY_STD], "max_delay_ms": MAX_DELAY_MS,
                                  "steps": args.rsnn_steps, "gradient": "jax.grad (reverse mode) w.r.t. 100x100 weights"}
        chunk = args.remat_chunk or max(1, round(args.rsnn_steps**0.5))
        results["rsnn_config"]["remat_chunk"] = chunk
        results["rsnn_grad"], results["rsnn_summary"] = bench_rsnn(
            adseq, args.rsnn_steps, args.repeats, int(args.memory_limit_gib * 2**30), chunk, kinds)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.out}")
    if args.write_measurements:
        write_measurements(results, args.write_measurements)
        print(f"updated {args.write_measurements}")


def write_measurements(results: dict[str, Any], path: str) -> None:
    """Store our Poisson costs per kind for `queues.recommend`, under the device kind measured on."""
    kind = {"delay_line": "delay_line", "fifo_ring[4]": "fifo_ring", "lossy_ring[4]": "lossy_ring",
            "sorted_array[4]": "sorted_array", "binary_heap[7]": "binary_heap",
            "single_spike(newest)": "single_spike", "bitmask": "bitmask"}
    with open(path) as f:
        table = json.load(f)
    table[results.get("device_kind") or results["device"].split(":")[0]] = {
        "source": f"measured by `{results['command']}` on {results['processor'] or results['platform']} "
                  f"({results['cpu_count']} cores), JAX {results['jax']}",
        "us_per_step": {kind[r["queue"]]: r["ours_us_per_step"] for r in results["poisson"]
                        if r["queue"] in kind and "ours_us_per_step" in r},
    }
    with open(path, "w") as f:
        json.dump(table, f, indent=2)
        f.write("\n")


def adseq_version() -> str:
    from importlib.metadata import version
    return version("adseq")


if __name__ == "__main__":
    main()
