"""train.py and evaluate.py as a user runs them: real processes, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import jax
import jax.numpy as jnp
import numpy as np

import queues
from zoo.data import DelayTask
from zoo.models import DelayedFeedForward, swap_queues

ROOT = Path(__file__).resolve().parents[1]


def run(script, *args, check=True):
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, check=check)


def test_train_then_evaluate(tmp_path):
    run_dir = tmp_path / "run"
    proc = run("train.py", "trainer.epochs=3", "dataset.examples=512", f"hydra.run.dir={run_dir}")
    assert "final validation accuracy:" in proc.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["history"]) == 3 and 0 <= metrics["val_accuracy"] <= 1
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / "model.eqx").is_file()

    out = tmp_path / "eval.json"
    run("evaluate.py", f"run={run_dir}", "benchmark=true", "benchmark_queues=[fifo_ring,delay_line,scheduled]",
        "test_examples=128", "repeats=3", f"out={out}", f"hydra.run.dir={tmp_path / 'eval'}")
    result = json.loads(out.read_text())
    assert {"model", "dataset", "split", "accuracy", "num_samples", "benchmark"} <= result.keys()
    assert result["num_samples"] == 128 and 0 <= result["accuracy"] <= 1
    assert [r["queue"] for r in result["benchmark"]] == ["fifo_ring", "delay_line", "scheduled"]
    # the queues and scheduled delivery drop nothing here, so the same weights give the same accuracy
    assert all(r["accuracy"] == result["accuracy"] and r["dropped_spikes_per_sample"] == 0 for r in result["benchmark"])


def test_train_with_scheduled_delivery(tmp_path):
    proc = run("train.py", "queue=scheduled", "trainer.epochs=2", "dataset.examples=256", f"hydra.run.dir={tmp_path / 'r'}")
    assert "final validation accuracy:" in proc.stdout
    assert "_target_: queues.Scheduled" in (tmp_path / "r" / ".hydra" / "config.yaml").read_text()
    proc = run("train.py", "model=delayed_rnn", "queue=scheduled", f"hydra.run.dir={tmp_path / 'rnn'}", check=False)
    assert proc.returncode != 0 and "DelayedRecurrent: queue=scheduled needs every spike" in proc.stderr


def test_train_without_a_validation_split_ranks_checkpoints_by_training_accuracy(tmp_path, monkeypatch):
    """One-shot data (one recording per class): trainer.val_fraction=0 trains on every example."""
    monkeypatch.setenv("WANDB_CONSOLE", "off")  # the record then holds only what was logged, not stdout
    run_dir = tmp_path / "run"
    proc = run("train.py", "trainer.epochs=2", "dataset.examples=256", "trainer.val_fraction=0",
               "checkpoint.keep_best=1", "logger=wandb", f"hydra.run.dir={run_dir}")
    assert "no validation split (trainer.val_fraction=0): final training accuracy" in proc.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["val_accuracy"] is None and all(h["val_accuracy"] is None for h in metrics["history"])
    train_acc = {h["epoch"]: h["train_accuracy"] for h in metrics["history"]}
    kept = [int(p.name) for p in (run_dir / "checkpoints" / "best").iterdir() if p.name.isdigit()]
    assert len(kept) == 1 and train_acc[kept[0]] == max(train_acc.values())
    [record] = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    data = record.read_bytes()  # a metric that was not measured is not logged, not even as null
    assert b"train_accuracy" in data and b"val_accuracy" not in data


def test_config_typo_lists_the_choices(tmp_path):
    proc = run("train.py", "queue=fifo", f"hydra.run.dir={tmp_path}", check=False)
    assert proc.returncode != 0
    assert "Could not find 'queue/fifo'" in proc.stderr and "fifo_ring" in proc.stderr


def test_evaluate_missing_run_names_the_path(tmp_path):
    proc = run("evaluate.py", f"run={tmp_path / 'nope'}", f"hydra.run.dir={tmp_path / 'e'}", check=False)
    assert proc.returncode != 0 and "nope/.hydra/config.yaml not found" in proc.stderr


LOSSLESS = [queues.DelayLine(max_delay=64.0), queues.FIFORing(capacity=4, max_delay=64.0),
            queues.SortedArray(capacity=4, max_delay=64.0), queues.BinaryHeap(capacity=4, max_delay=64.0),
            queues.Scheduled(max_delay=64.0)]


def test_model_is_the_same_on_every_lossless_queue():
    data = DelayTask(examples=16, noise_channels=2).load()
    base = DelayedFeedForward(4, 8, 2, queue=LOSSLESS[0], key=jax.random.PRNGKey(0))
    x = (jnp.asarray(data.spikes), jnp.asarray(data.times))
    outs = [jax.vmap(swap_queues(base, lambda _, q=q: q))(*x)[0] for q in LOSSLESS]
    for out in outs[1:]:
        np.testing.assert_allclose(out, outs[0], rtol=1e-5, atol=1e-6)


SHARED = ROOT.parent / "shared" / "data"


def test_train_on_real_nmnist_recordings(tmp_path):
    """`dataset=nmnist dataset.root=...` end to end on a 20-recording subset of the real data."""
    if not (SHARED / "NMNIST" / "Train").is_dir():
        pytest.skip(f"real N-MNIST recordings not found under {SHARED} (a fresh clone has no ../shared/data)")
    import shutil
    for label in range(10):
        dst = tmp_path / "data" / "NMNIST" / "Train" / str(label)
        dst.mkdir(parents=True)
        for f in sorted((SHARED / "NMNIST" / "Train" / str(label)).glob("*.bin"))[:2]:
            shutil.copy(f, dst / f.name)
    run_dir = tmp_path / "run"
    proc = run("train.py", "dataset=nmnist", f"dataset.root={tmp_path / 'data'}", "dataset.raster.steps=10",
               "model.hidden=8", "queue=delay_line", "max_delay=4.0", "trainer.epochs=1", "trainer.batch_size=4",
               "trainer.val_fraction=0.2", f"hydra.run.dir={run_dir}")
    assert "final validation accuracy:" in proc.stdout
    assert list((tmp_path / "data" / ".cache").glob("rasters-*.npz"))  # preprocessed once, cached
    out = tmp_path / "eval.json"
    run("evaluate.py", f"run={run_dir}", "split=train", f"out={out}", f"hydra.run.dir={tmp_path / 'e'}")
    result = json.loads(out.read_text())
    assert result["split"] == "train" and result["num_samples"] == 20 and result["test_time_shift"] == 0
    # the same network averaged over its 9 one-pixel views: nine passes, each about as costly as the one
    shifted = tmp_path / "eval_shifted.json"
    proc = run("evaluate.py", f"run={run_dir}", "split=train", "test_time_shift=1", f"out={shifted}",
               f"hydra.run.dir={tmp_path / 'e1'}")
    averaged = json.loads(shifted.read_text())
    assert "(averaged over 9 shifted views)" in proc.stdout and averaged["test_time_shift"] == 1
    assert averaged["num_samples"] == 20 and 0 <= averaged["accuracy"] <= 1
    assert averaged["per_sample"]["synops"] > 5 * result["per_sample"]["synops"] > 0  # the views' sum, not their mean
    proc = run("evaluate.py", f"run={run_dir}", "split=train", "test_time_shift=1", "card=true",
               f"hydra.run.dir={tmp_path / 'e3'}", check=False)
    assert proc.returncode != 0 and "card=true records the network's own accuracy" in proc.stderr
    # the official test recordings are withheld: asking for them names the missing folder
    proc = run("evaluate.py", f"run={run_dir}", f"hydra.run.dir={tmp_path / 'e2'}", check=False)
    assert proc.returncode != 0 and "NMNIST/Test/<label>/<id>.bin" in proc.stderr


def test_missing_dataset_root_is_a_clear_error(tmp_path):
    proc = run("train.py", "dataset=nmnist", f"hydra.run.dir={tmp_path}", check=False)
    assert proc.returncode != 0 and "Missing mandatory value: dataset.root" in proc.stderr


def test_wandb_logger_offline(tmp_path):
    """logger=wandb records config, metrics and delay histograms offline (no network touched)."""
    run_dir = tmp_path / "run"
    proc = run("train.py", "trainer.epochs=2", "dataset.examples=256", "logger=wandb", f"hydra.run.dir={run_dir}")
    assert "final validation accuracy:" in proc.stdout
    [record] = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    data = record.read_bytes()  # protobuf records keep keys as plain strings
    for key in (b"val_accuracy", b"dropped_spikes", b"hidden_spikes_per_example", b"delays", b"histogram",
                b"max_delay", b"queue"):
        assert key in data, key
