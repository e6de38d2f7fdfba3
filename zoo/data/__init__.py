"""Datasets: generated tasks and event-camera recordings, loaded as spike rasters."""

from .augment import (Compose, Identity, OneOf, RandomAffine, RandomDrop, RandomDropArea, RandomDropTime, RandomShift,
                      shift_frames)
from .delay_task import DelayTask, SpikeDataset
from .events import EVENT_DTYPE, NMNIST, BadEventFile, HOTSLetters, RasterSpec, read_event_file
from .saccades import SaccadeDigits
from .recordings import TONIC_DATASETS, HOTSLettersRasters, NMNISTRasters, TonicRasters
from .yinyang import YinYang

__all__ = ["BadEventFile", "Compose", "DelayTask", "EVENT_DTYPE", "HOTSLetters", "HOTSLettersRasters", "Identity",
           "NMNIST", "NMNISTRasters", "OneOf", "RandomAffine", "RandomDrop", "RandomDropArea", "RandomDropTime",
           "RandomShift", "RasterSpec", "SaccadeDigits", "SpikeDataset", "TONIC_DATASETS", "TonicRasters", "YinYang",
           "read_event_file", "shift_frames"]
