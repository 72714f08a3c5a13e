"""Reading the Spiking Heidelberg Digits (SHD) and Spiking Speech Commands (SSC) files.

Cramer, Stradmann, Schemmel & Zenke (2020), "The Heidelberg spiking data sets for the
systematic evaluation of spiking neural networks", IEEE TNNLS, publish both as HDF5 files
(``shd_train.h5``, ``shd_test.h5``; ``ssc_train.h5``, ``ssc_valid.h5``, ``ssc_test.h5``; they
come gzipped and must be unpacked first) with this schema, per file of ``N`` samples:

- ``spikes/times``: ``N`` variable-length float arrays, the spike times in **seconds**;
- ``spikes/units``: ``N`` variable-length integer arrays, the channel of each spike (0-699: the
  700 channels of their cochlear model);
- ``labels``: ``N`` integers, the class (SHD: 20, the digits 0-9 in English and German; SSC:
  35 keywords);
- ``extra/speaker``: ``N`` integers (optional); ``extra/keys``: the class names (optional);
  ``extra/meta_info/...``: speakers' gender, age, body height (not read).

Nothing is downloaded: a user who has the files names them (``--data-path``).  Every value is
checked before it is used, and a file that breaks the schema is refused naming the dataset and
the first bad sample.  This module is torch-free (h5py and numpy).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

N_CHANNELS = 700
N_CLASSES = {"shd": 20, "ssc": 35}
SPLIT_FILES = {"train": "train", "validation": "valid", "test": "test"}
MAX_SECONDS = 1000.0  # a spike time beyond this (16 min) is not a spoken word: a broken file


@dataclass(frozen=True)
class EventArrays:
    """The spikes of one file as flat arrays (see :class:`workbench.data.EventSplit`)."""

    times: np.ndarray  # float32 [E], ms
    units: np.ndarray  # int16 [E]
    offsets: np.ndarray  # int64 [N + 1]
    labels: np.ndarray  # int64 [N]
    speakers: np.ndarray | None  # int64 [N]
    keys: tuple[str, ...] | None  # class names, if the file has them


def split_files(data_path: str | os.PathLike | None, name: str) -> dict[str, Path]:
    """The files of each split that ``data_path`` names.

    ``data_path`` is a folder holding ``{name}_train.h5`` and ``{name}_test.h5`` (and, for SSC,
    ``{name}_valid.h5``), or one of those files (its siblings are found by name), or a single
    file of any other name (then it is split by the loader).  Returns the files found, by
    split; raises ``ValueError`` naming ``data_path`` when there is nothing to read.
    """
    if data_path is None or data_path == "":
        raise ValueError(
            f"data_path: {name} needs its files: --data-path FOLDER (holding {name}_train.h5 and "
            f"{name}_test.h5) or --data-path FILE.h5; they are not downloaded at run time"
        )
    if not isinstance(data_path, (str, os.PathLike)):
        raise ValueError(f"data_path: {data_path!r} must be a path")
    path = Path(data_path).expanduser()
    if path.is_dir():
        found = {
            split: path / f"{name}_{stem}.h5"
            for split, stem in SPLIT_FILES.items()
            if (path / f"{name}_{stem}.h5").is_file()
        }
        if "train" not in found or "test" not in found:
            zipped = sorted(p.name for p in path.glob(f"{name}_*.h5.gz"))
            hint = f"; unpack {', '.join(zipped)} first (gunzip)" if zipped else ""
            raise ValueError(
                f"data_path: {str(path)!r} has no {name}_train.h5 and {name}_test.h5{hint}"
            )
        return found
    if not path.is_file():
        hint = " (unpack it first: gunzip)" if path.with_name(path.name + ".gz").is_file() else ""
        raise ValueError(f"data_path: {str(path)!r} is not a file or folder{hint}")
    if path.suffix == ".gz":
        raise ValueError(f"data_path: {str(path)!r} is gzipped; unpack it first (gunzip)")
    stem = path.name
    for split, part in SPLIT_FILES.items():
        marker = f"_{part}."
        if marker in stem:
            found = {}
            for other, other_part in SPLIT_FILES.items():
                sibling = path.with_name(stem.replace(marker, f"_{other_part}."))
                if sibling.is_file():
                    found[other] = sibling
            if split == "train" and "test" not in found:
                raise ValueError(f"data_path: no test file beside {str(path)!r}")
            return found if split == "train" else {"all": path}
    return {"all": path}


def read_events(path: Path, n_classes: int) -> EventArrays:
    """Read and check one file of the SHD/SSC schema (times converted to ms); a ``ValueError``
    names ``data_path``, the file and the first bad dataset or sample."""
    import h5py

    where = f"data_path: {path.name}"
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{where}: not an HDF5 file ({exc})") from None
    with handle as f:
        for key in ("spikes/times", "spikes/units", "labels"):
            if key not in f:
                raise ValueError(
                    f"{where}: has no '{key}' dataset; the SHD/SSC format has spikes/times, "
                    "spikes/units and labels"
                )
        try:
            times = f["spikes/times"][()]
            units = f["spikes/units"][()]
            labels = np.asarray(f["labels"][()])
        except (OSError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: unreadable spikes or labels ({exc})") from None
        speakers = np.asarray(f["extra/speaker"][()]) if "extra/speaker" in f else None
        keys = None
        if "extra/keys" in f:
            raw = f["extra/keys"][()]
            keys = tuple(k.decode() if isinstance(k, bytes) else str(k) for k in np.ravel(raw))
    n = len(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{where}: labels must be N integers, got {labels.dtype} {labels.shape}")
    if len(times) != n or len(units) != n:
        raise ValueError(
            f"{where}: spikes/times ({len(times)}), spikes/units ({len(units)}) and labels ({n}) "
            "must hold one entry per sample"
        )
    if n and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"{where}: labels must lie in [0, {n_classes - 1}], got [{labels.min()}, "
            f"{labels.max()}]"
        )
    if speakers is not None and speakers.shape != (n,):
        raise ValueError(f"{where}: extra/speaker must hold {n} entries, got {speakers.shape}")
    counts = np.zeros(n + 1, np.int64)
    for k in range(n):
        t, u = np.asarray(times[k]), np.asarray(units[k])
        if t.ndim != 1 or u.shape != t.shape:
            raise ValueError(
                f"{where}: spikes/times[{k}] and spikes/units[{k}] must be 1-D of one length, "
                f"got {t.shape} and {u.shape}"
            )
        if t.size and not (np.all(np.isfinite(t)) and t.min() >= 0 and t.max() <= MAX_SECONDS):
            raise ValueError(
                f"{where}: spikes/times[{k}] must be finite seconds in [0, {MAX_SECONDS:g}], got "
                f"[{t.min():g}, {t.max():g}]"
            )
        if u.size and (
            not np.issubdtype(u.dtype, np.integer) or u.min() < 0 or u.max() >= N_CHANNELS
        ):
            raise ValueError(
                f"{where}: spikes/units[{k}] must be channels in [0, {N_CHANNELS - 1}], got "
                f"{u.dtype} in [{u.min()}, {u.max()}]"
            )
        counts[k + 1] = t.size
    offsets = np.cumsum(counts)
    flat_t = np.empty(offsets[-1], np.float32)
    flat_u = np.empty(offsets[-1], np.int16)
    for k in range(n):
        t = np.asarray(times[k], np.float64) * 1000.0
        order = np.argsort(t, kind="stable")
        flat_t[offsets[k] : offsets[k + 1]] = t[order]
        flat_u[offsets[k] : offsets[k + 1]] = np.asarray(units[k])[order]
    return EventArrays(
        times=flat_t,
        units=flat_u,
        offsets=offsets,
        labels=labels.astype(np.int64),
        speakers=None if speakers is None else speakers.astype(np.int64),
        keys=keys if keys is not None and len(keys) == n_classes else None,
    )


def check_fraction(name: str, value, upper: float = 1.0) -> None:
    if not (isinstance(value, (int, float)) and not isinstance(value, bool)) or not (
        math.isfinite(value) and 0 < value < upper
    ):
        raise ValueError(f"{name}: {value!r} must be a number in (0, {upper:g})")
