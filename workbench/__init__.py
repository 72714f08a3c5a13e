"""SNN Workbench: build, simulate, train and compare spiking neural networks.

The compute core: no UI library is imported here (the UI lives in ``workbench.widgets``).
"""

from workbench.backends import RunResult, available_backends, build
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
