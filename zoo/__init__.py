"""Delay-learning spiking neural networks built on `queues`."""
