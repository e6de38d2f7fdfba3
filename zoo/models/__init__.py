"""Delay-learning SNN architectures."""

from .common import READOUTS
from .delayed_ffn import DelayedFeedForward
from .delayed_rnn import DelayedRecurrent
from .synapses import DelayedSynapses, label_delays, project_delays, swap_queues

__all__ = ["DelayedFeedForward", "DelayedRecurrent", "DelayedSynapses", "READOUTS", "label_delays",
           "project_delays", "swap_queues"]
