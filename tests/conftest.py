"""Fixtures the browser tests share, and the Hypothesis profiles of tests/test_fuzz.py."""

import os

import pytest
from hypothesis import settings

# `ci` (make test): the same cases every run; `fuzz` (make fuzz): random and twenty times as many.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("fuzz", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright, one per test module."""
    from playwright.sync_api import sync_playwright

    from workbench.widgets.browser import launch

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


def write_shd_file(path, n: int, seed: int, n_classes: int = 20, extra: bool = True) -> None:
    """A small file in the Spiking Heidelberg Digits schema (spikes/times in seconds,
    spikes/units, labels, extra/speaker, extra/keys) whose classes a network can learn: class
    ``c`` fires channels ``30 c .. 30 c + 59`` from ``50 (c mod 4)`` ms on, ~400 events each."""
    import h5py
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float32))
        units = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
        for k, label in enumerate(labels):
            m = int(rng.integers(300, 500))
            onset = (label % 4) * 0.05
            times[k] = np.sort(onset + rng.uniform(0, 0.2, m)).astype(np.float32)
            units[k] = np.clip(label * 30 + rng.integers(0, 60, m), 0, 699).astype(np.uint16)
        f["labels"] = labels.astype(np.uint16)
        if extra:
            f["extra/speaker"] = rng.integers(0, 10, n).astype(np.uint16)
            f["extra/keys"] = np.array([f"word{c}".encode() for c in range(n_classes)])


@pytest.fixture(scope="session")
def shd_folder(tmp_path_factory):
    """A folder with shd_train.h5 (400 samples) and shd_test.h5 (100) of learnable classes."""
    folder = tmp_path_factory.mktemp("shd")
    write_shd_file(folder / "shd_train.h5", 400, seed=0)
    write_shd_file(folder / "shd_test.h5", 100, seed=1)
    return folder
