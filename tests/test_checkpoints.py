"""Orbax checkpoints: resume after SIGKILL gives the uninterrupted result; best-k; NaN stop; mismatches."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pytest

from zoo.checkpoint import Checkpoints
from zoo.data import DelayTask
from zoo.models import DelayedFeedForward
from zoo.trainer import SurrogateTrainer
import queues

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["trainer.epochs=6", "dataset.examples=1536", "model.hidden=12", "model.dropout=0.25"]  # its keys resume too


def train(*args, check=True):
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, check=check)


def test_resume_after_sigkill_mid_epoch_equals_uninterrupted_run(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    train(*ARGS, f"hydra.run.dir={whole}")

    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *ARGS, f"hydra.run.dir={killed}"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = killed / "checkpoints" / "last" / "1"
    deadline = time.time() + 600
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # during epoch 2 (or while it saves): no chance to clean up
    assert proc.wait() == -signal.SIGKILL
    assert first.exists() and not (killed / "model.eqx").exists()  # it died before the end

    resumed = train(*ARGS, "resume=true", f"hydra.run.dir={killed}")
    assert '"resumed_from_epoch"' in resumed.stdout
    assert (killed / "model.eqx").read_bytes() == (whole / "model.eqx").read_bytes()
    history = json.loads((killed / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == list(range(1, 7))


def test_resume_without_checkpoint_is_an_error(tmp_path):
    proc = train("trainer.epochs=1", "resume=true", f"hydra.run.dir={tmp_path}", check=False)
    assert proc.returncode != 0 and "no checkpoint to resume from" in proc.stderr


def small_setup(hidden=6, dropout=0.0):
    data = DelayTask(examples=256, noise_channels=2).load()
    model = DelayedFeedForward(data.channels, hidden, 2, queue=queues.FIFORing(capacity=2, max_delay=64.0),
                               key=jax.random.PRNGKey(0), dropout=dropout)
    return data, model


def test_best_k_kept_by_validation_accuracy_and_mismatch_errors(tmp_path):
    data, model = small_setup()
    ckpt = Checkpoints(str(tmp_path), keep_best=2)
    _, metrics = SurrogateTrainer(epochs=5, batch_size=32).fit(model, data, checkpoints=ckpt, log=lambda _: None)
    accs = {h["epoch"]: h["val_accuracy"] for h in metrics["history"]}
    kept = sorted(int(p.name) for p in (tmp_path / "best").iterdir() if p.name.isdigit())
    best_two = sorted(sorted(accs, key=lambda e: (accs[e], e))[-2:])
    assert len(kept) == 2 and sorted(accs[e] for e in kept) == sorted(accs[e] for e in best_two)
    assert [int(p.name) for p in (tmp_path / "last").iterdir() if p.name.isdigit()] == [5]

    _, other = small_setup(hidden=7)  # another configuration: shapes differ
    opt = SurrogateTrainer().optimizer(other)
    like = (eqx.filter(other, eqx.is_array), opt.init(eqx.filter(other, eqx.is_array)))
    with pytest.raises(ValueError, match=r"leaf .* has shape \(7, 4\), the model expects|has shape"):
        ckpt.restore(like)
    ckpt.close()


@pytest.mark.parametrize("scan_epoch", [True, False])
def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, scan_epoch):
    data, model = small_setup()
    ckpt = Checkpoints(str(tmp_path))
    SurrogateTrainer(epochs=2, batch_size=32).fit(model, data, checkpoints=ckpt, log=lambda _: None)
    poisoned = eqx.tree_at(lambda m: m.w_out, model, model.w_out * np.nan)
    with pytest.raises(FloatingPointError, match=f"loss became nan in epoch 1.*{tmp_path}/last/2"):
        SurrogateTrainer(epochs=1, batch_size=32, scan_epoch=scan_epoch).fit(poisoned, data, checkpoints=ckpt,
                                                                            log=lambda _: None)
    assert ckpt.latest_epoch() == 2  # untouched
    ckpt.close()


def test_an_epoch_of_compiled_steps_equals_one_compiled_scan():
    """``scan_epoch=False`` (one compiled step per batch) trains the same model as the default scan, with
    the same dropout masks."""
    data, model = small_setup(dropout=0.25)
    runs = [SurrogateTrainer(epochs=2, batch_size=32, scan_epoch=scan).fit(model, data, log=lambda _: None)
            for scan in (True, False)]
    for a, b in zip(*(jax.tree_util.tree_leaves(eqx.filter(m, eqx.is_array)) for m, _ in runs)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    (scanned, stepped) = ([row["loss"] for row in metrics["history"]] for _, metrics in runs)
    np.testing.assert_allclose(stepped, scanned, rtol=1e-5)
    assert [r["dropped_spikes"] for r in runs[0][1]["history"]] == [r["dropped_spikes"] for r in runs[1][1]["history"]]
