"""EventProp: exact event-based gradients for weights, delays and input spike times.

The network is a stack of current-based LIF layers (time in steps, as in `zoo.neurons`)

    dV/dt = -V / tau_mem + I,    dI/dt = -I / tau_syn,    I += w_ji  when a spike of i arrives at t_k + d_ji,

with a spike when ``V`` reaches the threshold ``theta`` (found within the step from the exact solution:
a bracket by bisection, then safeguarded Newton steps) and ``V -> 0`` at that time. Each layer receives
the spike times of the layer below, so its arrivals ``t_k + d_ji`` are known in advance: one broadcast
add, exact for any delay >= 0 (or, with a ``queue``, delivered through layers of `queues`; the same
arrivals). A layer may also feed itself through recurrent synapses with delays of at least one step.

The gradient is the adjoint method of Wunderlich & Pehle (2021), extended to delays as in Mészáros,
Knight & Nowotny (2025). With ``lambda_V = dL/dV(t)`` and ``lambda_I = dL/dI(t)`` (the sensitivity of the
loss to the state at time ``t``), the backward pass integrates, from the last step to the first,

    d lambda_V / dt = lambda_V / tau_mem,    d lambda_I / dt = lambda_I / tau_syn - lambda_V

(exactly: the same kernels as the forward pass, run backwards), adds ``dL/dV(n)`` at every step the loss
reads, and at every spike time ``t*`` of a neuron, with ``V'- = I(t*) - theta / tau_mem`` and ``V'+ = I(t*)``
the slopes before and after the reset, jumps

    lambda_V(t*-) = (V'+ lambda_V(t*+) - dL/dt*) / V'-,

where ``dL/dt*`` is what the layer above (and the loss) sends back for that spike. Every arrival
``a = t_k + d_ji`` then yields

    dL/dw_ji += lambda_I,j(a),    dL/dd_ji += w_ji (lambda_I,j(a) / tau_syn - lambda_V,j(a)),

and the same ``w_ji (lambda_I,j / tau_syn - lambda_V,j)(a)``, summed over the targets ``j``, is ``dL/dt_k``
of the presynaptic spike: the message for the layer below. The backward pass runs layer by layer,
from the top, so every spike's message is complete before its own layer is integrated; a recurrent
layer's own messages are summed as its backward pass crosses their arrivals, which lie in later steps
than the spikes that sent them. What it keeps
from the forward pass is the spike times and the synaptic current at each spike: memory O(spikes),
not O(steps x neurons) as in backpropagation through time. While a layer's backward pass runs it
holds that layer's adjoint per step and neuron (O(steps x neurons), like the loss's ``dL/dV``), so
the terms of the arrivals from the layer below, which change no adjoint state, are computed once
per arrival after the loop rather than masked out of the whole table at every step.

Cost per step. Each arrival is carried once to the start of its step, ``A = w e^{u/tau}`` with
``u = a - (n-1)`` (see `_carried`); the membrane at any time of the step is then two exponentials
per neuron plus masked sums of ``A``, which makes each evaluation in the search for the threshold
crossing cheap, and
a layer that does not spike (the readout) sums its input per step once, outside the time loop.

`network` is that forward pass with three gradients: ``"eventprop"`` (the adjoint above, a
`jax.custom_vjp`), ``"exact"`` (JAX autodiff through the same simulation, with spike times
differentiated implicitly, ``dt* = -dV(t*) / V'-``; the same numbers at O(steps) memory) and
``"surrogate"`` (autodiff where each spike's presence also carries a surrogate derivative of the
threshold crossing, as in BPTT with surrogate gradients).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

import queues
from queues.base import just_after

from . import neurons

METHODS = ("eventprop", "exact", "surrogate")
BRACKET_HALVINGS, NEWTON_STEPS = 6, 8  # how a spike's threshold crossing is found in its step (`_layer_forward`)


@dataclass(frozen=True)
class LIFCell:
    """Time constants (steps) and threshold of every layer; ``max_spikes`` slots per neuron record spikes
    (more in one run are counted as ``overflow`` and do not reach the next layer)."""

    tau_syn: float = 2.0
    tau_mem: float = 4.0
    threshold: float = 1.0
    max_spikes: int = 4

    def __post_init__(self):
        neurons.membrane_kernel(self.tau_syn, self.tau_mem)  # validates the time constants
        if self.threshold <= 0 or self.max_spikes < 1:
            raise ValueError(f"LIFCell: need threshold > 0 and max_spikes >= 1, got {self}")

    def kernel(self, h):
        return neurons.membrane_kernel(self.tau_syn, self.tau_mem)(h)

    def decay_mem(self, h):
        return jnp.exp(-h / self.tau_mem)

    def decay_syn(self, h):
        return jnp.exp(-h / self.tau_syn)


def _arrivals(times, delays):
    """Arrival times ``(src, S, post)`` of the spikes ``times`` (src, S) through ``delays`` (src, post)."""
    return times[:, :, None] + delays[:, None, :]


def _carried(cell: LIFCell, arrive, weight, step=None):
    """Each arrival's step ``m`` (``arrive`` in ``(m-1, m]``; -1 for an empty slot) and its weight carried
    back to that step's start on the two kernels, ``(w e^{u/tau_mem}, w e^{u/tau_syn})`` with
    ``u = arrive - (m-1)`` in ``(0, 1]``. At ``t = m - 1 + h`` in its step the arrival then adds

        K(t - a) w = scale (e^{-h/tau_mem} A_mem - e^{-h/tau_syn} A_syn)   to the membrane,
        e^{-(t-a)/tau_syn} w = e^{-h/tau_syn} A_syn                          to the current,

    (``K = scale (e^{-x/tau_mem} - e^{-x/tau_syn})``), so a step evaluates the membrane at many times
    (the search for its threshold crossing) with two exponentials per neuron, none per arrival.
    ``step``: the step every arrival is known to lie in (a queue's delivery), else ``ceil(arrive)``."""
    finite = jnp.isfinite(arrive)
    arrive = jnp.where(finite, arrive, 0.0)  # no inf - inf (nor its NaN gradient) below
    m = jnp.ceil(jax.lax.stop_gradient(arrive)) if step is None else step
    m = jnp.where(finite, m, -1.0)
    u = arrive - (m - 1)
    weight = jnp.where(finite, weight, 0.0)
    return m, weight * jnp.exp(u / cell.tau_mem), weight * jnp.exp(u / cell.tau_syn)


def _per_step(m, values, steps: int):
    """``values`` (src, S, post) summed per step ``m`` and target: ``(steps, post)`` (outside steps: dropped,
    as arrivals after the last step never reach the simulated membrane)."""
    post = values.shape[-1]
    index = jnp.where((m >= 0) & (m < steps), m, steps).astype(jnp.int32)
    target = jnp.broadcast_to(jnp.arange(post), values.shape)
    return jnp.zeros((steps + 1, post), values.dtype).at[index, target].add(values)[:steps]


def _push_step(queue, state, now, times, delays, n, per_slot: bool):
    """Push the spikes of ``times`` (src, S) that fall in step ``n``, at queue step ``now``. A layer's
    neurons spike at most once per step, so one push does; input channels may spike more often, so
    with ``per_slot`` their slots are pushed one by one (few: ``input_slots``)."""
    for column in (jnp.split(times, times.shape[1], axis=1) if per_slot else (times,)):
        here = (column > n - 1) & (column <= n)
        fired = here.any(1)
        t = jnp.where(fired, jnp.where(here, column, 0.0).sum(1), n)  # step time where silent (ignored)
        state = queue.push(state, now, delays, fired[:, None], t[:, None])
    return state


def _queue_source(queue, state, n, weight):
    """Pop step ``n`` of a queue layer kept one step ahead (see `_layer_forward`): ``(state, source)``."""
    state, delivery = queue.pop(state, n + 1)
    hits, times = delivery.stacked(1)  # (src, lanes, post)
    here = hits > 0
    return state, (here, jnp.where(here, times - 1, n.astype(times.dtype)), jnp.where(here, weight * hits, 0.0))


def _layer_forward(cell: LIFCell, weight, delays, times_in, presence_in, steps: int, spiking: bool, spike_fn,
                   rec_weight=None, rec_delays=None, queue=None, input_layer: bool = False):
    """One layer over steps ``n = 0 .. steps-1`` (step ``n`` covers ``(n-1, n]``).

    ``times_in`` (pre, S_in): presynaptic spike times, ``inf`` in empty slots; ``presence_in`` the same
    shape, 1.0 where a spike is (carrying a surrogate derivative, or none). With ``rec_weight``
    (post, post) and ``rec_delays`` (>= 1 step, so a spike never arrives in its own step), the layer's
    own recorded spikes come back to it. Returns the layer's spike times, currents at those spikes,
    presences and pinned flags (post, S), its overflow count (post,), and the membrane after each step
    (steps, post).

    With a ``queue`` (a `queues.SpikeQueue` kind; its ``max_delay`` at least one step above every
    delay), spikes are delivered through queue layers instead of arrival tables: one ``(pre, post)``
    layer for the input and one ``(post, post)`` for the recurrent synapses. The input layer runs one
    step ahead (queue step ``n + 1`` is simulation step ``n``), so the spikes of step ``n + 1``, known
    in advance, are pushed in step ``n`` with one more step of delay and still arrive at their exact
    times, within their own step when the delay is short. Spikes a queue drops are counted.
    """
    post, slots = weight.shape[0], cell.max_spikes
    dtype = weight.dtype
    recurrent = rec_weight is not None
    scale = neurons.kernel_scale(cell.tau_syn, cell.tau_mem)  # of cell.kernel
    if queue is None:
        # the input's arrivals are known before the loop: their steps and carried weights once, and what
        # they add at each step's end summed per step (a layer that does not spike needs nothing else)
        arrive_in = _arrivals(times_in, delays)
        m_in, mem_in, syn_in = _carried(cell, arrive_in, weight.T[:, None, :] * presence_in[:, :, None])
        table_mem, table_syn = _per_step(m_in, mem_in, steps), _per_step(m_in, syn_in, steps)
    else:
        table_mem = table_syn = jnp.zeros((steps, post), dtype)

    def step(carry, xs):
        v, i, count, t_out, i_out, p_out, k_out, overflow, queue_states = carry
        n_step, sum_mem, sum_syn = xs  # what the input table's arrivals add by the step's end
        n = n_step.astype(dtype)
        sources = []  # this step's arrivals (a, A_mem, A_syn), a = inf and A = 0 where none (see _carried)

        def arriving(a, carried, summed: bool):  # add arrivals ``a`` with their `_carried` (m, A_mem, A_syn)
            nonlocal sum_mem, sum_syn
            m, a_mem, a_syn = carried
            here = m == n
            a_mem, a_syn = jnp.where(here, a_mem, 0.0), jnp.where(here, a_syn, 0.0)
            if not summed:  # the input table's are in sum_mem, sum_syn already
                sum_mem, sum_syn = sum_mem + a_mem.sum((0, 1)), sum_syn + a_syn.sum((0, 1))
            sources.append((jnp.where(here, a, jnp.inf), a_mem, a_syn))

        if queue is None:
            if spiking:  # the crossing time needs the arrivals themselves
                arriving(arrive_in, (m_in, mem_in, syn_in), summed=True)
            if recurrent:
                arrive = _arrivals(t_out, rec_delays)
                arriving(arrive, _carried(cell, arrive, rec_weight.T[:, None, :] * p_out[:, :, None]), summed=False)
        else:
            in_state, rec_state = queue_states
            in_state, (here, a, w) = _queue_source(queue, in_state, n_step, weight.T[:, None, :])
            popped = [(jnp.where(here, a, jnp.inf), w)]
            if recurrent:
                rec_state, (here, a, w) = _queue_source(queue, rec_state, n_step, rec_weight.T[:, None, :])
                popped.append((jnp.where(here, a, jnp.inf), w))
            for a, w in popped:
                arriving(a, _carried(cell, a, w, step=n), summed=False)

        def arrived(which):  # (sum A_mem, sum A_syn) per neuron over this step's arrivals a with which(a)
            total_mem = total_syn = 0.0
            for a, a_mem, a_syn in sources:
                on = which(a)
                total_mem = total_mem + jnp.where(on, a_mem, 0.0).sum((0, 1))
                total_syn = total_syn + jnp.where(on, a_syn, 0.0).sum((0, 1))
            return total_mem, total_syn

        def membrane_current(t):  # V(t), I(t) for t in [n-1, n] per neuron, no reset within the step
            h = t - (n - 1)
            e_mem, e_syn = cell.decay_mem(h), cell.decay_syn(h)
            got_mem, got_syn = arrived(lambda a: a <= t)
            return e_mem * (v + scale * (i + got_mem)) - e_syn * scale * (i + got_syn), e_syn * (i + got_syn)

        def membrane(t):
            return membrane_current(t)[0]

        def current(t):
            return membrane_current(t)[1]

        e_mem, e_syn = cell.decay_mem(1.0), cell.decay_syn(1.0)
        v_end = e_mem * (v + scale * (i + sum_mem)) - e_syn * scale * (i + sum_syn)
        i_end = e_syn * (i + sum_syn)
        if queue is not None:  # the next step's input spikes, one step of delay more (see above)
            in_state = _push_step(queue, in_state, n_step + 1, times_in, delays + 1, n + 1, input_layer)
            queue_states = (in_state, rec_state)
        if not spiking:
            return (v_end, i_end, count, t_out, i_out, p_out, k_out, overflow, queue_states), v_end
        fire = jax.lax.stop_gradient(v_end) >= cell.threshold
        # at or above threshold already when the step starts: the neuron should have fired again in
        # the last step (one spike per step is the resolution); the spike is pinned to the step's start,
        # where it depends on no parameter (and is counted, so a finer step can be chosen)
        pinned = fire & (jax.lax.stop_gradient(v) >= cell.threshold)

        def halve(_, bounds):  # invariant: V(lo) < theta <= V(hi)
            lo, hi = bounds
            mid = (lo + hi) / 2
            above = jax.lax.stop_gradient(membrane(mid)) >= cell.threshold
            return jnp.where(above, lo, mid), jnp.where(above, mid, hi)

        def polish(_, state):  # a Newton step on V(t) = theta, kept in the bracket (halving it if it would leave)
            lo, hi, t = state
            v_t, i_t = jax.lax.stop_gradient(membrane_current(t))
            above = v_t >= cell.threshold
            lo, hi = jnp.where(above, lo, t), jnp.where(above, t, hi)
            slope = i_t - v_t / cell.tau_mem  # dV/dt
            newton = t - (v_t - cell.threshold) / jnp.where(slope > 0, slope, 1.0)
            inside = (slope > 0) & (newton >= lo) & (newton <= hi)
            return lo, hi, jnp.where(inside, newton, (lo + hi) / 2)

        # the crossing time to the dtype's resolution (a coarser one would make the loss a staircase in the
        # parameters): halvings bracket it to 2^-6 of a step, then Newton steps converge quadratically, as
        # V is smooth between arrivals (error e -> ~ |V''/2V'| e^2: 1e-2, 1e-4, 1e-8, 1e-16), in 14
        # evaluations of the membrane where halving alone takes one per mantissa bit (24 in float32, 53 in
        # float64). Where V barely reaches the threshold (V' ~ 0) Newton is slow and the steps that would
        # leave the bracket halve it, so 8 of them, not 4: even then the error is 2^-14 of a step at most
        bracket = jax.lax.fori_loop(0, BRACKET_HALVINGS, halve, (jnp.full(post, n - 1), jnp.full(post, n)))
        _, _, t_hit = jax.lax.fori_loop(0, NEWTON_STEPS, polish, (*bracket, bracket[1]))
        t_hit = jax.lax.stop_gradient(jnp.where(fire, jnp.where(pinned, just_after(n - 1), t_hit), n))
        i_hit = current(t_hit)
        # implicit derivative of the crossing time: dt* = -dV(t*) / V'-  (value unchanged)
        slope = jax.lax.stop_gradient(i_hit - cell.threshold / cell.tau_mem)
        residual = membrane(t_hit)
        crossing = fire & ~pinned
        t_spike = t_hit - jnp.where(crossing, residual - jax.lax.stop_gradient(residual), 0.0) / jnp.where(
            crossing, slope, 1.0)
        i_spike = current(t_spike)
        late_mem, late_syn = arrived(lambda a: (a > t_hit) & jnp.isfinite(a))
        v_reset = cell.kernel(n - t_spike) * i_spike + scale * (e_mem * late_mem - e_syn * late_syn)
        # 1.0 where fire, else 0.0; with a surrogate, its derivative reaches the reset of every step and
        # the presence of every recorded spike (a spike that did not happen has no time to send)
        presence = spike_fn(v_end - cell.threshold)
        v = presence * v_reset + (1 - presence) * v_end
        slot = (jnp.arange(slots)[None, :] == count[:, None]) & fire[:, None]
        t_out = jnp.where(slot, t_spike[:, None], t_out)
        i_out = jnp.where(slot, i_spike[:, None], i_out)
        p_out = jnp.where(slot, presence[:, None], p_out)
        k_out = k_out | (slot & pinned[:, None])
        overflow = overflow + (fire & (count >= slots))
        if queue is not None and recurrent:
            # queue time = simulation time + 1; a spike pinned just after n-1 could round onto n
            t_queue = jnp.maximum(t_spike + 1, just_after(n))
            recorded = fire & (count < slots)  # like the next layer, the synapses see only recorded spikes
            rec_state = queue.push(rec_state, n_step + 1, rec_delays - (t_queue - t_spike - 1), recorded[:, None],
                                   t_queue[:, None])
            queue_states = (in_state, rec_state)
        return (v, i_end, count + fire, t_out, i_out, p_out, k_out, overflow, queue_states), v

    zeros = jnp.zeros(post, dtype)
    init = (zeros, zeros, jnp.zeros(post, jnp.int32), jnp.full((post, slots), jnp.inf, dtype),
            jnp.zeros((post, slots), dtype), jnp.zeros((post, slots), dtype), jnp.zeros((post, slots), bool),
            jnp.zeros(post, jnp.int32), None)
    if queue is not None:
        in_state, _ = queue.pop(queue.init(delays.shape), 0)  # pops run at consecutive steps from 0
        in_state = _push_step(queue, in_state, 0, times_in, delays + 1, jnp.zeros((), dtype), input_layer)
        rec_state = queue.pop(queue.init((post, post)), 0)[0] if recurrent else None
        init = init[:-1] + ((in_state, rec_state),)
    (_, _, _, t_out, i_out, p_out, k_out, overflow, queue_states), v_trace = jax.lax.scan(
        step, init, (jnp.arange(steps), table_mem, table_syn))
    dropped = jnp.zeros((), jnp.int32) if queue is None else sum(
        s.dropped.sum() for s in queue_states if s is not None)
    return t_out, i_out, p_out, k_out, overflow, v_trace, dropped


def _layer_backward(cell: LIFCell, weight, delays, times_in, t_out, i_out, k_out, cot_t_out, cot_v, steps: int,
                    rec_weight=None, rec_delays=None):
    """The adjoint of one layer: ``(dL/dweight, dL/ddelays, dL/dtimes_in, dL/drec_weight, dL/drec_delays)``
    given ``dL/dt_out`` (post, S) from above and ``dL/dV(n)`` (steps, post). See the module docstring for
    the equations; a pinned spike (``k_out``) depends on nothing and resets the membrane whatever it
    was, so ``lambda_V(t*-) = 0``. With recurrence, the messages of the layer's own spikes are summed
    while the backward pass crosses their arrivals, which all lie in later steps (delays >= 1)."""
    recurrent = rec_weight is not None

    def step(carry, xs):
        lam_v, lam_i, rec_grads, own = carry  # lambda at time n, before the loss read at n; own: recurrent messages
        n, source = xs
        n = n.astype(weight.dtype)
        lam_v = lam_v + source
        mine = (t_out > n - 1) & (t_out <= n)  # this neuron's spike in the step (at most one)
        fired = mine.any(1)
        t_star = jnp.where(fired, jnp.where(mine, t_out, 0.0).sum(1), n)
        i_star = jnp.where(mine, i_out, 0.0).sum(1)
        message = jnp.where(mine, cot_t_out + own, 0.0).sum(1)
        h = n - t_star
        lv_after = cell.decay_mem(h) * lam_v  # at t*+
        li_after = cell.decay_syn(h) * lam_i + cell.kernel(h) * lam_v
        slope_before = jnp.where(fired, i_star - cell.threshold / cell.tau_mem, 1.0)
        pinned = jnp.where(mine, k_out, False).any(1)
        lv_before = jnp.where(fired, jnp.where(pinned, 0.0, (i_star * lv_after - message) / slope_before),
                              lv_after)  # at t*-
        adjoint = (t_star, fired, lam_v, lam_i, lv_before, li_after)
        if recurrent:  # the layer's own arrivals depend on its spikes: their terms here, as the pass crosses them
            arrive = _arrivals(t_out, rec_delays)
            here = (arrive > n - 1) & (arrive <= n)
            at_i, term = _arrival_adjoint(cell, arrive, rec_weight.T[:, None, :], here, n, *adjoint)
            d_weight, d_delays, d_times = rec_grads
            rec_grads = (d_weight + at_i.sum(1).T, d_delays + term.sum(1), d_times + term.sum(2))
            own = rec_grads[2]  # dL/dt of this layer's own spikes through the recurrent synapses
        back = t_star - (n - 1)
        lam_v_start = cell.decay_mem(back) * lv_before  # lambda at n-1
        lam_i_start = cell.decay_syn(back) * li_after + cell.kernel(back) * lv_before
        return (lam_v_start, lam_i_start, rec_grads, own), adjoint

    post = weight.shape[0]
    zeros = jnp.zeros(post, weight.dtype)
    rec_grads = (jnp.zeros_like(rec_weight), jnp.zeros_like(rec_delays), jnp.zeros_like(t_out)) if recurrent else None
    xs = (jnp.arange(steps - 1, -1, -1), cot_v[::-1])
    (_, _, rec_grads, _), adjoint = jax.lax.scan(step, (zeros, zeros, rec_grads, jnp.zeros_like(t_out)), xs)
    # the input's arrivals change no adjoint state, so their terms need not wait inside the loop: each
    # arrival reads the adjoint of its own step (kept per step and neuron: O(steps x post), as dL/dV)
    arrive = _arrivals(times_in, delays)
    here = jnp.isfinite(arrive) & (arrive > -1) & (arrive <= steps - 1)
    m = jnp.where(here, jnp.ceil(arrive), 0.0)
    row = (steps - 1 - m).astype(jnp.int32)  # the scan ran from the last step
    target = jnp.broadcast_to(jnp.arange(post), arrive.shape)
    at_i, term = _arrival_adjoint(cell, arrive, weight.T[:, None, :], here, m,
                                  *(quantity[row, target] for quantity in adjoint))
    d_weight, d_delays, d_times = at_i.sum(1).T, term.sum(1), term.sum(2)
    d_rec = (rec_grads[0], rec_grads[1]) if recurrent else None
    return d_weight, d_delays, jnp.where(jnp.isfinite(times_in), d_times, 0.0), d_rec


def _arrival_adjoint(cell: LIFCell, arrive, weight, here, n, t_star, fired, lam_v, lam_i, lv_before, li_after):
    """``(lambda_I(a), w (lambda_I / tau_syn - lambda_V)(a))`` at each arrival ``a`` that is ``here`` in
    step ``n``, from the adjoint at the step's end (``lam_v``, ``lam_i``) and around the neuron's spike
    at ``t_star`` (``lv_before`` at t*-, ``li_after`` at t*+): arrivals after the spike (or in a step
    without one) see lambda(n), the others lambda(t*-); 0 where not ``here``."""
    after = (arrive > t_star) | ~fired
    g = jnp.where(here, jnp.where(after, n, t_star) - arrive, 0.0)
    ref_v = jnp.where(after, lam_v, lv_before)
    at_v = cell.decay_mem(g) * ref_v
    at_i = jnp.where(here, cell.decay_syn(g) * jnp.where(after, lam_i, li_after) + cell.kernel(g) * ref_v, 0.0)
    return at_i, jnp.where(here, weight * (at_i / cell.tau_syn - at_v), 0.0)


def _forward(cell, steps, spiking_out, queue, spike_fn, weights, delays, recurrent, times_in):
    times, presence = times_in, jnp.isfinite(times_in).astype(times_in.dtype)
    layer_times, currents, pins, counts = [times_in], [], [], []
    for k, (weight, delay, rec) in enumerate(zip(weights, delays, recurrent)):
        spiking = k < len(weights) - 1 or spiking_out
        times, i_out, presence, pinned, overflow, v_trace, dropped = _layer_forward(
            cell, weight, delay, times, presence, steps, spiking, spike_fn, *(rec or (None, None)), queue=queue,
            input_layer=k == 0)
        layer_times.append(times)
        currents.append(i_out)
        pins.append(pinned)
        counts.append({"overflow": overflow.sum(), "pinned": pinned.sum(), "queue_dropped": dropped})
    return v_trace, tuple(layer_times[1:]), tuple(counts), (tuple(layer_times), tuple(currents), tuple(pins))


def _heaviside_no_grad(x):
    return jax.lax.stop_gradient((x >= 0).astype(x.dtype))


@partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _eventprop(cell, steps, spiking_out, queue, weights, delays, recurrent, times_in):
    v_trace, times, counts, _ = _forward(cell, steps, spiking_out, queue, _heaviside_no_grad, weights, delays,
                                         recurrent, times_in)
    return v_trace, times, counts


def _eventprop_fwd(cell, steps, spiking_out, queue, weights, delays, recurrent, times_in):
    v_trace, times, counts, (layer_times, currents, pins) = _forward(cell, steps, spiking_out, queue,
                                                                     _heaviside_no_grad, weights, delays, recurrent,
                                                                     times_in)
    # residuals: the parameters, and per layer the spike times and the currents at them: O(spikes)
    return (v_trace, times, counts), (weights, delays, recurrent, layer_times, currents, pins)


def _eventprop_bwd(cell, steps, spiking_out, queue, residuals, cotangents):
    # the adjoint reads every arrival from the recorded spike times, whatever queue delivered them
    # forward: exact as long as the queue dropped nothing (counted in `queue_dropped`)
    del queue
    weights, delays, recurrent, layer_times, currents, pins = residuals
    cot_v, cot_times, _ = cotangents
    d_weights, d_delays, d_recurrent = [None] * len(weights), [None] * len(weights), [None] * len(weights)
    message = None  # dL/d(spike times) of the layer being integrated, from the layer above
    for k in reversed(range(len(weights))):
        out_cot = cot_times[k] if message is None else cot_times[k] + message
        out_cot = jnp.where(jnp.isfinite(layer_times[k + 1]), out_cot, 0.0)
        v_cot = cot_v if k == len(weights) - 1 else jnp.zeros((steps, weights[k].shape[0]), weights[k].dtype)
        d_weights[k], d_delays[k], message, d_recurrent[k] = _layer_backward(
            cell, weights[k], delays[k], layer_times[k], layer_times[k + 1], currents[k], pins[k], out_cot, v_cot,
            steps, *(recurrent[k] or (None, None)))
    return tuple(d_weights), tuple(d_delays), tuple(d_recurrent), message


_eventprop.defvjp(_eventprop_fwd, _eventprop_bwd)


def network(weights: tuple[Float[Array, "post pre"], ...], delays: tuple[Float[Array, "pre post"], ...],
            times_in: Float[Array, "channels slots"], *, cell: LIFCell, steps: int, method: str = "eventprop",
            recurrent: tuple | None = None, spiking_out: bool = False, surrogate_fn=None, queue=None):
    """Simulate the layers ``weights[k]`` (with ``delays[k]``) for ``steps`` steps from input spike times.

    ``recurrent[k]``, if given and not None, is ``(weight (post, post), delays (post, post))`` of layer
    ``k``'s synapses onto itself; recurrent delays are taken as at least one step (smaller ones are
    raised to 1, with zero gradient there), so a spike never comes back within its own step.

    Returns ``(v_trace, spike_times, counts)``: the last layer's membrane after each step
    (steps, post), every layer's spike times (post, max_spikes; ``inf`` in empty slots; the last layer
    spikes only with ``spiking_out``) and per layer ``{"overflow": spikes that found no slot (they do
    not reach the next layer), "pinned": spikes pinned to a step's start (see `_layer_forward`)}``.
    ``method`` picks the gradient (see the module docstring); ``surrogate_fn`` is the spike function
    for ``"surrogate"``. ``queue``: deliver through layers of this queue kind instead of arrival tables
    (see `_layer_forward`; its ``max_delay`` must exceed every delay by a step; ``counts`` then also
    says what it dropped, which EventProp's backward pass, reading the recorded spikes, assumes is 0).
    """
    if method not in METHODS:
        raise ValueError(f"network: unknown method {method!r}; choose from {', '.join(METHODS)}")
    if len(weights) != len(delays) or not weights:
        raise ValueError(f"network: need one delay matrix per weight matrix, got {len(weights)} and {len(delays)}")
    recurrent = tuple(recurrent) if recurrent is not None else (None,) * len(weights)
    if len(recurrent) != len(weights):
        raise ValueError(f"network: `recurrent` needs one entry (or None) per layer, got {len(recurrent)} for "
                         f"{len(weights)} layers")
    for k, (w, d, rec) in enumerate(zip(weights, delays, recurrent)):
        pre = times_in.shape[0] if k == 0 else weights[k - 1].shape[0]
        if w.shape != (w.shape[0], pre) or d.shape != (pre, w.shape[0]):
            raise ValueError(f"network: layer {k} has weight {w.shape} and delays {d.shape}; with {pre} inputs "
                             f"they must be (post, {pre}) and ({pre}, post)")
        if rec is not None and (rec[0].shape != (w.shape[0],) * 2 or rec[1].shape != (w.shape[0],) * 2):
            raise ValueError(f"network: layer {k}'s recurrent weight and delays must be ({w.shape[0]}, {w.shape[0]}), "
                             f"got {rec[0].shape} and {rec[1].shape}")
    recurrent = tuple(None if rec is None else (rec[0], jnp.maximum(rec[1], 1.0)) for rec in recurrent)
    if isinstance(queue, (queues.DelayLine, queues.Bitmask)):
        raise ValueError(f"network: {type(queue).__name__} merges the spikes a synapse delivers in one step (or "
                         "keeps no times), so arrivals would not be exact; choose a kind that keeps them apart: "
                         "fifo_ring, lossy_ring, sorted_array, binary_heap or single_spike")
    if queue is not None and method == "surrogate":
        raise ValueError("network: method='surrogate' needs arrival tables (queue=None): queues carry spike times, "
                         "not the surrogate derivative of each spike's presence")
    if method == "eventprop":
        return _eventprop(cell, steps, spiking_out, queue, tuple(weights), tuple(delays), recurrent, times_in)
    if method == "surrogate" and surrogate_fn is None:
        raise ValueError("network: method='surrogate' needs surrogate_fn (e.g. zoo.neurons.fast_sigmoid(5.0))")
    spike_fn = surrogate_fn if method == "surrogate" else _heaviside_no_grad
    v_trace, times, counts, _ = _forward(cell, steps, spiking_out, queue, spike_fn, tuple(weights), tuple(delays),
                                         recurrent, times_in)
    return v_trace, times, counts


def input_times(spikes: Float[Array, "steps channels"], times: Float[Array, "steps channels"] | None,
                slots: int) -> tuple[Float[Array, "channels slots"], Array]:
    """Spike times per channel from a raster (``times`` exact, or the step times ``n``), earliest first,
    ``inf`` in empty slots; and the count of spikes beyond ``slots`` per channel (they are left out)."""
    steps = spikes.shape[0]
    at = jnp.arange(steps, dtype=jnp.float32)[:, None] if times is None else times  # row n: time n
    fired = spikes > 0
    order = jnp.argsort(~fired, axis=0, stable=True)[:slots]  # the steps with spikes first, in time order
    picked = jnp.take_along_axis(jnp.broadcast_to(at, spikes.shape), order, 0)
    valid = jnp.take_along_axis(fired, order, 0)
    return jnp.where(valid, picked, jnp.inf).T, jnp.maximum(fired.sum(0) - slots, 0)


def discounted_counts(spike_times: Float[Array, "neurons slots"], steps: int) -> Float[Array, " neurons"]:
    """Each neuron's spike count with every spike weighted by the share of the window left after it,

        c_i = sum_k (1 - t_ik / steps),

    the count for spikes at t = 0 and 0 for a spike at the window's end. The count itself is piecewise
    constant, so its exact gradient is zero wherever it exists; ``c`` has the exact gradient
    ``dc_i/dt_ik = -1/steps``, which a count penalty turns into pushing surplus spikes towards the end of
    the window, where they leave it (and pulling spikes earlier when a neuron is below its target)."""
    return jnp.where(jnp.isfinite(spike_times), 1.0 - spike_times / steps, 0.0).sum(-1)
