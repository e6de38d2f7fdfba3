"""Training loops: surrogate-gradient BPTT through the queues, and EventProp, with optax."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from .checkpoint import Checkpoints
from .data import SpikeDataset
from .losses import CrossEntropy
from .models import label_delays, project_delays
from .optim import DelayAwareOptimizer


@dataclass(frozen=True)
class SurrogateTrainer:
    """BPTT with surrogate gradients on cross-entropy, optimised by ``optim`` (delays at their own rate)."""

    epochs: int = 30
    batch_size: int = 64
    optim: DelayAwareOptimizer = field(default_factory=DelayAwareOptimizer)
    val_fraction: float = 0.2  # 0: no validation split, train on every example (one-shot data)
    data_parallel: bool = True  # split every batch across all devices (jax.sharding)
    augment: Callable[[SpikeDataset, np.random.Generator], SpikeDataset] | None = None  # e.g. zoo.data.RandomShift
    loss: Callable[[jax.Array, jax.Array], jax.Array] = field(default_factory=CrossEntropy)  # (logits, labels)
    regulariser: Callable[[dict], jax.Array] | None = None  # of the batch's stats, e.g. SpikeCountRegulariser
    # one compiled scan over the epoch's batches (few dispatches: pays for small models), or one compiled
    # step per batch: XLA:CPU runs convolutions inside a loop several times slower (model=delayed_conv)
    scan_epoch: bool = True

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"SurrogateTrainer: epochs and batch_size must be >= 1, got {self}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"SurrogateTrainer: `val_fraction` must lie in [0, 1), got {self.val_fraction}")

    gradient = "surrogate"  # how models with a choice (`ExactLIFNetwork.with_gradient`) are differentiated

    @property
    def selection_metric(self) -> str:
        """The metric that ranks this run's best checkpoints: validation accuracy, or without a validation
        split (``val_fraction=0``) training accuracy."""
        return "val_accuracy" if self.val_fraction else "train_accuracy"

    def optimizer(self, model, batches: int | None = None) -> optax.GradientTransformation:
        return self.optim.build(model, total_steps=None if batches is None else self.epochs * batches)

    def prepare(self, model):
        """``model`` set to this trainer's gradient method, if it offers a choice."""
        if hasattr(model, "with_gradient"):
            return model.with_gradient(self.gradient)
        if self.gradient != "surrogate":
            raise ValueError(f"{type(self).__name__}: {type(model).__name__} has no {self.gradient} gradient; use a "
                             "model simulated with exact spike times (model=lif_network)")
        return model

    def fit(self, model, data: SpikeDataset, seed: int = 0, log=print, checkpoints: Checkpoints | None = None,
            resume: bool = False, logger=None, progress: bool = False) -> tuple[Any, dict[str, Any]]:
        """Train on a split of ``data``; return the model and metrics (final validation accuracy).

        With ``val_fraction=0`` every example trains and there is no validation: ``val_accuracy`` is
        None in the metrics and in every epoch's row, whose spike rate is then the training batches'.

        With ``checkpoints``, the state after every epoch is saved (model, optimiser, history, and the
        RNG that orders the data); ``resume=True`` continues from the latest one and, on the same
        machine, ends with exactly the parameters of an uninterrupted run. A non-finite loss stops the
        run before anything is saved, so the last good checkpoint stays intact.
        """
        model = self.prepare(model)
        val, train = data.split(self.val_fraction, seed)
        if self.val_fraction and not len(val):
            raise ValueError(f"SurrogateTrainer: `val_fraction` {self.val_fraction} of {len(data)} examples holds "
                             "none; raise it, or set val_fraction=0 to train without a validation split")
        # a class whose every example went to validation cannot be learned: say so, since its validation
        # accuracy is then 0 by construction (one recording per class, as the HOTS letters have)
        unseen = sorted(set(np.unique(val.labels).tolist()) - set(np.unique(train.labels).tolist()))
        if unseen:
            log(f"warning: the validation split holds every example of classes {unseen}: the model never trains "
                f"on them, so validation accuracy underrates it; measure on a test split instead")
        batches = len(train) // self.batch_size
        if batches < 1:
            raise ValueError(f"SurrogateTrainer: {len(train)} training examples are fewer than one batch of "
                             f"{self.batch_size}")
        opt = self.optimizer(model, batches)
        opt_state = opt.init(eqx.filter(model, eqx.is_array))

        def loss_fn(model, spikes, times, labels, key):
            keys = jax.random.split(key, labels.shape[0])  # one per example: its dropout mask, if any
            logits, stats = jax.vmap(lambda s, t, k: model(s, t, key=k))(spikes, times, keys)
            loss = self.loss(logits, labels)
            if self.regulariser is not None:
                loss = loss + self.regulariser(stats)
            return loss, (logits.argmax(-1) == labels, stats)

        def step(static, carry, batch):
            params, opt_state, healthy = carry
            (loss, (correct, stats)), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(
                eqx.combine(params, static), *batch)
            updates, new_opt_state = opt.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            new_params = project_delays(new_params)
            # once the loss or a gradient is not finite, stop updating: the epoch ends with the
            # last good parameters and the run stops after it (see fit)
            finite = jnp.isfinite(loss) & jnp.all(jnp.array([jnp.isfinite(g).all() for g in
                                                             jax.tree_util.tree_leaves(grads)]))
            healthy = healthy & finite
            keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(healthy, a, b), new, old)  # noqa: E731
            return (keep(new_params, params), keep(new_opt_state, opt_state), healthy), (
                loss, correct.mean(), stats["dropped"].sum(), stats["spikes"].mean())

        @eqx.filter_jit
        def scanned_epoch(static, params, opt_state, spikes, times, labels, keys):
            return jax.lax.scan(lambda carry, batch: step(static, carry, batch), (params, opt_state, jnp.bool_(True)),
                                (spikes, times, labels, keys))

        stepped = eqx.filter_jit(step)

        def stepped_epoch(static, params, opt_state, spikes, times, labels, keys):
            carry, rows = (params, opt_state, jnp.bool_(True)), []
            for i in range(labels.shape[0]):
                carry, row = stepped(static, carry, (spikes[i], None if times is None else times[i], labels[i],
                                                     keys[i]))
                rows.append(row)
            return carry, jax.tree_util.tree_map(lambda *r: jnp.stack(r), *rows)

        def epoch(model, opt_state, spikes, times, labels, keys):
            params, static = eqx.partition(model, eqx.is_array)
            (params, opt_state, healthy), (losses, accs, dropped, hidden_spikes) = (
                scanned_epoch if self.scan_epoch else stepped_epoch)(static, params, opt_state, spikes, times, labels,
                                                                     keys)
            loss = jnp.where(healthy, losses.mean(), jnp.nan)
            return eqx.combine(params, static), opt_state, loss, accs.mean(), dropped.sum(), hidden_spikes.mean()

        @eqx.filter_jit
        def evaluate(model, spikes, times, labels):
            logits, stats = jax.vmap(model)(spikes, times)
            return (logits.argmax(-1) == labels).mean(), stats["spikes"].mean()

        place_batches, place_val, place_model = self._placement(len(val))
        model = place_model(model)
        opt_state = place_model(opt_state)
        rng = np.random.default_rng(seed)
        history, first_epoch = [], 0
        if resume:
            if checkpoints is None or checkpoints.latest_epoch() is None:
                where = checkpoints.directory if checkpoints else "(no checkpoint directory)"
                raise FileNotFoundError(f"resume: no checkpoint to resume from in {where}")
            params, static = eqx.partition(model, eqx.is_array)
            (params, opt_state), meta = checkpoints.restore((params, opt_state))
            model, opt_state = place_model(eqx.combine(params, static)), place_model(opt_state)
            first_epoch, history = meta["epoch"], meta["history"]
            rng.bit_generator.state = meta["rng"]
            log(json.dumps({"resumed_from_epoch": first_epoch, "checkpoint": checkpoints.directory}))
        bar = tqdm(total=self.epochs, initial=first_epoch, desc="train", unit="epoch", disable=not progress)
        for e in range(first_epoch, self.epochs):
            start = time.perf_counter()
            order = rng.permutation(len(train))[: batches * self.batch_size]
            batch = train.subset(order.reshape(-1))
            if self.augment:  # drawn from the checkpointed RNG, so a resumed run sees the same epochs
                batch = self.augment(batch, rng)
            shape = (batches, self.batch_size)
            # a key per batch for the models' randomness (dropout), from the seed and the epoch alone, so a
            # resumed run draws the same; models without randomness ignore it
            keys = place_model(jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), e), batches))
            model, opt_state, loss, acc, dropped, train_spikes = epoch(model, opt_state, *place_batches(
                batch.spikes.reshape(*shape, *batch.spikes.shape[1:]),
                None if batch.times is None else batch.times.reshape(*shape, *batch.times.shape[1:]),
                batch.labels.reshape(shape)), keys)
            if not np.isfinite(float(loss)):
                last = checkpoints.latest_epoch() if checkpoints else None
                raise FloatingPointError(
                    f"training loss became {float(loss)} in epoch {e + 1}; run stopped. "
                    + (f"Last good checkpoint: {checkpoints.directory}/last/{last}" if last is not None
                       else "No checkpoint was written."))
            if len(val):
                val_acc, spikes = map(float, evaluate(model, *place_val(val.spikes, val.times, val.labels)))
            else:
                val_acc, spikes = None, float(train_spikes)
            row = {"epoch": e + 1, "loss": float(loss), "train_accuracy": float(acc), "val_accuracy": val_acc,
                   "hidden_spikes_per_example": spikes, "dropped_spikes": int(dropped),
                   "seconds": time.perf_counter() - start}
            history.append(row)
            log(json.dumps(row))
            if spikes == 0 and not any(h["hidden_spikes_per_example"] == 0 for h in history[:-1]):
                log(silence_warning(e + 1, "validation recordings" if len(val) else "training batches"))
            shown = row["val_accuracy"] if len(val) else row["train_accuracy"]
            bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{shown:.3f}",
                            spikes=f"{row['hidden_spikes_per_example']:.1f}", dropped=row["dropped_spikes"])
            bar.update()
            if logger is not None:
                logger.log(row, step=e + 1, delays=all_delays(model))
            if checkpoints is not None:
                checkpoints.save(e + 1, (eqx.filter(model, eqx.is_array), opt_state),
                                 {"epoch": e + 1, "history": history, "rng": rng.bit_generator.state}, row)
        bar.close()
        return model, {"val_accuracy": history[-1]["val_accuracy"], "history": history,
                       "val_classes_never_trained": unseen}


    def _placement(self, val_size: int):
        """Functions that put batches, the validation set and the model on the devices.

        With ``data_parallel`` and several devices: a 1-D mesh over every device of every process
        (`jax.devices()`; one process unless `jax.distributed.initialize` was called, see train.py),
        batches split along the example axis, the model and optimiser state replicated; jit then
        partitions each step (GSPMD) and inserts the gradient all-reduce. Every process holds the same
        data in the same (seeded) order and hands its devices only the shards they own, so several
        hosts train one model exactly as one host with as many devices would. Otherwise everything
        stays on the default device.
        """
        devices = jax.devices()
        if jax.process_count() > 1 and not self.data_parallel:
            raise ValueError(f"SurrogateTrainer: {jax.process_count()} processes were started "
                             "(jax.distributed.initialize) but data_parallel=false")
        if not self.data_parallel or len(devices) == 1:
            put = lambda *xs: tuple(None if x is None else jnp.asarray(x) for x in xs)  # noqa: E731
            return put, put, lambda tree: tree
        if self.batch_size % len(devices):
            raise ValueError(f"SurrogateTrainer: `batch_size` {self.batch_size} must be a multiple of the "
                             f"{len(devices)} devices for data-parallel training (or data_parallel=false)")
        mesh = jax.sharding.Mesh(np.array(devices), ("data",))
        spec = jax.sharding.PartitionSpec
        by_batch = jax.sharding.NamedSharding(mesh, spec(None, "data"))  # (batches, batch, ...)
        by_example = jax.sharding.NamedSharding(mesh, spec("data"))
        replicated = jax.sharding.NamedSharding(mesh, spec())
        val_sharding = by_example if val_size % len(devices) == 0 else replicated

        def global_array(x, sharding):
            x = np.asarray(x)  # the whole array, identical on every process: each keeps its own shards
            return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

        def place(sharding):
            return lambda *xs: tuple(None if x is None else global_array(x, sharding) for x in xs)

        def place_tree(tree):
            return jax.tree_util.tree_map(lambda x: global_array(x, replicated) if eqx.is_array(x) else x, tree)

        return place(by_batch), place(val_sharding), place_tree


@dataclass(frozen=True)
class EventPropTrainer(SurrogateTrainer):
    """The same training loop with exact EventProp gradients (`zoo.eventprop`): weights, delays and
    spike times differentiated through the adjoint system, memory O(spikes) instead of O(steps)."""

    gradient = "eventprop"


def silence_warning(epoch: int, measured_on: str) -> str:
    """What to tell a user whose network stopped spiking: said once, at the first silent epoch.

    With no hidden spike the readout sees nothing, so every prediction is the same class and the loss sits
    at ln(classes). Neurons whose spikes reach the next layer through `queues.Scheduled` get gradient only
    through those spikes (`Schedule.gain`), so once they are silent nothing wakes them: three folds of the
    README's conv runs went silent in their first epoch and stayed at chance through every later one."""
    return (f"warning: epoch {epoch}: the hidden neurons spiked on none of the {measured_on}, so the readout sees "
            "nothing and predicts one class. Neurons whose spikes are delivered by queue=scheduled get gradient "
            "only through those spikes, so silent ones may never learn again; restart with a lower optim.lr or "
            "with optim.warmup_fraction (e.g. 0.05), which keeps the first updates from silencing them")


def all_delays(model) -> np.ndarray:
    """Every learnable delay of ``model``, flattened (for histograms)."""
    params = eqx.filter(model, eqx.is_array)
    labels = label_delays(params)
    leaves = [np.asarray(x).ravel() for x, label in zip(jax.tree_util.tree_leaves(params),
                                                       jax.tree_util.tree_leaves(labels)) if label == "delays"]
    return np.concatenate(leaves) if leaves else np.zeros(0)
