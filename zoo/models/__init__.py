"""Delay-learning SNN architectures."""

from .delayed_ffn import DelayedFeedForward

__all__ = ["DelayedFeedForward"]
