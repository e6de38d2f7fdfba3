"""Config groups: optimisers, devices, multirun sweeps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import queues
from zoo.data import DelayTask
from zoo.models import DelayedFeedForward
from zoo.optim import DelayAwareOptimizer
from zoo.trainer import SurrogateTrainer

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_lr_delays_zero_freezes_the_delays_only(name):
    data = DelayTask(examples=128, noise_channels=2).load()
    model = DelayedFeedForward(4, 4, 2, queue=queues.FIFORing(capacity=2, max_delay=64.0), key=jax.random.PRNGKey(0))
    trainer = SurrogateTrainer(epochs=1, batch_size=32, optim=DelayAwareOptimizer(name=name, lr_delays=0.0,
                                                                                  clip_norm=1.0))
    trained, _ = trainer.fit(model, data, log=lambda _: None)
    np.testing.assert_array_equal(trained.input.delays, model.input.delays)
    assert not np.array_equal(trained.input.weight, model.input.weight)


def test_adamw_decays_the_weights_not_the_delays():
    import equinox as eqx
    model = DelayedFeedForward(4, 4, 2, key=jax.random.PRNGKey(0))
    params = eqx.filter(model, eqx.is_array)
    grads = jax.tree_util.tree_map(jax.numpy.zeros_like, params)  # no gradient: only the decay can move them
    opt = DelayAwareOptimizer(name="adamw", lr=0.1, lr_delays=1.0, weight_decay=0.5).build(model)
    updates, _ = opt.update(grads, opt.init(params), params)
    np.testing.assert_array_equal(updates.input.delays, 0.0)
    np.testing.assert_allclose(updates.input.weight, -0.1 * 0.5 * model.input.weight, rtol=1e-6)


def test_bad_optimizer_settings():
    with pytest.raises(ValueError, match="unknown name 'lion'; choose from adam, adamw, sgd"):
        DelayAwareOptimizer(name="lion")
    with pytest.raises(ValueError, match="learning rates must be >= 0"):
        DelayAwareOptimizer(lr=-1.0)
    with pytest.raises(ValueError, match="`weight_decay` must be >= 0 and needs name=adamw"):
        DelayAwareOptimizer(name="adam", weight_decay=1e-4)
    with pytest.raises(ValueError, match="`weight_decay` must be >= 0"):
        DelayAwareOptimizer(name="adamw", weight_decay=-1.0)
    model = DelayedFeedForward(4, 4, 2, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="cosine_decay needs the number of updates"):
        DelayAwareOptimizer(cosine_decay=True).build(model)


def test_cosine_decay_brings_both_rates_to_zero():
    import equinox as eqx
    model = DelayedFeedForward(4, 4, 2, key=jax.random.PRNGKey(0))
    params = eqx.filter(model, eqx.is_array)
    grads = jax.tree_util.tree_map(lambda x: jax.numpy.ones_like(x), params)
    opt = DelayAwareOptimizer(name="sgd", lr=0.1, lr_delays=1.0, cosine_decay=True).build(model, total_steps=10)
    state, sizes = opt.init(params), []
    for _ in range(11):
        updates, state = opt.update(grads, state, params)
        sizes.append((float(abs(updates.input.weight).max()), float(abs(updates.input.delays).max())))
    assert sizes[0] == pytest.approx((0.1, 1.0)) and sizes[5] == pytest.approx((0.05, 0.5))
    assert sizes[10] == (0.0, 0.0)


@pytest.mark.parametrize("cosine_decay", [False, True])
def test_warmup_raises_both_rates_linearly_from_zero(cosine_decay):
    """``warmup_fraction=0.3`` of 10 updates: both rates rise over 3 updates from 0 (to 1/3 and 2/3 of their
    value), reach it at the 4th, then stay there or follow the cosine over the rest of the 10."""
    import equinox as eqx
    model = DelayedFeedForward(4, 4, 2, key=jax.random.PRNGKey(0))
    params = eqx.filter(model, eqx.is_array)
    grads = jax.tree_util.tree_map(lambda x: jax.numpy.ones_like(x), params)
    opt = DelayAwareOptimizer(name="sgd", lr=0.1, lr_delays=1.0, cosine_decay=cosine_decay,
                              warmup_fraction=0.3).build(model, total_steps=10)
    state, sizes = opt.init(params), []
    for _ in range(11):
        updates, state = opt.update(grads, state, params)
        sizes.append((float(abs(updates.input.weight).max()), float(abs(updates.input.delays).max())))
    for step, fraction in enumerate([0.0, 1 / 3, 2 / 3, 1.0]):
        assert sizes[step] == pytest.approx((0.1 * fraction, fraction)), step
    if cosine_decay:  # the cosine spans the 7 updates after the warmup and ends at 0
        assert sizes[3] > sizes[6] > sizes[9] > (0.0, 0.0) and sizes[10] == (0.0, 0.0)
    else:
        assert sizes[4:] == [pytest.approx((0.1, 1.0))] * 7


def test_bad_warmup_settings():
    model = DelayedFeedForward(4, 4, 2, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=r"`warmup_fraction` must lie in \[0, 1\), got 1.0"):
        DelayAwareOptimizer(warmup_fraction=1.0)
    with pytest.raises(ValueError, match=r"`warmup_fraction` must lie in \[0, 1\), got -0.1"):
        DelayAwareOptimizer(warmup_fraction=-0.1)
    with pytest.raises(ValueError, match="warmup_fraction needs the number of updates"):
        DelayAwareOptimizer(warmup_fraction=0.1).build(model)


def run(*args):
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)


def test_absent_device_is_an_error_not_a_silent_fallback(tmp_path):
    proc = run("device=gpu", "trainer.epochs=1", f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0 and "device=gpu: no gpu backend on this machine" in proc.stderr


def test_multirun_sweep(tmp_path):
    proc = run("-m", "seed=0,1", "trainer.epochs=1", "dataset.examples=256", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = sorted(p for p in tmp_path.iterdir() if p.is_dir() and (p / "metrics.json").is_file())
    assert len(runs) == 2 and all((p / ".hydra" / "config.yaml").is_file() for p in runs)


def test_conv_model_on_a_dataset_without_frames_is_a_clear_error(tmp_path):
    proc = run("model=delayed_conv", "trainer.epochs=1", f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0 and "DelayedConv needs event frames; this dataset has none" in proc.stderr


def test_config_groups_compose_onto_their_constructors():
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from zoo.data import Compose, Identity, OneOf, RandomAffine, RandomDrop, RandomDropArea, RandomDropTime, RandomShift
    from zoo.losses import CrossEntropy, FirstSpikeCrossEntropy, MapRateFloor
    from zoo.trainer import EventPropTrainer

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        default = compose(config_name="config")
        chosen = compose(config_name="config", overrides=[
            "trainer=eventprop", "loss=first_spike", "trainer.loss.alpha=0.1", "augment=shift",
            "model=lif_network", "distributed=manual", "distributed.coordinator_address=127.0.0.1:1234",
            "distributed.num_processes=2", "distributed.process_id=1"])
    trainer = instantiate(default.trainer)
    assert trainer.loss == CrossEntropy() and trainer.augment is None and not default.distributed
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        smoothed = compose(config_name="config", overrides=["trainer.loss.label_smoothing=0.1"])
    assert instantiate(smoothed.trainer).loss == CrossEntropy(label_smoothing=0.1)
    trainer = instantiate(chosen.trainer)
    assert isinstance(trainer, EventPropTrainer) and trainer.gradient == "eventprop"
    assert trainer.loss == FirstSpikeCrossEntropy(alpha=0.1) and trainer.augment == RandomShift(2)
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        affine = compose(config_name="config", overrides=["augment=affine", "trainer.augment.augments.0.max_rotation=20"])
    assert instantiate(affine.trainer).augment == Compose((RandomAffine(20, 0.1), RandomShift(1)))
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        drop = compose(config_name="config", overrides=["augment=shift_drop", "trainer.augment.augments.1.max_drop=0.2"])
    assert instantiate(drop.trainer).augment == Compose((RandomShift(1), RandomDrop(0.2)))
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        eventdrop = compose(config_name="config", overrides=["augment=eventdrop",
                                                             "trainer.augment.augments.1.augments.3.max_fraction=0.2"])
    assert instantiate(eventdrop.trainer).augment == Compose((RandomShift(1), OneOf((
        Identity(), RandomDrop(0.4), RandomDropTime(0.2), RandomDropArea(0.2)))))
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        floor = compose(config_name="config", overrides=["model=delayed_conv", "regulariser=map_rate_floor",
                                                         "trainer.regulariser.floor=0.002"])
    assert instantiate(floor.trainer).regulariser == MapRateFloor(strength=0.1, floor=0.002)
    assert default.trainer.regulariser is None
    assert chosen.distributed._target_ == "jax.distributed.initialize" and chosen.distributed.process_id == 1
    assert chosen.model.max_delay == chosen.max_delay  # one max delay for the model and its queue


def test_dropout_trains_reproducibly_and_validates_without_it():
    """Dropout's masks come from the run's seed and epoch: the same seed trains the same model, and
    without dropout another; validation runs the model without a key, so without dropout."""
    import equinox as eqx

    data = DelayTask(examples=256, noise_channels=2).load()
    queue = queues.FIFORing(capacity=2, max_delay=64.0)
    make = lambda p: DelayedFeedForward(data.channels, 16, 2, queue=queue, key=jax.random.PRNGKey(0), dropout=p)  # noqa: E731
    trainer = SurrogateTrainer(epochs=2, batch_size=32)
    runs = [trainer.fit(make(p), data, seed=seed, log=lambda _: None) for p, seed in ((0.5, 0), (0.5, 0), (0.0, 0))]
    leaves = [jax.tree_util.tree_leaves(eqx.filter(m, eqx.is_array)) for m, _ in runs]
    for a, b in zip(leaves[0], leaves[1]):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(leaves[0], leaves[2]))
    model, metrics = runs[0]
    val, _ = data.split(trainer.val_fraction, 0)
    logits, _ = jax.vmap(model)(val.spikes, val.times)
    assert metrics["val_accuracy"] == pytest.approx(float((logits.argmax(-1) == val.labels).mean()))

    from hydra import compose, initialize_config_dir
    from zoo.build import build_model
    for name in ("delayed_ffn", "delayed_rnn", "delayed_conv"):
        with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[f"model={name}"])
        assert cfg.model.dropout == 0.0  # off unless asked for
        cfg.model.dropout = 0.2
        built = build_model(cfg.model, channels=72, classes=3, frame=(2, 6, 6), queue_cfg=cfg.queue)
        assert built.dropout == 0.2


def test_trainer_says_when_validation_holds_classes_it_never_trains_on():
    """One example per class (the HOTS letters): the random validation split takes whole classes away."""
    from zoo.data.delay_task import SpikeDataset

    base = DelayTask(examples=40).load()
    singletons = SpikeDataset(base.spikes, np.arange(40, dtype=np.int32), 40, base.times)
    model = DelayedFeedForward(2, 4, 40, queue=queues.FIFORing(capacity=2, max_delay=64.0), key=jax.random.PRNGKey(0))
    messages = []
    _, metrics = SurrogateTrainer(epochs=1, batch_size=8, val_fraction=0.1).fit(model, singletons, log=messages.append)
    val, _ = singletons.split(0.1, 0)
    assert metrics["val_classes_never_trained"] == sorted(val.labels.tolist()) and len(val) == 4
    assert any("validation split holds every example of classes" in m for m in messages)
    _, metrics = SurrogateTrainer(epochs=1, batch_size=32).fit(model, base, log=messages.append)  # two classes
    assert metrics["val_classes_never_trained"] == []


def test_trainer_says_once_when_the_network_falls_silent():
    """A network that never reaches its threshold sends the readout nothing: the trainer says so at the
    first silent epoch (not at every one), naming what was measured and what to change."""
    data = DelayTask(examples=64).load()
    silent = DelayedFeedForward(2, 4, 2, queue=queues.Scheduled(max_delay=64.0), key=jax.random.PRNGKey(0),
                                threshold=1e6)
    messages = []
    _, metrics = SurrogateTrainer(epochs=2, batch_size=16).fit(silent, data, log=messages.append)
    assert [h["hidden_spikes_per_example"] for h in metrics["history"]] == [0.0, 0.0]
    warnings = [m for m in messages if m.startswith("warning")]
    assert len(warnings) == 1 and warnings[0].startswith("warning: epoch 1: the hidden neurons spiked on none of "
                                                         "the validation recordings")
    assert "optim.warmup_fraction" in warnings[0]
    messages.clear()
    SurrogateTrainer(epochs=1, batch_size=16, val_fraction=0).fit(silent, data, log=messages.append)
    assert any("spiked on none of the training batches" in m for m in messages)


def test_trainer_without_validation_trains_on_every_example(tmp_path):
    """val_fraction=0: no validation split (one example per class can spare none); no metric pretends
    to be a validation accuracy, and checkpoints ranked by one say what is missing."""
    from zoo.checkpoint import Checkpoints
    from zoo.data.delay_task import SpikeDataset

    base = DelayTask(examples=40).load()
    singletons = SpikeDataset(base.spikes, np.arange(40, dtype=np.int32), 40, base.times)
    model = DelayedFeedForward(2, 4, 40, queue=queues.FIFORing(capacity=2, max_delay=64.0), key=jax.random.PRNGKey(0))
    messages = []
    _, metrics = SurrogateTrainer(epochs=2, batch_size=8, val_fraction=0).fit(model, singletons, log=messages.append)
    assert metrics["val_accuracy"] is None and metrics["val_classes_never_trained"] == []
    assert [h["val_accuracy"] for h in metrics["history"]] == [None, None]
    assert all(h["hidden_spikes_per_example"] > 0 for h in metrics["history"])  # of the training batches
    assert not any("warning" in m for m in messages)

    assert SurrogateTrainer(val_fraction=0).selection_metric == "train_accuracy"  # what train.py ranks by
    ckpt = Checkpoints(str(tmp_path / "by_val"))
    with pytest.raises(ValueError, match="ranked by 'val_accuracy', which epoch 1 did not measure.*train_accuracy"):
        SurrogateTrainer(epochs=1, batch_size=8, val_fraction=0).fit(model, singletons, checkpoints=ckpt,
                                                                     log=lambda _: None)
    ckpt.close()
    with pytest.raises(ValueError, match=r"`val_fraction` 0.01 of 40 examples holds none.*val_fraction=0"):
        SurrogateTrainer(epochs=1, batch_size=8, val_fraction=0.01).fit(model, singletons, log=lambda _: None)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\)"):
        SurrogateTrainer(val_fraction=-0.1)
