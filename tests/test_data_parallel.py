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
model = DelayedFeedForward(4, 8, 2, queue=queues.FIFORing(capacity=2, max_delay=64.0), key=jax.random.PRNGKey(0))
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
    assert "`batch_size` 30 must be a multiple of the 4 local devices" in four["bad_batch"]
