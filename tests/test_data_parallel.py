"""Data-parallel training over 4 (forced) CPU devices gives the single-device result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import json, numpy as np, jax, equinox as eqx
import queues
from zoo.data import DelayTask
from zoo.models import DelayedFeedForward
from zoo.trainer import SurrogateTrainer
data = DelayTask(examples=512, noise_channels=2).load()
# with dropout, so each example's mask must be the same whichever device holds it
model = DelayedFeedForward(4, 8, 2, queue=queues.FIFORing(capacity=2, max_delay=64.0), key=jax.random.PRNGKey(0),
                           dropout=0.25)
try:
    SurrogateTrainer(epochs=1, batch_size=30).fit(model, data, log=lambda _: None)
    bad_batch = None
except ValueError as e:
    bad_batch = str(e)
model, metrics = SurrogateTrainer(epochs=3, batch_size=32).fit(model, data, log=lambda _: None)
params = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))
print(json.dumps({"devices": len(jax.devices()), "placed_on": len(params[0].sharding.device_set),
                  "leaves": [np.asarray(x).ravel().tolist() for x in params], "bad_batch": bad_batch,
                  "val": [h["val_accuracy"] for h in metrics["history"]]}))
"""


def run(devices: int) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_four_devices_match_one():
    one, four = run(1), run(4)
    assert one["devices"] == 1 and four["devices"] == 4 and four["placed_on"] == 4
    for a, b in zip(one["leaves"], four["leaves"]):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)  # same maths; summation order may differ
    assert one["val"] == four["val"]
    assert one["bad_batch"] is None  # 30 is fine on one device
    assert "`batch_size` 30 must be a multiple of the 4 devices" in four["bad_batch"]


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(run_dir: Path, extra: list[str], devices: int) -> subprocess.Popen:
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    args = ["trainer.epochs=2", "trainer.batch_size=32", "dataset.examples=320", "model.hidden=8", "model.dropout=0.25",
            f"hydra.run.dir={run_dir}", *extra]
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def weights(run_dir: Path) -> list[np.ndarray]:
    import equinox as eqx
    import jax
    import queues
    from zoo.models import DelayedFeedForward
    like = DelayedFeedForward(2, 8, 2, queue=queues.FIFORing(capacity=2, max_delay=64.0), key=jax.random.PRNGKey(0))
    model = eqx.tree_deserialise_leaves(run_dir / "model.eqx", like)
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))]


def test_two_processes_train_like_one_process_with_their_devices(tmp_path):
    """Multi-host through jax.distributed.initialize: 2 processes x 2 CPU devices on localhost (gloo
    collectives) give the weights of 1 process with 4 devices, and only process 0 writes outputs."""
    single = train(tmp_path / "single", [], devices=4)
    assert single.wait(timeout=600) == 0, single.stdout.read()
    port = free_port()
    shared = tmp_path / "multi"
    procs = [train(shared, ["distributed=manual", f"distributed.coordinator_address=127.0.0.1:{port}",
                            "distributed.num_processes=2", f"distributed.process_id={i}"], devices=2)
             for i in range(2)]
    try:
        outputs = [p.communicate(timeout=420)[0] for p in procs]
    finally:
        for p in procs:  # never leave a hung process behind
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert "4 cpu device(s) in 2 process(es)" in outputs[0]  # one cluster, not two independent runs
    assert "final validation accuracy" in outputs[0] and "final validation accuracy" not in outputs[1]
    for a, b in zip(weights(tmp_path / "single"), weights(shared)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    history = lambda d: [h["val_accuracy"] for h in json.loads((d / "metrics.json").read_text())["history"]]  # noqa: E731
    assert history(shared) == history(tmp_path / "single")
