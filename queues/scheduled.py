"""Scheduled delivery: every pop of a layer of queues at once, when every push is known in advance."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from .base import _out_of_range, _range_message, check_config, check_values


class Schedule(eqx.Module):
    """Every arrival of one raster's spikes at every target, from `Scheduled.schedule`.

    Row ``k`` is one input event (presynaptic ``pre[k]``, emitted in step ``emitted[k]``); column
    ``j`` one target. ``arrival[k, j] = t_k + d[pre_k, j]`` is the exact arrival time and
    ``step[k, j] = max(ceil(arrival), emitted + 1)`` the step that delivers it, the convention of
    every queue kind (`queues.base`). Unused rows (``valid`` false) have ``step == steps``.

    Events of the raster's last step arrive at step ``steps`` or later whatever their delay, so they
    take no row: they are counted in ``late`` (synapse spikes, in `pending`), never in ``dropped``.

    ``gain[k]`` is what event ``k`` delivers: exactly 1 in value (an event is one spike, whatever the
    raster entry ``x_k > 0`` held), with the derivative of ``x_k`` (straight through, `unit_gain`).
    A raster of surrogate spikes made by a layer below thus passes that layer the gradient
    ``dL/ds`` of every spike that fired, as BPTT through ``s * w * f`` would; entries that did not fire
    make no event and get none (delivery is event-driven both ways).
    """

    pre: Int[Array, " events"]
    valid: Bool[Array, " events"]
    gain: Float[Array, " events"]
    arrival: Float[Array, "events targets"]  # in float32 at least, whatever the delays' dtype
    step: Int[Array, "events targets"]
    dropped: Int[Array, ""]  # synapse spikes left out, a total over the layer: events beyond the capacity x targets
    late: Int[Array, ""]  # synapse spikes of the last step's events: past the window, whatever the delay
    steps: int = eqx.field(static=True)

    def kernel(self, weight: Float[Array, "post pre"], fn) -> Float[Array, "steps post"]:
        r"""Per step ``n`` and target ``j``: :math:`\sum_{k: step_{kj} = n} g_k w_{j, pre_k} f(n - a_{kj})`,
        ``g_k`` the `gain` of event ``k`` (1 in value).

        The weighted `Delivery.kernel` of every step of the simulation at once, as one scatter-add
        over (event, target) pairs; differentiable w.r.t. ``weight``, the delays and the spike times
        (autodiff of the scatter is a gather). Arrivals at or after ``steps`` fall outside the window
        (`pending`), as they stay queued at the end of a stepped simulation.
        """
        weight = jnp.asarray(weight)
        post = weight.shape[0]
        step = jnp.broadcast_to(self.step, (self.step.shape[0], post))
        since = jax.lax.stop_gradient(step).astype(self.arrival.dtype) - self.arrival
        # padded rows get since = 0 before `fn`, not after: their arrival lies up to max_delay before their
        # step, where e.g. exp(since / tau) overflows, and where() would then pass 0 * inf = NaN gradients
        since = jnp.where(self.valid[:, None], since, 0)
        values = jnp.where(self.valid[:, None], self.gain[:, None] * weight.T[self.pre] * fn(since), 0)
        values = values.astype(jnp.result_type(weight.dtype, self.gain.dtype))  # not the times' float32
        index = step * post + jnp.arange(post)  # row-major (steps, post); >= steps * post: outside
        out = jnp.zeros(self.steps * post, values.dtype).at[index.reshape(-1)].add(values.reshape(-1), mode="drop")
        return out.reshape(self.steps, post)

    def exponential(self, weight: Float[Array, "post pre"], tau: float) -> Float[Array, "steps post"]:
        """Jumps of an exponential trace: `kernel` with ``f(x) = exp(-x / tau)`` (see `Delivery.exponential`)."""
        return self.kernel(weight, lambda since: jnp.exp(-since / tau))

    def pending(self) -> Int[Array, ""]:
        """Synapse spikes still in flight after the last step (arrival at step ``steps`` or later),
        ``late`` included."""
        return (self.valid[:, None] & (self.step >= self.steps)).sum() + self.late

    def delivered(self) -> Int[Array, ""]:
        """Synapse spikes delivered within the window."""
        return (self.valid[:, None] & (self.step < self.steps)).sum()


class Scheduled(eqx.Module):
    """Delivery of a whole spike raster at once, for layers whose input is known before they run.

    A queue is needed where spikes are produced while the simulation runs (recurrent connections).
    The input of a feed-forward layer is known before the layer is simulated, so the sequence of
    pushes and pops of its queues is known too: each event ``(t, i)`` reaches target ``j`` at
    ``a = t + d_ij``, delivered at step ``max(ceil(a), n + 1)`` (``n`` the emission step), and what
    every step's pop would deliver is one scatter-add (`Schedule.kernel`). The time loop then
    only integrates the neurons: the hoisting of the feed-forward product out of the loop, applied
    to delivery. Its cost is O(events x targets), whatever the maximum delay; a stepped queue layer
    costs O(steps x synapses x its slots or lanes).

    Each spike keeps its own arrival time (a `DelayLine` merges the spikes a synapse delivers in one
    step into their mean time), and nothing is dropped below ``capacity``: values and gradients
    equal those of a stepped queue that drops nothing (tested against `FIFORing` and `SortedArray`).

    Args:
        max_delay: bound of the delays, in steps (checked like `SpikeQueue.push` does).
        capacity: the most events (raster entries ``> 0``) one call delivers; later events (in step,
            then channel order) are dropped and counted in `Schedule.dropped`. The last step's events
            do not count against it: they can only arrive after the window (`Schedule.late`).
            ``None``: the size of the raster's other steps, which never drops but costs as much as a
            dense raster.
        validate: run-time checks of traced delays and spike times (as for the queue kinds).
    """

    max_delay: float = eqx.field(static=True)
    capacity: int | None = eqx.field(static=True, default=None)
    validate: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        check_config("Scheduled", self.max_delay, self.capacity)

    def schedule(self, spikes: Float[ArrayLike, "steps pre"], delays: Float[ArrayLike, "pre targets"],
                 times: Float[ArrayLike, "steps pre"] | None = None) -> Schedule:
        """The arrivals of the events of ``spikes`` (``spikes[n, i] > 0``: input ``i`` spikes in
        ``(n-1, n]``, at ``times[n, i]`` if given, else at ``n``) through ``delays`` (per synapse
        ``(pre, post)``, or per axon ``(pre, 1)``)."""
        spikes = jnp.asarray(spikes)
        if spikes.ndim != 2:
            raise ValueError(f"Scheduled.schedule: `spikes` must be (steps, pre), got shape {spikes.shape}")
        steps, pre = spikes.shape
        delays = jnp.asarray(delays)
        if delays.ndim != 2 or delays.shape[0] != pre:
            raise ValueError(f"Scheduled.schedule: `delays` must be ({pre}, targets) for {pre} inputs, "
                             f"got shape {delays.shape}")
        dtype = delays.dtype if jnp.issubdtype(delays.dtype, jnp.floating) else jnp.result_type(float)
        # times are kept in float32 at least, as by the stepped queues, whatever the delays' dtype: a
        # bfloat16 step number is exact only up to 256, and its times resolve 1/8 step by step 20
        time_dtype = jnp.promote_types(dtype, jnp.float32)
        if times is not None and jnp.shape(times) != spikes.shape:
            raise ValueError(f"Scheduled.schedule: `times` must have the shape of `spikes` {spikes.shape}, "
                             f"got {jnp.shape(times)}")
        # an event of step n arrives at step n + 1 at the earliest: the last step's never within the window,
        # so they are counted (late) but spend no capacity, which a run's earlier events need
        if _out_of_range(steps - 1, self.max_delay, time_dtype):
            raise ValueError(f"Scheduled.schedule: {steps} steps: step {_range_message(self.max_delay, time_dtype)}")
        early = (steps - 1) * pre  # raster entries of the steps before the last, row-major
        capacity = max(early, 1) if self.capacity is None else self.capacity
        fired = spikes.reshape(-1) > 0
        (index,) = jnp.nonzero(fired[:early], size=capacity, fill_value=early)
        valid = index < early
        index = jnp.minimum(index, spikes.size - 1)
        emitted, i = jnp.where(valid, index // pre, steps), jnp.where(valid, index % pre, 0)
        t = None if times is None else jnp.asarray(times, time_dtype).reshape(-1)[index][:, None]
        d, t = check_values("Scheduled.schedule", self.max_delay, self.validate, emitted[:, None],
                            delays.astype(time_dtype), valid[:, None], t)
        t = emitted.astype(time_dtype)[:, None] if t is None else t
        arrival = t + d[i]
        step = jnp.maximum(jnp.ceil(jax.lax.stop_gradient(arrival)).astype(jnp.int32), emitted[:, None] + 1)
        step = jnp.where(valid[:, None], step, steps)
        dropped = (fired[:early].sum() - valid.sum()) * delays.shape[1]
        late = fired[early:].sum() * delays.shape[1]
        entry = spikes.reshape(-1)[index]
        gain = unit_gain(entry.astype(dtype)) if jnp.issubdtype(entry.dtype, jnp.floating) else jnp.ones(capacity, dtype)
        return Schedule(i, valid, jnp.where(valid, gain, 0), arrival, step, dropped.astype(jnp.int32),
                        late.astype(jnp.int32), steps)


@jax.custom_jvp
def unit_gain(x: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    """Ones, with the derivative of ``x`` (straight through). Written as a JVP rule rather than
    ``1 + x - sg(x)``, which rounds to 0.99999994 in float32 for ``x = 0.3``."""
    return jnp.ones_like(x)


@unit_gain.defjvp
def _unit_gain_jvp(primals, tangents):
    return jnp.ones_like(primals[0]), tangents[0]
