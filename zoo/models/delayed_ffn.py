"""Feed-forward SNN with a learnable delay on every input synapse."""

from __future__ import annotations

import jax
from jaxtyping import Array, Float, PRNGKeyArray

import queues

from ..registry import PretrainedEntry, register
from .common import DelayedSNN, check_sizes, readout_logits, step_inputs, time_scan
from .synapses import DelayedSynapses


class DelayedFeedForward(DelayedSNN):
    """Input spikes -> synapses with per-synapse delays -> LIF layer -> leaky readout.

    Every input synapse (channel c -> hidden h) has a weight and a continuous delay in
    ``[0, max_delay]`` steps, delivered through one ``(channels, hidden)`` layer of the given ``queue``
    kind (its ``max_delay`` bounds the delays), so the same model runs on any queue; or, with
    ``queue=queues.Scheduled(...)``, delivered for every step at once before the time loop, which then
    only integrates the neurons (same values and gradients as a queue that drops nothing). Hidden neurons
    are current-based LIF, integrated exactly with the sub-step arrival times (`zoo.neurons`); their
    spikes use a surrogate derivative (``surrogate``: fast_sigmoid, arctan or triangle). ``readout``:
    the maximum (``max_membrane``) or the time average (``sum_membrane``) of a non-spiking leaky readout
    layer, or the readout layer spiking with logits its ``spike_count`` or minus its ``first_spike``
    time (differentiable through the surrogate: ``sum_n n s_n prod_{m<n} (1 - s_m)``, ``steps`` if
    silent). ``dropout`` hides that fraction of the hidden neurons from the readout in training (when
    called with a ``key``; `DelayedSNN.readout_mask`). ``__call__`` takes one example.
    """

    input: DelayedSynapses

    def __init__(self, channels: int, hidden: int, classes: int, *, key: PRNGKeyArray,
                 queue: queues.SpikeQueue | queues.Scheduled | None = None, tau_syn: float = 2.0, tau_mem: float = 4.0,
                 threshold: float = 1.0, surrogate: str = "fast_sigmoid", surrogate_slope: float = 5.0,
                 readout: str = "max_membrane", init_delay: float | None = None, remat_chunk: int | None = None,
                 dropout: float = 0.0):
        check_sizes("DelayedFeedForward", channels=channels, hidden=hidden, classes=classes)
        queue = queues.FIFORing(capacity=2, max_delay=16.0) if queue is None else queue
        k_in, k_out = jax.random.split(key)
        self.input = DelayedSynapses(channels, hidden, queue, key=k_in, tau_syn=tau_syn, tau_mem=tau_mem,
                                     init_delay=init_delay)
        self._init_readout("DelayedFeedForward", hidden, classes, k_out, threshold, surrogate, surrogate_slope, readout,
                           remat_chunk, dropout)

    def __call__(self, spikes: Float[Array, "steps channels"], times: Float[Array, "steps channels"] | None = None,
                 *, key: PRNGKeyArray | None = None) -> tuple[Float[Array, " classes"], dict]:
        """Logits for one example: ``spikes[n, c] > 0`` where channel ``c`` spikes in ``(n-1, n]``, at the
        exact ``times[n, c]`` if given (else at ``n``)."""
        channels, hidden = self.input.delays.shape
        steps, times = step_inputs("DelayedFeedForward", channels, spikes, times, self.input.delays.dtype)
        neurons_step = self.hidden_step(self.input.tau_syn, self.input.tau_mem, self.readout_mask(key, hidden))
        zeros = self.hidden_state(hidden)
        if isinstance(self.input.queue, queues.Scheduled):  # every step's delivery at once, then the neurons
            v_jumps, i_jumps, dropped = self.input.scheduled(spikes, times)
            _, (outputs, counts) = time_scan(self.remat_chunk, lambda c, x: neurons_step(*c, *x), zeros,
                                             (v_jumps, i_jumps))
        else:
            def step(carry, xs):
                state, neurons_state = carry
                now, fire, t = xs
                state, v_jump, i_jump = self.input.deliver(state, now)
                state = self.input.send(state, now, fire > 0, t)
                neurons_state, out = neurons_step(*neurons_state, v_jump, i_jump)
                return (state, neurons_state), out

            (state, _), (outputs, counts) = time_scan(self.remat_chunk, step, (self.input.init(), zeros),
                                                      (steps, spikes, times))
            dropped = state.dropped.sum()
        # synaptic operations: every input event reaches `hidden` synapses, every hidden spike `classes`
        synops = (spikes > 0).sum() * hidden + counts.sum() * self.w_out.shape[0]
        return readout_logits(self.readout, outputs), {"spikes": counts.sum(), "dropped": dropped, "synops": synops}


# -- pretrained variants (zoo.list_models("delayed_ffn.*")); each with its no-delay ablation -----------------
register(PretrainedEntry(
    "delayed_ffn.delay_task", ("model=delayed_ffn", "dataset=delay_task"),
    "Delayed LIF network (16 hidden) on the generated delay-critical task: two channels whose classes differ "
    "only in the interval between their spikes."), with_ablation=True)
register(PretrainedEntry(
    "delayed_ffn.nmnist",
    ("model=delayed_ffn", "dataset=nmnist", "dataset.root=../shared/data", "model.hidden=128", "max_delay=8",
     "queue=scheduled", "queue.capacity=2048", "trainer.epochs=30", "trainer.batch_size=32", "trainer.val_fraction=0.1",
     "augment=shift", "trainer.augment.max_shift=1", "optim.cosine_decay=true"),
    "Delayed LIF network (17x17x2 inputs, 128 hidden) trained on the 1,000 real N-MNIST training recordings."),
    with_ablation=True)
register(PretrainedEntry(
    "delayed_ffn.hots_letters",
    ("model=delayed_ffn", "dataset=hots_letters", "dataset.root=../shared/data", "model.hidden=64",
     "queue=delay_line", "max_delay=8", "trainer.epochs=60", "trainer.batch_size=8", "trainer.val_fraction=0"),
    "Delayed LIF network (16x16x2 inputs, 64 hidden) trained few-shot on the HOTS letters: one recording per "
    "character (36 classes), all of them trained on (no validation split: holding one out would remove its "
    "class); the 40 test recordings measure it."),
    with_ablation=True)
