"""The model zoo: named pretrained models (timm-style ``"arch.tag"``), listed and loaded.

Each architecture file ends by registering its pretrained variants (`register`), each with the
train.py recipe that made it. The weights this repository ships live in ``zoo/pretrained/<name>/`` and
load with no network; `load` falls back to the model's Hugging Face Hub repository otherwise.

    >>> import zoo
    >>> zoo.list_models("lif_network.*")
    >>> model = zoo.load("lif_network.yinyang", variant="cpu")
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

import equinox as eqx

from .build import reconfigured
from .hub import Pretrained

SHIPPED = Path(__file__).resolve().parent / "pretrained"  # weights that ship with the package
MODEL_CARDS = Path(__file__).resolve().parents[1] / "model_cards"  # their cards (a repository checkout)
HUB_ORG = "delay-snn-zoo"  # where `python -m zoo.publish` puts the zoo's models by default
ACCELERATORS = ("cpu", "gpu", "tpu")
# the no-delay ablation of any recipe: every delay fixed at zero, everything else equal
NO_DELAYS = ("model.init_delay=0", "optim.lr_delays=0")


@dataclass(frozen=True)
class PretrainedEntry:
    """A zoo model: its name, the train.py overrides that train it, and what it is."""

    name: str                     # "arch.tag"
    recipe: tuple[str, ...]       # `python train.py <recipe>`
    summary: str
    ablation_of: str | None = None  # the delayed model this no-delay ablation is compared with

    @property
    def hub_id(self) -> str:
        return f"{HUB_ORG}/{self.name}"

    @property
    def shipped(self) -> Path:
        return SHIPPED / self.name

    @property
    def card(self) -> Path:
        return MODEL_CARDS / self.name


_REGISTRY: dict[str, PretrainedEntry] = {}


class UnknownModelError(KeyError):
    """A zoo name that is not registered; the message lists the close matches."""

    def __str__(self) -> str:
        return str(self.args[0])


def no_delay_recipe(recipe: tuple[str, ...]) -> tuple[str, ...]:
    """The no-delay ablation of ``recipe``: `NO_DELAYS` appended, and a fine-tuning recipe
    (``init_from=NAME``, a zoo model) started from ``NAME_nodelay`` instead, NAME's own ablation. Started
    from NAME, its learned delays would load over ``model.init_delay=0`` and stay frozen at their values
    (``optim.lr_delays=0``): a network with fixed delays, not one without them."""
    ablated = []
    for override in recipe:
        key, _, start = override.partition("=")
        if key == "init_from":
            twin = _registry().get(f"{start}_nodelay")  # the architecture files register on import
            if twin is None or twin.ablation_of != start:
                raise ValueError(f"zoo: the no-delay ablation of a recipe with {override} must start from "
                                 f"{start}_nodelay, which is not registered: register {start} with_ablation=True "
                                 "before it")
            override = f"init_from={twin.name}"
        ablated.append(override)
    return tuple(ablated) + NO_DELAYS


def register(entry: PretrainedEntry, *, with_ablation: bool = False) -> PretrainedEntry:
    """Add ``entry`` (and, with ``with_ablation``, its ``<name>_nodelay`` twin, trained by
    `no_delay_recipe`) to the zoo."""
    if entry.name.count(".") != 1:
        raise ValueError(f"zoo names are 'arch.tag', got {entry.name!r}")
    if entry.name in _REGISTRY and _REGISTRY[entry.name] != entry:
        raise ValueError(f"zoo: {entry.name!r} is registered twice with different recipes")
    _REGISTRY[entry.name] = entry
    if with_ablation:
        register(PretrainedEntry(f"{entry.name}_nodelay", no_delay_recipe(entry.recipe),
                                 f"{entry.summary} Ablation: every delay fixed at 0.", ablation_of=entry.name))
    return entry


def _registry() -> dict[str, PretrainedEntry]:
    from . import models  # noqa: F401  (the architecture files register their variants on import)
    return _REGISTRY


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Zoo names matching ``pattern`` (fnmatch); with ``pretrained``, only those whose weights ship here."""
    return sorted(n for n, e in _registry().items()
                  if fnmatch.fnmatch(n, pattern) and (not pretrained or (e.shipped / "config.json").is_file()))


def get_entry(name: str) -> PretrainedEntry:
    registry = _registry()
    if name not in registry:
        close = difflib.get_close_matches(name, list(registry), n=5, cutoff=0.5)
        raise UnknownModelError(f"unknown zoo model {name!r}" + (f"; did you mean {', '.join(close)}?" if close else "")
                       + f" (zoo.list_models() lists all {len(registry)})")
    return registry[name]


def load_pretrained(name: str, *, variant: str | None = None, pretrained: bool = True, revision: str | None = None,
                    seed: int = 0) -> Pretrained:
    """The `Pretrained` (model and config) for a zoo name, a local directory or a Hub repository id.

    ``variant`` (cpu, gpu, tpu) applies that accelerator's tuned settings (`zoo.autotune`): the queue
    kind and dtype. ``revision`` reads that Hub revision instead of the shipped copy. ``pretrained=False``
    gives the same architecture with fresh weights drawn from ``seed``."""
    if os.path.isdir(name) or (name.count("/") == 1 and name not in _registry()):
        loaded = Pretrained.from_pretrained(name, revision=revision)
    else:
        entry = get_entry(name)
        if revision is None and (entry.shipped / "config.json").is_file():
            loaded = Pretrained.load_directory(entry.shipped)
        else:
            loaded = Pretrained.from_pretrained(entry.hub_id, revision=revision)
    if not pretrained:
        loaded = Pretrained(Pretrained.build(loaded.config, seed), loaded.config)
    variant = variant or loaded.config.get("default_variant")  # a variant's own Hub revision names itself
    return apply_variant(loaded, variant) if variant else loaded


def load(name: str, *, variant: str | None = None, pretrained: bool = True, revision: str | None = None,
         seed: int = 0) -> eqx.Module:
    """The Equinox model of a zoo name, a local directory or a Hub repository id (see `load_pretrained`)."""
    return load_pretrained(name, variant=variant, pretrained=pretrained, revision=revision, seed=seed).model


def apply_variant(loaded: Pretrained, variant: str) -> Pretrained:
    """``loaded`` with the settings its config records for ``variant``: the queue kind and dtype."""
    variants = loaded.config.get("variants", {})
    if variant not in variants:
        raise KeyError(f"{loaded.config.get('name', 'model')}: no variant {variant!r}; it has "
                       f"{', '.join(sorted(variants)) or 'none'} (python -m zoo.autotune tunes one)")
    settings = variants[variant]
    model = reconfigured(loaded.model, queue_cfg=settings.get("queue"), dtype=settings.get("dtype", "float32"))
    config = {**loaded.config, "queue": settings.get("queue", loaded.config.get("queue")), "variant": variant}
    return Pretrained(model, config)
