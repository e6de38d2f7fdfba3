"""Pretrained models on disk and on the Hugging Face Hub: `Pretrained` (a `huggingface_hub.ModelHubMixin`).

A pretrained model is a directory (locally, or a Hub repository at a revision) holding

* ``model.safetensors``: every array leaf of the Equinox model, keyed by its path (``.weights[0]``);
* ``config.json``: what rebuilds the skeleton (the model's Hydra config with ``_target_``, the queue's,
  the input sizes), the training recipe and dataset, and the SHA-256 of the weights file;
* ``README.md``: the model card (`zoo.cards`), and its plots (the zoo's shipped models keep theirs
  in ``model_cards/<name>/``; `zoo.publish` uploads both folders together).

Loading checks the checksum before reading a byte of weights, and every leaf's name and shape against
the rebuilt skeleton: a corrupt file or a config mismatch is an error, never random weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np
from huggingface_hub import HfApi, ModelHubMixin, constants, snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
from safetensors.numpy import load_file, save_file

from .build import build_model

CONFIG_FILE, WEIGHTS_FILE, FORMAT = "config.json", "model.safetensors", "delay-snn-zoo/1"


class ChecksumError(ValueError):
    """The weights file is not the one its config describes (corrupt, truncated or replaced)."""


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def leaf_paths(model) -> dict[str, Any]:
    """The model's array leaves by their path (``jax.tree_util.keystr``), in tree order."""
    leaves = jax.tree_util.tree_flatten_with_path(eqx.filter(model, eqx.is_array))[0]
    return {jax.tree_util.keystr(path): leaf for path, leaf in leaves}


def fill(skeleton, arrays: dict[str, np.ndarray], source: str):
    """``skeleton`` with its array leaves replaced by ``arrays`` (by path); any missing, extra or
    misshapen leaf is an error naming it."""
    want = leaf_paths(skeleton)
    missing, extra = sorted(set(want) - set(arrays)), sorted(set(arrays) - set(want))
    if missing or extra:
        raise ValueError(f"{source}: the weights do not fit the config: missing leaves {missing}, unexpected "
                         f"leaves {extra}")
    for name, leaf in want.items():
        if arrays[name].shape != leaf.shape:
            raise ValueError(f"{source}: leaf {name} has shape {arrays[name].shape}, the model built from the config expects "
                             f"{leaf.shape}")
    params, static = eqx.partition(skeleton, eqx.is_array)
    treedef = jax.tree_util.tree_structure(params)
    new = [jax.numpy.asarray(arrays[name], dtype=leaf.dtype) for name, leaf in want.items()]
    return eqx.combine(jax.tree_util.tree_unflatten(treedef, new), static)


class Pretrained(ModelHubMixin, library_name="delay-snn-zoo",
                 tags=["spiking-neural-network", "delay-learning", "jax", "equinox", "neuromorphic"]):
    """A zoo model and the config that rebuilds it.

    ``config`` keys: ``name`` (zoo name), ``model`` (Hydra config with ``_target_``), ``queue`` (or
    None), ``inputs`` (``channels``, ``classes``, ``frame``), ``dataset`` (Hydra config), ``recipe``
    (the train.py command), ``variants`` (per-accelerator settings, `zoo.autotune`)."""

    def __init__(self, model, config: dict[str, Any]):
        for key in ("model", "inputs"):
            if key not in config:
                raise ValueError(f"Pretrained: config needs a {key!r} entry; got keys {sorted(config)}")
        self.model, self.config = model, config

    @classmethod
    def build(cls, config: dict[str, Any], seed: int = 0):
        """Fresh (untrained) weights for ``config``'s architecture."""
        inputs = config["inputs"]
        return build_model(config["model"], channels=inputs["channels"], classes=inputs["classes"],
                           frame=inputs.get("frame"), queue_cfg=config.get("queue"), seed=seed)

    # -- saving -------------------------------------------------------------------------------------
    def save_weights(self, directory: str | os.PathLike) -> None:
        """Write ``model.safetensors`` and ``config.json`` (with the weights' SHA-256) to ``directory``,
        each to a temporary file renamed when complete: a crash never leaves a half-written file."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        weights = directory / WEIGHTS_FILE
        tmp = weights.with_suffix(".tmp")
        save_file({k: np.asarray(v) for k, v in leaf_paths(self.model).items()}, str(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, weights)
        config = {**self.config, "format": FORMAT, "weights": {"file": WEIGHTS_FILE, "sha256": sha256(weights)}}
        tmp = directory / (CONFIG_FILE + ".tmp")
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True))
        os.replace(tmp, directory / CONFIG_FILE)

    def _save_pretrained(self, save_directory: Path) -> None:
        """`ModelHubMixin.save_pretrained` / ``push_to_hub``: weights, config and the generated card."""
        self.save_weights(save_directory)
        from .cards import write_card  # generated from the files just written
        write_card(save_directory)

    # -- loading ------------------------------------------------------------------------------------
    @classmethod
    def load_directory(cls, directory: str | os.PathLike) -> "Pretrained":
        directory = Path(directory)
        config_path = directory / CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(f"{directory}: no {CONFIG_FILE}; not a pretrained model directory")
        config = json.loads(config_path.read_text())
        if config.get("format") != FORMAT:
            raise ValueError(f"{config_path}: format {config.get('format')!r}, expected {FORMAT!r}")
        weights = directory / config["weights"]["file"]
        if not weights.is_file():
            raise FileNotFoundError(f"{directory}: weights file {weights.name} missing")
        if sha256(weights) != config["weights"]["sha256"]:
            raise ChecksumError(f"{weights}: SHA-256 {sha256(weights)[:12]}... does not match the config's "
                                f"{config['weights']['sha256'][:12]}...: the file is corrupt or truncated; "
                                "delete it (or its Hub cache entry) and download again")
        model = fill(cls.build(config), load_file(str(weights)), str(weights))
        return cls(model, config)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *, revision: str | None = None,
                        cache_dir: str | os.PathLike | None = None, force_download: bool = False,
                        local_files_only: bool = False, token: str | bool | None = None,
                        **kwargs) -> "Pretrained":
        """From a local directory, or a Hub repository id at ``revision`` (a branch such as a variant
        name, a tag or a commit). Honours ``HF_HUB_OFFLINE`` and the Hub cache: when the Hub cannot be
        reached, a cached snapshot is used (with a warning), and without one the error says so."""
        if kwargs:
            raise TypeError(f"Pretrained.from_pretrained: unexpected arguments {sorted(kwargs)}")
        if os.path.isdir(pretrained_model_name_or_path):
            return cls.load_directory(pretrained_model_name_or_path)
        return cls.load_directory(download(str(pretrained_model_name_or_path), revision=revision,
                                           cache_dir=cache_dir, force_download=force_download,
                                           local_files_only=local_files_only, token=token))

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision, cache_dir, force_download, local_files_only, token,
                         **model_kwargs) -> "Pretrained":
        return cls.from_pretrained(model_id, revision=revision, cache_dir=cache_dir, force_download=force_download,
                                   local_files_only=local_files_only, token=token)


def download(repo_id: str, *, revision: str | None = None, cache_dir=None, force_download: bool = False,
             local_files_only: bool = False, token=None) -> str:
    """The local snapshot directory of ``repo_id`` at ``revision``, downloaded unless cached.

    Offline (``HF_HUB_OFFLINE=1`` or ``local_files_only``): the cache only. Online but the Hub cannot be
    reached: the cached snapshot with a warning saying so (huggingface_hub alone would fall back
    silently), or an error when nothing is cached."""
    args = dict(repo_id=repo_id, revision=revision, cache_dir=cache_dir, token=token)
    where = f"{repo_id} (revision {revision or 'main'})"
    if local_files_only or constants.HF_HUB_OFFLINE:
        try:
            return snapshot_download(local_files_only=True, **args)
        except LocalEntryNotFoundError as exc:
            raise ConnectionError(f"{where}: offline (HF_HUB_OFFLINE or local_files_only) and nothing is cached; "
                                  "connect once to download it") from exc
    try:
        HfApi(token=token).model_info(repo_id, revision=revision)  # reachable, and the repository exists?
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise
    except Exception as exc:  # connection refused, timeout, Hub error: the cache, said out loud
        try:
            path = snapshot_download(local_files_only=True, **args)
        except LocalEntryNotFoundError:
            raise ConnectionError(f"cannot reach the Hugging Face Hub for {where}: {type(exc).__name__}: {exc}; "
                                  "and nothing is cached. Connect once to download it.") from exc
        warnings.warn(f"cannot reach the Hugging Face Hub for {where} ({type(exc).__name__}); using the cached "
                      f"snapshot {path}", stacklevel=3)
        return path
    return snapshot_download(force_download=force_download, **args)
