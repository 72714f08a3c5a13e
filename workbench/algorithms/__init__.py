"""Training algorithms, all with one face: ``fit(network, data, config, callbacks, stop)``.

Each algorithm registers an :class:`Algorithm`: its ``fit`` function, its hyperparameter
dataclass, and its reference configuration per dataset (overrides of the run configuration:
network, encoder and training settings).  The CLI, ``compare()`` and the UI list what is
registered here, so a new algorithm needs no change to them, except its name in
:data:`workbench.catalog.ALGORITHM_NAMES` (the command line's choices, read without importing
torch; tests/test_packaging.py checks that the two agree).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Algorithm:
    name: str
    title: str
    fit: Callable  # fit(network, data, config, callbacks=(), stop=None) -> History
    config_class: type
    references: dict[str, dict] = field(default_factory=dict)  # dataset -> RunConfig overrides
    default_backend: str = "float"  # the backend ``workbench train`` uses unless told otherwise


ALGORITHMS: dict[str, Algorithm] = {}


def register_algorithm(algorithm: Algorithm) -> None:
    ALGORITHMS[algorithm.name] = algorithm


def get_algorithm(name: str) -> Algorithm:
    if name not in ALGORITHMS:
        raise ValueError(f"algorithm: {name!r} is not known; choose one of {sorted(ALGORITHMS)}")
    return ALGORITHMS[name]


# Each module registers its algorithms when imported.
from workbench.algorithms import (  # noqa: E402
    desire,  # noqa: F401
    eventprop,  # noqa: F401
    local,  # noqa: F401  (stdp and vdsp)
    proxy,  # noqa: F401
    ssnn_bp,  # noqa: F401
    surrogate,  # noqa: F401
)
