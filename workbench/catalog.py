"""What the workbench offers, by name, without importing torch.

The ``workbench`` command takes its option choices from here, so a bad option is refused
before torch and Numba load (seconds; issue 18 asks for a refusal within one).  The registries
themselves live with their code; tests/test_packaging.py checks that they hold exactly these
names, so a new algorithm or dataset that is not named here fails the suite:

- :data:`ALGORITHM_NAMES`: what :mod:`workbench.algorithms` registers (``ALGORITHMS``);
- :data:`DATASET_NAMES`: the datasets with a reference configuration
  (:data:`workbench.experiment.DATASET_REFERENCES`);
- :data:`STATIC_ENCODERS`: the encoders a static dataset offers (the one definition;
  :mod:`workbench.experiment` re-exports it);
- :func:`backend_names`: ``float`` and the ``workbench.backends`` entry points, scanned once
  per process (:func:`workbench.backends.available_backends` reads the same scan).

The neuron models and surrogates are in :mod:`workbench.neuron_models`, also torch-free.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points

ALGORITHM_NAMES = ("desire", "eventprop", "proxy", "ssnn_bp", "stdp", "surrogate", "vdsp")
DATASET_NAMES = ("digits", "equalizer", "shd", "spoken_digits", "ssc", "yinyang")
# The delta encoder needs time series, so static datasets do not offer it.
STATIC_ENCODERS = ("latency", "rate", "ternary", "log_scale")
# Datasets of spike events (workbench.data.EventSplit) and the encoder that reads them.
EVENT_DATASETS = ("shd", "spoken_digits", "ssc")
EVENT_ENCODERS = ("spikes",)
# Datasets of signed signal samples (the equaliser's received window) and the paper's codes
# for them (the ternary encoder's "binary" code, the log-scale encoder's "latency" code).
SIGNAL_DATASETS = ("equalizer",)
SIGNAL_ENCODERS = ("ternary", "log_scale")
# The equaliser's channels (workbench.equalizer.CHANNELS; tests/test_equalizer.py checks them).
EQUALIZER_CHANNELS = ("awgn", "proakis_a", "proakis_b", "proakis_c")
# Datasets read from the user's files (--data-path): the app, which has no such files, does not
# offer them.
FILE_DATASETS = ("shd", "ssc")
# The settings of a dataset's loader that the command line has flags for (--data-path ...);
# any other is given as --dataset-option NAME=VALUE.
DATASET_FLAGS = ("data_path", "channel", "ebn0")


def encoders_for(dataset: str) -> tuple[str, ...]:
    """The encoders a dataset's samples can go through."""
    if dataset in EVENT_DATASETS:
        return EVENT_ENCODERS
    return SIGNAL_ENCODERS if dataset in SIGNAL_DATASETS else STATIC_ENCODERS


BACKEND_GROUP = "workbench.backends"  # the entry point group chip emulators register under
BUILTIN_BACKEND = "float"  # registered by workbench.backends itself


@functools.cache
def backend_entry_points() -> dict[str, EntryPoint]:
    """The entry points of :data:`BACKEND_GROUP` by name (the first of a name wins), scanned
    once per process: a scan of the installed distributions takes tens of milliseconds."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=BACKEND_GROUP):
        found.setdefault(ep.name, ep)
    return found


def backend_names() -> list[str]:
    """The built-in float simulator first, then every installed backend plugin, sorted."""
    plugins = sorted(set(backend_entry_points()) - {BUILTIN_BACKEND})
    return [BUILTIN_BACKEND, *plugins]
