"""Delay-learning SNN architectures."""

from .common import READOUTS
from .delayed_conv import DelayedConv
from .delayed_ffn import DelayedFeedForward
from .delayed_rnn import DelayedRecurrent
from .ensemble import Ensemble, mean_prediction
from .lif_network import ExactLIFNetwork
from .shift_averaged import ShiftAveraged
from .synapses import DelayedSynapses, label_delays, project_delays, swap_queues

__all__ = ["DelayedConv", "DelayedFeedForward", "DelayedRecurrent", "DelayedSynapses", "Ensemble",
           "ExactLIFNetwork", "READOUTS", "ShiftAveraged", "label_delays", "mean_prediction", "project_delays",
           "swap_queues"]
