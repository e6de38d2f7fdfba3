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
  ``state.dropped``, and ``delivered + dropped + pending == pushed`` holds per queue.
"""

from __future__ import annotations

import abc
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

EMPTY = jnp.inf
"""Time stored in an empty lane: never due, never popped."""


class Delivery(eqx.Module):
    """The spikes one `pop` delivered, with a leading *lane* axis.

    ``hits[l]`` counts the spikes lane ``l`` delivered (0 or 1; a count for `DelayLine`);
    ``times[l]`` is their arrival time (equal to ``now`` where nothing was delivered, so kernels of
    ``now - times`` stay finite and their gradients free of NaNs).
    """

    hits: Float[Array, "lanes *shape"]
    times: Float[Array, "lanes *shape"]

    def count(self) -> Float[Array, "*shape"]:
        """Spikes delivered per queue."""
        return self.hits.sum(0)

    def exponential(self, now: ArrayLike, tau: ArrayLike) -> Float[Array, "*shape"]:
        r"""Jump of an exponential trace sampled at step ``now``: :math:`\sum_l h_l e^{-(now - t_l)/\tau}`.

        A spike arriving at time ``a`` in ``(now-1, now]`` contributes ``exp(-(now - a)/tau)``, the
        value at ``now`` of a trace that jumped by 1 at ``a``. Its derivative w.r.t. ``a`` is that
        value over ``tau``: the spike-time gradient rule of exact-time simulators.
        """
        return (self.hits * jnp.exp((self.times - now) / tau)).sum(0)


class SpikeQueue(eqx.Module):
    """Abstract base of every queue kind.

    Subclasses hold their configuration as static fields (``max_delay`` and, where it applies,
    ``capacity``) and implement `init`, `_insert`, `pop` and `pending`; `push` validates its
    arguments and computes arrival times and delivery steps once for all kinds.
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

    @property
    def dtype(self) -> Any:
        return jnp.result_type(float)

    # -- shared ------------------------------------------------------------------------------
    def pop(self, state: Any, now: ArrayLike) -> tuple[Any, Delivery]:
        """Remove and return every spike due at step ``now`` (call once per step, before `push`)."""
        return self._pop(state, _check_now(now))

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
        """
        shape = _state_shape(state)
        now = _check_now(now)
        delays = _broadcast("delays", delays, shape, self.dtype)
        mask = _broadcast("mask", mask, shape, bool)
        if times is None:
            times = jnp.broadcast_to(now.astype(self.dtype), shape)
        else:
            times = _broadcast("times", times, shape, self.dtype)
        delays, times = self._check_values(now, delays, mask, times)
        arrival = times + delays
        step = jnp.maximum(jnp.ceil(jax.lax.stop_gradient(arrival)).astype(jnp.int32), now + 1)
        return self._insert(state, arrival, step, mask)

    def _check_values(self, now, delays, mask, times):
        """Reject NaN or out-of-range delays and emission times outside the current step.

        Values known at trace time are checked eagerly (ValueError); traced ones at run time with
        `equinox.error_if` (wrap callers in `equinox.filter_jit` for a readable message).
        """
        limit = self.max_delay
        bad_delay = jnp.isnan(delays) | (delays < 0) | (delays > limit)
        late = jnp.isnan(times) | (times > now) | (times <= now - 1)
        bad_time = mask & late
        delay_msg = f"push: `delays` must lie in [0, max_delay={limit}] and not be NaN"
        time_msg = "push: spike `times` must lie in (now-1, now] (push in the step the spike occurs)"
        if _is_concrete(delays, now) and _is_concrete(mask, times):
            if bool(np.any(np.asarray(bad_delay))):
                d = np.asarray(delays)
                raise ValueError(f"{delay_msg}; got values in [{np.nanmin(d)}, {np.nanmax(d)}]"
                                 f"{' including NaN' if np.isnan(d).any() else ''}")
            if bool(np.any(np.asarray(bad_time))):
                raise ValueError(f"{time_msg}; now={int(now)}, offending times "
                                 f"{np.asarray(times)[np.asarray(bad_time)][:5]}")
        elif self.validate:
            delays = eqx.error_if(delays, bad_delay, delay_msg)
            times = eqx.error_if(times, bad_time, time_msg)
        return delays, times


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


def delivery_from_lanes(
    times: Float[Array, "lanes *shape"], due: Bool[Array, "lanes *shape"], now: Array
) -> Delivery:
    """Delivery of the lanes flagged ``due`` out of a lane buffer of arrival times."""
    return Delivery(hits=due.astype(times.dtype), times=jnp.where(due, times, now.astype(times.dtype)))


def empty_times(lanes: int, shape: tuple[int, ...], dtype) -> Float[Array, "lanes *shape"]:
    return jnp.full((lanes, *shape), EMPTY, dtype)


def zeros_count(shape: tuple[int, ...]) -> Int[Array, "*shape"]:
    return jnp.zeros(shape, jnp.int32)


def lane_ids(lanes: int, ndim: int) -> Int[Array, "lanes ..."]:
    """``arange(lanes)`` shaped to broadcast against a ``(lanes, *shape)`` buffer."""
    return jnp.arange(lanes, dtype=jnp.int32).reshape((lanes,) + (1,) * ndim)


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
    return jnp.broadcast_to(value.astype(dtype), shape)


def _is_concrete(*xs) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in xs)


class LaneState(eqx.Module):
    """State of the kinds that keep up to ``lanes`` spikes per queue as arrival times."""

    times: Float[Array, "lanes *shape"]  # EMPTY (+inf) where a lane holds no spike
    dropped: Int[Array, "*shape"]

    def pending(self) -> Int[Array, "*shape"]:
        return jnp.isfinite(self.times).sum(0, dtype=jnp.int32)
