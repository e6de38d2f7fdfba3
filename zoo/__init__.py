"""Delay-learning spiking neural networks built on `queues`, and the zoo of pretrained ones."""

from .hub import Pretrained
from .registry import list_models, load, load_pretrained

__all__ = ["Pretrained", "list_models", "load", "load_pretrained"]
