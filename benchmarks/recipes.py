"""What the recipe benchmarks share: composing a train.py recipe, the no-delay ablation, saving results."""

from __future__ import annotations

import json
import os
import sys

from hydra import compose, initialize_config_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from train import build_model  # noqa: E402

__all__ = ["ABLATIONS", "ROOT", "build_model", "compose_recipe", "save"]

# every delay fixed at zero, everything else equal
ABLATIONS = {"delays": [], "no_delays": ["model.init_delay=0", "optim.lr_delays=0"]}


def compose_recipe(overrides: list[str]):
    """The config `python train.py <overrides>` would run."""
    with initialize_config_dir(config_dir=os.path.join(ROOT, "configs"), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def save(results: dict, path: str) -> None:
    """Write ``results`` as JSON atomically (temporary file, then rename): called after every run, so an
    interrupted benchmark keeps what it measured and never leaves a half-written file."""
    with open(path + ".tmp", "w") as f:
        json.dump(results, f, indent=2)
    os.replace(path + ".tmp", path)
