"""Spike nonlinearities with surrogate derivatives, and the exactly integrated current-based LIF.

Current-based LIF, with time in steps: ``dI/dt = -I / tau_syn`` (plus weighted input spikes),
``dv/dt = -v / tau_mem + I``. Over one step the pair propagates exactly:

    v(n) = beta v(n-1) + K(1) I(n-1) + sum_k w_k K(n - a_k)
    I(n) = alpha I(n-1) + sum_k w_k exp(-(n - a_k) / tau_syn)

with ``alpha = exp(-1/tau_syn)``, ``beta = exp(-1/tau_mem)``, the sums over spikes arriving at ``a_k``
in ``(n-1, n]``, and ``K(x) = (exp(-x/tau_mem) - exp(-x/tau_syn)) / (1/tau_syn - 1/tau_mem)`` the
membrane response ``x`` after a unit current jump. ``K(0) = 0``, so a spike's effect on the
membrane is continuous in its arrival time across step boundaries, and its derivative carries the
onset of the current, which a trace merely sampled at the steps would miss: delay gradients come
out unbiased.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _heaviside_with(derivative):
    @jax.custom_jvp
    def spike(x):
        return (x >= 0).astype(x.dtype)

    @spike.defjvp
    def _jvp(primals, tangents):
        (x,), (dx,) = primals, tangents
        return spike(x), dx * derivative(x)

    return spike


def fast_sigmoid(slope: float = 10.0):
    """Heaviside forward; SuperSpike / fast-sigmoid derivative ``1 / (1 + slope |x|)^2`` backward."""
    return _heaviside_with(lambda x: 1.0 / (1 + slope * jnp.abs(x)) ** 2)


def arctan(slope: float = 2.0):
    """Heaviside forward; arctan derivative ``(slope / 2) / (1 + (pi slope x / 2)^2)`` (Fang et al. 2021)."""
    return _heaviside_with(lambda x: (slope / 2) / (1 + (jnp.pi * slope * x / 2) ** 2))


def triangle(slope: float = 1.0):
    """Heaviside forward; triangular derivative ``slope * max(0, 1 - slope |x|)`` (Esser et al. 2016)."""
    return _heaviside_with(lambda x: slope * jnp.maximum(0.0, 1 - slope * jnp.abs(x)))


SURROGATES = {"fast_sigmoid": fast_sigmoid, "arctan": arctan, "triangle": triangle}
"""Surrogate spike functions by name, each a factory taking a slope."""


def surrogate(name: str, slope: float):
    """The spike function ``name`` of `SURROGATES` with the given slope; the error lists the names."""
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}; choose from {', '.join(SURROGATES)}")
    return SURROGATES[name](slope)


def kernel_scale(tau_syn: float, tau_mem: float) -> float:
    """``1 / (1/tau_syn - 1/tau_mem)``: the gain of `membrane_kernel`'s difference of exponentials."""
    return 1.0 / (1.0 / tau_syn - 1.0 / tau_mem)


def membrane_kernel(tau_syn: float, tau_mem: float):
    """``K(x)``: membrane potential ``x`` steps after a unit jump of the synaptic current."""
    if tau_syn <= 0 or tau_mem <= 0 or tau_syn == tau_mem:
        raise ValueError(f"membrane_kernel: need distinct positive time constants, got tau_syn={tau_syn}, "
                         f"tau_mem={tau_mem}")
    scale = kernel_scale(tau_syn, tau_mem)

    def kernel(x):
        return scale * (jnp.exp(-x / tau_mem) - jnp.exp(-x / tau_syn))

    return kernel
