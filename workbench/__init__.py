"""SNN Workbench: build, simulate, train and compare spiking neural networks.

The compute core: no UI library is imported here (the UI lives in ``workbench.widgets``).
Importing the package does not import torch: ``build``, ``available_backends`` and
``RunResult`` load :mod:`workbench.backends` on first use, so the torch-free modules
(:mod:`workbench.spec`, :mod:`workbench.limits`, :mod:`workbench.catalog`, and the
``workbench`` command up to its option checks) start in a fraction of a second.
"""

from workbench.spec import NetworkSpec, Population, Projection, SpecError, feedforward

__version__ = "0.1.0"
__all__ = [
    "NetworkSpec",
    "Population",
    "Projection",
    "RunResult",
    "SpecError",
    "available_backends",
    "build",
    "feedforward",
]

_LAZY = dict.fromkeys(("RunResult", "available_backends", "build"), "workbench.backends")


def __getattr__(name: str):  # PEP 562: the torch-backed names, imported on first use
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
