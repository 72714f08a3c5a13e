"""The run store: manifests, checkpoints that survive a killed process, and listing runs.

A **run folder** (written by :func:`workbench.experiment.save_run`, atomically: a temporary
folder beside it is renamed into place when complete) carries ``manifest.json``: the package
version, the spec's hash, seed, backend, algorithm, dataset, when it was written, and the size
and SHA-256 of every other file.  :func:`read_manifest` checks a folder against it, so a folder
whose files were cut short or changed is refused rather than half-loaded.

A **checkpoint** (:class:`Checkpoint`) is a folder of its own, named beside the run folder it
will become (``.NAME.checkpoint``).  Training saves into it after every ``every`` epochs the
complete state of its loop: weights, optimiser and schedule, history, the best epoch's weights,
early-stopping counters, and every random stream that the next epoch draws from (torch's global
generator, the loader's shuffling generator, the encoder's, and an emulator's noise).  A run
resumed from it therefore ends with the same weights as one that was never interrupted (with
the same number of torch threads: floating-point sums depend on how they are split).  Each
save goes to a temporary file renamed over the last one, so a process killed while saving
leaves the previous checkpoint intact.

:func:`list_runs` tabulates a store (a folder of run folders, at any depth): complete runs
from their manifests, and checkpoints of runs that can be resumed.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import torch

from workbench import __version__
from workbench.spec import Problem, SpecError

MANIFEST = "manifest.json"
CHECKPOINT_SUFFIX = ".checkpoint"


# ------------------------------------------------------------------------------------ manifests


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path, run) -> dict:
    """Write ``folder/manifest.json`` for ``run`` (a :class:`~workbench.experiment.Run`) over
    the files already in ``folder``; returns the manifest."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST)
    manifest = {
        "workbench_version": __version__,
        "spec_hash": run.spec.digest(),
        "seed": run.config.seed,
        "backend": run.config.backend,
        "algorithm": run.config.algorithm,
        "dataset": run.config.dataset,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "files": {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in files},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def read_manifest(folder: str | os.PathLike, verify: bool = True) -> dict:
    """The manifest of a complete run folder; with ``verify``, every file it lists must be there
    with its recorded size and hash (:class:`~workbench.spec.SpecError` naming the file)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise SpecError(
            [Problem("run", f"{str(folder)!r} is not a complete run folder (no {MANIFEST})")]
        )
    manifest = json.loads(path.read_text())
    if verify:
        for name, expected in manifest["files"].items():
            file = folder / name
            if not file.is_file():
                raise SpecError([Problem("run", f"{str(folder)!r}: {name} is missing")])
            if file.stat().st_size != expected["bytes"] or _sha256(file) != expected["sha256"]:
                raise SpecError(
                    [
                        Problem(
                            "run",
                            f"{str(folder)!r}: {name} differs from the one the run wrote "
                            "(size or SHA-256 in manifest.json)",
                        )
                    ]
                )
    return manifest


# ------------------------------------------------------------------------------ random streams


def _generators(obj) -> dict[str, torch.Generator]:
    """The ``torch.Generator`` attributes of ``obj`` (and those in its dict attributes)."""
    out = {}
    for name, value in vars(obj).items():
        if isinstance(value, torch.Generator):
            out[name] = value
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, torch.Generator):
                    out[f"{name}[{key}]"] = item
    return out


def runtime_state(obj) -> dict:
    """What ``obj`` draws its randomness from, beyond its weights: the states of its
    generators, or what its own ``runtime_state()`` returns (an emulator that also counts, for
    example, how often its chip was programmed)."""
    if hasattr(obj, "runtime_state"):
        return obj.runtime_state()
    return {name: g.get_state() for name, g in _generators(obj).items()}


def load_runtime_state(obj, state: dict) -> None:
    """Restore what :func:`runtime_state` returned."""
    if hasattr(obj, "load_runtime_state"):
        obj.load_runtime_state(state)
        return
    generators = _generators(obj)
    for name, value in state.items():
        if name not in generators:  # e.g. a per-device generator made lazily on first use
            attribute, _, key = name.partition("[")
            getattr(obj, attribute)[key.rstrip("]")] = torch.Generator()
            generators = _generators(obj)
        generators[name].set_state(value)


def random_state(network, encoder, *loaders) -> dict:
    """Every random stream a training epoch draws from: torch's global generator, the loaders'
    shuffling, the encoder's, and each module of ``network``."""
    return {
        "torch": torch.get_rng_state(),
        "loaders": [
            loader.generator.get_state() if loader.generator is not None else None
            for loader in loaders
        ],
        "encoder": runtime_state(encoder),
        "network": {name: runtime_state(m) for name, m in network.named_modules()},
    }


def load_random_state(state: dict, network, encoder, *loaders) -> None:
    torch.set_rng_state(state["torch"])
    for loader, saved in zip(loaders, state["loaders"], strict=True):
        if saved is not None:
            loader.generator.set_state(saved)
    load_runtime_state(encoder, state["encoder"])
    modules = dict(network.named_modules())
    for name, module_state in state["network"].items():
        load_runtime_state(modules[name], module_state)


# ------------------------------------------------------------------------------------ checkpoints


def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    """Where a run that will be written to ``run_dir`` keeps its checkpoint."""
    run_dir = Path(run_dir)
    return run_dir.parent / f".{run_dir.name}{CHECKPOINT_SUFFIX}"


class Checkpoint:
    """A folder holding the state of an unfinished run (see the module docstring).

    ``every``: save after every ``every``-th epoch (and never after a stopped, partial one).
    The training loop calls :meth:`load` once before its first epoch and :meth:`save` after
    epochs; ``experiment.train`` writes the run's configuration beside the state."""

    STATE = "state.pt"

    def __init__(self, folder: str | os.PathLike, every: int = 1):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise SpecError([Problem("checkpoint_every", f"{every!r} must be an integer >= 1")])
        self.folder = Path(folder)
        self.every = every

    @property
    def path(self) -> Path:
        return self.folder / self.STATE

    def exists(self) -> bool:
        return self.path.is_file()

    def due(self, epoch: int) -> bool:
        return epoch % self.every == 0

    def load(self) -> dict | None:
        """The last saved state, or None when nothing was saved yet."""
        if not self.exists():
            return None
        return torch.load(self.path, weights_only=True)

    def save(self, state: dict) -> None:
        """Replace the saved state by ``state`` atomically (written, synced, renamed)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.STATE}.", suffix=".part", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                torch.save(state, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def write_json(self, name: str, data: dict) -> None:
        """Write ``name`` (the run's configuration, say) into the folder, atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=self.folder)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
        os.replace(tmp, self.folder / name)

    def read_json(self, name: str) -> dict | None:
        path = self.folder / name
        return json.loads(path.read_text()) if path.is_file() else None


# ------------------------------------------------------------------------------------ listing

RUN_COLUMNS = (
    "run",
    "status",
    "dataset",
    "algorithm",
    "backend",
    "seed",
    "epochs",
    "test_accuracy",
    "created",
    "workbench_version",
)


def list_runs(store: str | os.PathLike) -> pd.DataFrame:
    """One row per run folder under ``store`` (``status`` "complete", or "corrupt" when its
    files no longer match the manifest) and per resumable checkpoint ("resumable at epoch N of
    M"); ``run`` is the path relative to ``store``."""
    store = Path(store)
    if not store.is_dir():
        raise SpecError([Problem("store", f"{str(store)!r} is not a folder")])
    rows = []
    for manifest_path in sorted(store.rglob(MANIFEST)):
        folder = manifest_path.parent
        if any(part.startswith(".") for part in folder.relative_to(store).parts):
            continue  # a temporary folder of a write in progress (or killed)
        try:
            manifest, status = read_manifest(folder), "complete"
        except SpecError:
            manifest, status = read_manifest(folder, verify=False), "corrupt"
        metrics = folder / "metrics.json"
        metrics = json.loads(metrics.read_text()) if metrics.is_file() else {}
        rows.append(
            {
                **{k: manifest.get(k) for k in RUN_COLUMNS},
                "run": str(folder.relative_to(store)),
                "status": status,
                "epochs": metrics.get("epochs"),
                "test_accuracy": metrics.get("test_accuracy"),
            }
        )
    for state in sorted(store.rglob(f"*{CHECKPOINT_SUFFIX}/{Checkpoint.STATE}")):
        checkpoint = Checkpoint(state.parent)
        config = checkpoint.read_json("config.json") or {}
        saved = checkpoint.load()
        name = state.parent.name[1 : -len(CHECKPOINT_SUFFIX)]
        epochs = config.get("training", {}).get("epochs")
        rows.append(
            {
                "run": str((state.parent.parent / name).relative_to(store)),
                "status": f"resumable at epoch {saved['epoch']} of {epochs}",
                "dataset": config.get("dataset"),
                "algorithm": config.get("algorithm"),
                "backend": config.get("backend"),
                "seed": config.get("seed"),
                "epochs": saved["epoch"],
            }
        )
    return pd.DataFrame(rows, columns=list(RUN_COLUMNS))


__all__ = [
    "Checkpoint",
    "checkpoint_dir",
    "list_runs",
    "read_manifest",
    "write_manifest",
]
