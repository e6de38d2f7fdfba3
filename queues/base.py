"""The queue interface shared by every kind: `init`, `push`, `pop`, `pending`.

Conventions (all kinds):

* Time is measured in simulation steps. Spike times and delays are floats, so a spike can arrive
  between two steps; step ``n`` delivers the spikes whose arrival time ``a`` lies in ``(n-1, n]``.
* A queue object is a frozen configuration (capacity, maximum delay) with no array leaves; the
  pending spikes live in a separate *state* PyTree covering a whole layer of queues of any shape
  (``batch x pre x post`` synapses, or one queue per presynaptic neuron for axonal delays).
  Functions are pure: ``state = q.push(state, ...)``, ``state, delivery = q.pop(state, now)``.
* One simulation step calls ``pop(state, now)`` first and ``push(state, now, ...)`` after, for
  the spikes emitted in that step (spike times ``t`` in ``(now-1, now]``). A spike is delivered at
  step ``max(ceil(t + d), now + 1)``: a delay shorter than the rest of the step cannot reach back
  into a step that was already popped, so it lands one step later, with its true arrival time.
* ``pop`` delivers *every* spike due in the step (several per queue where the kind can hold
  several) as a `Delivery`: ``hits`` and arrival ``times`` per lane. A consumer sums a kernel of
  ``now - times`` weighted by ``hits``; e.g. an exponential synaptic trace is exact at the step
  times, and its gradient w.r.t. spike times and delays is the true one, obtained by ordinary
  autodiff (forward and reverse mode) since the queue only moves the stored times around.
* Nothing is lost silently: every kind counts what its drop policy discarded in
  ``state.dropped``, and ``delivered + dropped + pending == pushed`` holds per queue, with
  ``validate=False`` too (a NaN delay or time, unchecked there, counts as dropped).
* Spike times are absolute floats, exact to 1/256 step up to `max_exact_step` (65,536 steps in
  float32; in float64 the int32 step counter's limit); later steps are refused, not rounded.
"""

from __future__ import annotations

import abc
import math
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

EMPTY = jnp.inf
"""Time stored in an empty lane: never due, never popped."""


class Delivery(eqx.Module):
    """The spikes one `pop` delivered, lane by lane.

    ``hits[l]`` counts the spikes lane ``l`` delivered (0 or 1; a count for `DelayLine`);
    ``times[l]`` is their arrival time (equal to ``now`` where nothing was delivered, so kernels of
    ``now - times`` stay finite and their gradients free of NaNs). Lanes are a tuple of arrays of
    the layer's shape rather than one stacked array: on XLA:CPU a float reduction over a stacked
    leading lane axis compiles to a slow strided loop (7x slower per step, measured on 10k queues x
    4 lanes), while sums of separate lane arrays fuse into one vectorised loop.
    """

    hits: tuple[Float[Array, "*shape"], ...]
    times: tuple[Float[Array, "*shape"], ...]

    def count(self) -> Float[Array, "*shape"]:
        """Spikes delivered per queue."""
        return lane_sum(self.hits)

    def exponential(self, now: ArrayLike, tau: ArrayLike) -> Float[Array, "*shape"]:
        r"""Jump of an exponential trace sampled at step ``now``: :math:`\sum_l h_l e^{-(now - t_l)/\tau}`.

        A spike arriving at time ``a`` in ``(now-1, now]`` contributes ``exp(-(now - a)/tau)``, the
        value at ``now`` of a trace that jumped by 1 at ``a``. Its derivative w.r.t. ``a`` is that
        value over ``tau``: the spike-time gradient rule of exact-time simulators. (Defined with a
        custom JVP so that reverse mode keeps one coefficient per lane and step, not three arrays.)

        A membrane driven only by this trace, sampled once per step, misses when within the step the
        current switched on, which biases delay gradients (tested in ``tests/test_zoo_neurons.py``);
        add the exact sub-step membrane jump with `kernel` and `zoo.neurons.membrane_kernel`.
        """
        dtype = self.times[0].dtype
        return _exponential_kernel(self.hits, self.times, jnp.asarray(now).astype(dtype), jnp.asarray(tau, dtype))

    def kernel(self, now: ArrayLike, fn) -> Float[Array, "*shape"]:
        """:math:`\\sum_l h_l f(now - t_l)` for any differentiable kernel ``f`` of the time since arrival.

        E.g. the exact membrane jump of a current-based LIF neuron (see `zoo.neurons`), which, unlike a
        trace sampled at the step, is continuous in the arrival time across step boundaries.
        """
        now = jnp.asarray(now).astype(self.times[0].dtype)
        return lane_sum(tuple(h * fn(now - t) for h, t in zip(self.hits, self.times)))

    def stacked(self, axis: int = 0) -> tuple[Array, Array]:
        """``(hits, times)`` as arrays with the lanes stacked along ``axis``."""
        return jnp.stack(self.hits, axis), jnp.stack(self.times, axis)


@jax.custom_jvp
def _exponential_kernel(hits, times, now, tau):
    return lane_sum(tuple(h * jnp.exp((t - now) / tau) for h, t in zip(hits, times)))


@_exponential_kernel.defjvp
def _exponential_kernel_jvp(primals, tangents):
    hits, times, now, tau = primals
    _, dtimes, dnow, dtau = tangents  # hits are counts: no tangent
    values = tuple(h * jnp.exp((t - now) / tau) for h, t in zip(hits, times))
    # d/dt_l = v_l / tau, d/dnow = -sum v_l / tau, d/dtau = sum v_l (now - t_l) / tau^2
    out = lane_sum(tuple((v / tau) * dt for v, dt in zip(values, dtimes)))
    total = lane_sum(values)
    out = out - total / tau * dnow
    out = out + lane_sum(tuple(v * (now - t) for v, t in zip(values, times))) / tau**2 * dtau
    return total, out


def just_after(x: ArrayLike) -> Array:
    """The smallest float above ``x`` that stays above it under XLA, the start of the half-open step
    ``(x, x + 1]`` as a spike time. ``nextafter(0, 1)`` is a denormal number, which XLA on CPU flushes
    to zero in the next operation, so a spike "just after 0" would land at 0, outside its step; the
    smallest normal number is used there instead (selected, not added: XLA reassociates
    ``(n - 1) + tiny`` into ``n + (tiny - 1)``, which rounds back to ``n - 1``)."""
    x = jnp.asarray(x)
    return jnp.where(x == 0, jnp.finfo(x.dtype).tiny, jnp.nextafter(x, x + 1))


def lane_sum(lanes):
    """Sum of per-lane arrays (kept as separate arrays; see `Delivery`)."""
    total = lanes[0]
    for lane in lanes[1:]:
        total = total + lane
    return total


class SpikeQueue(eqx.Module):
    """Abstract base of every queue kind.

    Subclasses hold their configuration as static fields (``max_delay`` and, where it applies,
    ``capacity``) and implement `init`, `_insert`, `_pop` and `pending`; the public `push` and `pop`
    validate their arguments and compute arrival times and delivery steps once for all kinds.
    """

    # Every kind declares, as static fields: `max_delay` (steps) and `validate` (run-time checks of
    # traced delays and times, default on); capacity-bounded kinds also `capacity`.

    # -- what each kind provides -------------------------------------------------------------
    @abc.abstractmethod
    def init(self, shape: tuple[int, ...] = ()) -> Any:
        """An empty state for a layer of queues of the given shape."""

    @abc.abstractmethod
    def _insert(
        self,
        state: Any,
        now: Int[Array, ""],
        arrival: Float[Array, "*shape"],
        step: Int[Array, "*shape"],
        mask: Bool[Array, "*shape"],
    ) -> Any:
        """Insert one spike per queue where ``mask``: arrival time and delivery step given."""

    @abc.abstractmethod
    def _pop(self, state: Any, now: Int[Array, ""]) -> tuple[Any, Delivery]:
        """Remove and return every spike due at step ``now`` (validated int32 scalar)."""

    @abc.abstractmethod
    def pending(self, state: Any) -> Int[Array, "*shape"]:
        """Spikes still queued, per queue."""

    _check_after_pop: ClassVar[bool] = False
    """Tie the run-time step check to the delivery (which keeps it alive in XLA) instead of feeding the
    checked step to `_pop`: for kinds whose pop XLA fuses only without a conditional upstream of it."""

    @property
    def dtype(self) -> Any:
        return jnp.result_type(float)

    # -- shared ------------------------------------------------------------------------------
    def pop(self, state: Any, now: ArrayLike) -> tuple[Any, Delivery]:
        """Remove and return every spike due at step ``now`` (call once per step, before `push`)."""
        now = _check_now(now)
        checked = check_pop_step(self, state, now)
        if checked is now or not self._check_after_pop:
            return self._pop(state, checked)
        state, delivery = self._pop(state, now)
        first = delivery.hits[0] + (checked - now).astype(delivery.hits[0].dtype)  # + 0
        return state, Delivery((first, *delivery.hits[1:]), delivery.times)

    def push(
        self,
        state: Any,
        now: ArrayLike,
        delays: Float[ArrayLike, "*shape"],
        mask: Bool[ArrayLike, "*shape"],
        times: Float[ArrayLike, "*shape"] | None = None,
    ) -> Any:
        """Queue the spikes emitted in step ``now`` (call after `pop` in the same step).

        Args:
            state: the layer's state from `init` / `pop` / `push`.
            now: current step (integer scalar).
            delays: delay of each queue's spike in steps, in ``[0, max_delay]``; broadcast to the
                state's shape (a per-synapse delay matrix, or a scalar).
            mask: which queues receive a spike this step; broadcast like ``delays``.
            times: exact emission times in ``(now-1, now]`` (e.g. from interpolating the threshold
                crossing); ``None`` means ``now``. Differentiable, like ``delays``.

        Checks: ``delays`` everywhere (a delay matrix is one parameter, valid or not), ``times`` only
        where ``mask`` is set (a time where nothing fires may be a placeholder), ``now`` against
        `max_exact_step` (a traced ``now`` by the pop that would deliver the spike). Values known at
        trace time always raise a ValueError; traced ones raise at run time unless ``validate=False``,
        which gives up those checks for speed: a NaN delay or time is then counted as dropped, an
        out-of-range delay or step is delivered at a wrong step (still counted as delivered or
        pending), and for the kinds with a `Clock` a skipped pop goes unseen.
        """
        shape = _state_shape(state)
        now = _check_now(now)
        # delays and times keep their own (broadcastable) shape: a scalar delay costs one ceil,
        # not one per queue; the kinds broadcast against `mask`, which has the layer's shape.
        delays = _broadcast("delays", delays, shape, self.dtype)
        mask = jnp.broadcast_to(_broadcast("mask", mask, shape, bool), shape)
        if times is not None:
            times = _broadcast("times", times, shape, self.dtype)
        if _is_concrete(now) and bool(_out_of_range(now, self.max_delay, self.dtype)):
            # a traced step is checked by the pop that would deliver the spike (`check_pop_step`)
            raise ValueError(f"push: step {_range_message(self.max_delay, self.dtype)}; got now={int(now)}")
        delays, times = check_values("push", self.max_delay, self.validate, now, delays, mask, times)
        if times is None:  # spikes at the step time: valid by construction
            times = now.astype(self.dtype)
        arrival = times + delays
        step = jnp.maximum(jnp.ceil(jax.lax.stop_gradient(arrival)).astype(jnp.int32), now + 1)
        if self.validate:
            return self._insert(state, now, arrival, step, mask)
        # unchecked NaN delays or times give no arrival to queue the spike at: count it as dropped
        lost = mask & jnp.isnan(arrival)
        state = self._insert(state, now, arrival, step, mask & ~lost)
        return eqx.tree_at(lambda s: s.dropped, state, state.dropped + lost)


def max_exact_step(dtype) -> int:
    r"""The largest step at which spike times of ``dtype`` still resolve 1/256 of a step.

    Spike times are absolute floats, whose resolution falls as the step count grows: at step
    :math:`2^{20}` a float32 time is a multiple of 1/8 step, and past :math:`2^{24}` a step number is
    itself rounded, so a spike would be delivered in the wrong step. The queues accept steps with
    :math:`|n| \le 2^{p-8}` (``p`` the mantissa's bits with the hidden one: 65,536 steps in float32,
    e.g. 6.5 s at dt = 0.1 ms; :math:`2^{45}` in float64, which ``jax_enable_x64`` makes the
    default, capped by the int32 step counter) and refuse later ones instead of rounding them.
    """
    return min(2 ** (jnp.finfo(dtype).nmant + 1 - 8), 2**31 - 1)


def _out_of_range(now, max_delay: float, dtype):
    """Whether steps ``now`` (any shape) reach past `max_exact_step` by their latest arrival."""
    limit = max_exact_step(dtype)
    n = np.asarray(now) if _is_concrete(now) else now
    return (n <= -limit) | (n > limit - math.ceil(max_delay) - 1)


def _range_message(max_delay: float, dtype) -> str:
    limit = max_exact_step(dtype)
    return (f"`now` must lie within [-{limit - 1}, {limit - math.ceil(max_delay) - 1}], where "
            f"{jnp.dtype(dtype).name} spike times resolve 1/256 of a step up to the latest arrival; for longer runs "
            "enable float64 with jax.config.update('jax_enable_x64', True) (see queues.base.max_exact_step)")


def check_values(caller: str, max_delay: float, validate: bool, now, delays, mask, times):
    """``(delays, times)``, rejecting NaN or out-of-range delays and emission times outside their step.

    ``now`` is the emission step of each spike (a scalar for `SpikeQueue.push`, an array broadcasting
    against ``times`` for `queues.Scheduled`). Values known at trace time are checked eagerly
    (ValueError); traced ones at run time with `equinox.error_if` (wrap callers in
    `equinox.filter_jit` for a readable message), unless ``validate`` is off. ``times=None`` (spikes
    at their step time) is valid by construction and returned as None.
    """
    delay_msg = f"{caller}: `delays` must lie in [0, max_delay={max_delay}] and not be NaN"
    if _is_concrete(delays):  # numpy, since jnp ops would be staged into an enclosing trace
        d = np.asarray(delays)
        if np.any(np.isnan(d) | (d < 0) | (d > max_delay)):
            raise ValueError(f"{delay_msg}; got values in [{np.nanmin(d)}, {np.nanmax(d)}]"
                             f"{' including NaN' if np.isnan(d).any() else ''}")
    elif validate:
        bad_delay = jnp.isnan(delays) | (delays < 0) | (delays > max_delay)
        delays = eqx.error_if(delays, bad_delay, delay_msg)
    if times is None:
        return delays, None
    time_msg = f"{caller}: spike `times` must lie in (now-1, now] (the step the spike occurs)"
    if _is_concrete(mask, times, now):
        # compared as XLA would: in the times' dtype, with subnormal times flushed to zero (XLA:CPU
        # does), so that a time accepted here is accepted under `jit` too
        t, m = np.asarray(times), np.asarray(mask)
        t = np.where(np.abs(t) < np.finfo(t.dtype).tiny, np.zeros((), t.dtype), t)
        n = np.asarray(now).astype(t.dtype)
        bad = m & (np.isnan(t) | (t > n) | (t <= n - 1))
        if np.any(bad):
            raise ValueError(f"{time_msg}; offending times {t[bad][:5]} (steps {np.broadcast_to(n, bad.shape)[bad][:5]})")
    elif validate:
        bad_time = mask & (jnp.isnan(times) | (times > now) | (times <= now - 1))
        times = eqx.error_if(times, bad_time, time_msg)
    return delays, times


class Clock(eqx.Module):
    """The step of a state's last `pop`, for the kinds that need pops at consecutive steps.

    `DelayLine`, `LossyRing` and `Bitmask` find a spike by its delivery step modulo their slot count,
    so a skipped pop would leave its spikes to be delivered a whole turn late. A pop must therefore
    come at the step after the last pop, and a push at the step of the last pop (pop first). A push
    only records whether it did (``pushes_ok``); the next pop checks both in the one run-time check
    it makes anyway (`check_pop_step`), so a push adds no conditional to the step. A fresh state is
    marked by ``started`` (a flag, since every int32 is a valid step, negative ones too) and accepts
    any first step.
    """

    last: Int[Array, ""]  # step of the last pop (or of the first push into a fresh state)
    started: Bool[Array, ""]
    pushes_ok: Bool[Array, ""]  # every push since the last pop came at its step

    @staticmethod
    def fresh() -> "Clock":
        false = jnp.zeros((), bool)
        return Clock(jnp.zeros((), jnp.int32), false, ~false)

    @staticmethod
    def popped(now: Int[Array, ""]) -> "Clock":
        """The clock after a pop at step ``now``."""
        true = jnp.ones((), bool)
        return Clock(now, true, true)

    def pushed(self, now: Int[Array, ""]) -> "Clock":
        """The clock after a push at step ``now``."""
        return Clock(jnp.where(self.started, self.last, now), jnp.ones((), bool),
                     self.pushes_ok & (~self.started | (now == self.last)))


def check_pop_step(queue: "SpikeQueue", state: Any, now: Int[Array, ""]) -> Int[Array, ""]:
    """``now``, checked to lie within `max_exact_step` and, for a state with a `Clock`, to follow the
    last pop, with every push since at that pop's step. Known values raise a ValueError at once;
    traced ones (when ``queue.validate``) meet one `equinox.branched_error_if`, whose result the
    caller ties to the delivery so that XLA cannot drop it as unused."""
    kind = type(queue).__name__
    range_msg = f"{kind}.pop: step {_range_message(queue.max_delay, queue.dtype)}"
    if _is_concrete(now) and bool(_out_of_range(now, queue.max_delay, queue.dtype)):
        raise ValueError(f"{range_msg}; got now={int(now)}")
    if not queue.validate:
        return now
    msgs, preds = [range_msg], [_out_of_range(now, queue.max_delay, queue.dtype)]
    clock = getattr(state, "clock", None)
    if clock is not None:
        # a push at a skipped step also makes this pop skip one: the push is named, as the cause
        msgs += [f"{kind}.push: `now` must be the step of the last pop (pop every step, then push that step's "
                 "spikes)",
                 f"{kind}.pop: `now` must be the step after the previous pop/push (pop every step, in order: "
                 "a skipped pop delivers its spikes late)"]
        preds += [clock.started & ~clock.pushes_ok, clock.started & (now != clock.last + 1)]
    if _is_concrete(now, *preds):
        for pred, msg in zip(preds, msgs):
            if bool(pred):
                raise ValueError(f"{msg}; got now={int(now)}")
        return now
    preds = jnp.stack([jnp.asarray(p) for p in preds])
    return eqx.branched_error_if(now, preds.any(), jnp.argmax(preds), msgs)


def check_config(kind: str, max_delay: float, capacity: int | None = None) -> None:
    """Constructor checks shared by the kinds; the message names the argument."""
    if isinstance(max_delay, bool) or not isinstance(max_delay, (int, float, np.integer, np.floating)):
        raise TypeError(f"{kind}: `max_delay` must be a number of steps, got {max_delay!r}")
    if not math.isfinite(max_delay) or max_delay < 0:
        raise ValueError(f"{kind}: `max_delay` must be finite and >= 0, got {max_delay!r}")
    if capacity is not None:
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)):
            raise TypeError(f"{kind}: `capacity` must be an integer, got {capacity!r}")
        if capacity < 1:
            raise ValueError(f"{kind}: `capacity` must be >= 1, got {capacity}")


def deliver(lanes: tuple[Array, ...], due: tuple[Array, ...], now: Array) -> Delivery:
    """Delivery of the lanes flagged ``due`` out of per-lane arrival times."""
    dtype = lanes[0].dtype
    nowf = now.astype(dtype)
    return Delivery(hits=tuple(d.astype(dtype) for d in due),
                    times=tuple(jnp.where(d, t, nowf) for d, t in zip(due, lanes)))


def empty_lanes(lanes: int, shape: tuple[int, ...], dtype) -> tuple[Array, ...]:
    return tuple(jnp.full(shape, EMPTY, dtype) for _ in range(lanes))


def zeros_count(shape: tuple[int, ...]) -> Int[Array, "*shape"]:
    return jnp.zeros(shape, jnp.int32)


def _state_shape(state) -> tuple[int, ...]:
    return tuple(state.dropped.shape)


def _check_now(now) -> Array:
    now = jnp.asarray(now)
    if now.ndim != 0 or not jnp.issubdtype(now.dtype, jnp.integer):
        raise TypeError(f"`now` must be an integer scalar step, got {now.dtype} of shape {now.shape}")
    return now.astype(jnp.int32)


def _broadcast(name: str, value, shape: tuple[int, ...], dtype) -> Array:
    value = jnp.asarray(value)
    try:
        out_shape = jnp.broadcast_shapes(value.shape, shape)
    except ValueError:
        out_shape = None
    if out_shape != shape:
        raise ValueError(f"push: `{name}` has shape {value.shape}, which does not broadcast to the "
                         f"queue layer's shape {shape}")
    if dtype is bool and value.dtype != jnp.bool_:
        raise TypeError(f"push: `{name}` must be boolean, got {value.dtype}")
    return value.astype(dtype)


def _is_concrete(*xs) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in xs)


class LaneState(eqx.Module):
    """State of the kinds that keep up to ``lanes`` spikes per queue as arrival times."""

    times: tuple[Float[Array, "*shape"], ...]  # one array per lane; EMPTY (+inf) where free
    dropped: Int[Array, "*shape"]

    def pending(self) -> Int[Array, "*shape"]:
        return lane_sum(tuple(jnp.isfinite(t).astype(jnp.int32) for t in self.times))


def lossless_capacity(max_delay: float) -> int:
    r"""The smallest ``capacity`` with which a queue never drops a spike whose source spikes at most
    once per step (a neuron, an input channel) through a fixed delay ``d <= max_delay``.

    A spike pushed in step ``n`` (at ``t <= n``) is popped in step ``max(ceil(t + d), n + 1) <= n +
    max(1, ceil(max_delay))``, so after the push of step ``m`` only the pushes of the last
    :math:`\max(1, \lceil D \rceil)` steps can still be pending. The bound a ring or array needs
    "while memory allows", for kinds that keep every spike (`FIFORing`, `SortedArray`, `BinaryHeap`).
    """
    check_config("lossless_capacity", max_delay)
    return max(1, math.ceil(max_delay))


class CapacityQueue(SpikeQueue):
    """Abstract base of the kinds that hold up to ``capacity`` spikes per queue as arrival times.

    Defaults to a `LaneState` of ``capacity`` lanes; kinds with more state override `init`.
    `lossless_capacity` gives the capacity that never drops for a source spiking once per step.
    """

    capacity: int = eqx.field(static=True)
    max_delay: float = eqx.field(static=True)
    validate: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        check_config(type(self).__name__, self.max_delay, self.capacity)

    def init(self, shape=()) -> LaneState:
        return LaneState(empty_lanes(self.capacity, tuple(shape), self.dtype), zeros_count(tuple(shape)))

    def pending(self, state):
        return state.pending()
