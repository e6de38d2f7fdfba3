"""Event datasets as arrays of spike times."""

from .delay_task import DelayTask, SpikeDataset

__all__ = ["DelayTask", "SpikeDataset"]
