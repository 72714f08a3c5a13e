"""The run store: manifests, checkpoints that survive a killed process, and listing runs.

A **run folder** (written by :func:`workbench.experiment.save_run`, atomically: a temporary
folder beside it is renamed into place when complete) carries ``manifest.json``: the package
version, the spec's hash, seed, backend, algorithm, dataset, when it was written, and the size
and SHA-256 of every other file.  :func:`read_manifest` checks a folder against it, so a folder
whose files were cut short or changed is refused rather than half-loaded; a manifest that is
not JSON, lacks a field or has one of the wrong type is refused the same way.

A **checkpoint** (:class:`Checkpoint`) is a folder of its own, named beside the run folder it
will become (``.NAME.checkpoint``).  Training saves into it after every ``every`` epochs the
complete state of its loop: weights, optimiser and schedule, history, the best epoch's weights,
early-stopping counters, and every random stream that the next epoch draws from (torch's global
generator, the loader's shuffling generator, the encoder's, and an emulator's noise).  A run
resumed from it therefore ends with the same weights as one that was never interrupted (with
the same number of torch threads: floating-point sums depend on how they are split).

Nothing in a checkpoint is ever unpickled.  The state is two files: ``state-NNNNNN.safetensors``
holds every tensor (flat names such as ``network/hidden.weight``), and ``state.json`` holds the
rest as JSON, with each tensor's place marked by its name, dtype and shape, the size and
SHA-256 of the safetensors file it belongs to and of ``run.json`` (the run's configuration),
and the SHA-256 of its own content (as canonical JSON), so that a changed byte anywhere shows.
A save writes a new safetensors file under the next generation's name, then ``state.json``
(each written to a temporary file, synced and renamed), and only then deletes the previous
generation: renaming ``state.json`` is the one step that switches from the old state to the
new, so a process killed at any point leaves one complete, consistent pair.  Loading checks the
pair before anything is used: valid JSON of the expected form, the hash, every tensor's dtype
and shape, and (given the ``expected`` form of the state the loop would save now, see
:func:`like`) every key, type and tensor shape; anything else is refused with
:class:`~workbench.spec.SpecError` naming the file.  A ``state.pt`` (the pickled format of
versions before this one) is refused with a message saying so.

:func:`list_runs` tabulates a store (a folder of run folders, at any depth): complete runs
from their manifests, checkpoints of runs that can be resumed, and what is corrupt, with why.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import math
import os
import re
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from workbench import __version__
from workbench.files import write_atomic as _write_atomic
from workbench.limits import show
from workbench.spec import Problem, SpecError

MANIFEST = "manifest.json"
CHECKPOINT_SUFFIX = ".checkpoint"
MAX_JSON_BYTES = 64 << 20  # a manifest, run.json or state.json larger than this is refused
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _refusal(path: Path, reason: str, field: str = "checkpoint") -> SpecError:
    """The error for a file of the store that cannot be used (``reason`` kept for listings)."""
    error = SpecError([Problem(field, f"{str(path.parent)!r}: {path.name} {reason}")])
    error.reason = f"{path.name} {reason}"
    return error


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _read_json(path: Path, field: str):
    """The JSON document in ``path``, strictly: a file of at most :data:`MAX_JSON_BYTES`, UTF-8,
    no ``NaN``/``Infinity``, nesting Python can parse; else a refusal naming the file."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise _refusal(path, f"is larger than {MAX_JSON_BYTES >> 20} MiB", field)
        text = path.read_bytes().decode("utf-8")
        return json.loads(text, parse_constant=_refuse_constant)
    except FileNotFoundError:
        raise _refusal(path, "is missing", field) from None
    except UnicodeDecodeError:
        raise _refusal(path, "is not UTF-8 text", field) from None
    except RecursionError:
        raise _refusal(path, "is nested too deeply", field) from None
    except ValueError as exc:  # json.JSONDecodeError and the constants refused above
        raise _refusal(path, f"is not valid JSON ({str(exc).splitlines()[0]})", field) from None


def _seal(document: dict, keys: tuple) -> str:
    """The SHA-256 of ``keys`` of ``document`` as canonical JSON (sorted keys, no spaces): a
    JSON file can carry this hash of its own content, and any edit to it shows."""
    content = {k: document[k] for k in keys}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _sync_folder(folder: Path) -> None:
    """Make the renames in ``folder`` durable (where the system allows a folder to be synced)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ------------------------------------------------------------------------------------ manifests


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


# each field of a manifest and the types it may hold (None where a run may have no value)
MANIFEST_FIELDS = {
    "workbench_version": (str,),
    "spec_hash": (str,),
    "seed": (int, type(None)),
    "backend": (str,),
    "algorithm": (str,),
    "dataset": (str, type(None)),
    "created": (str,),
    "files": (dict,),
}


def _manifest_problem(manifest) -> str | None:
    """What is wrong with the form of a parsed manifest (None when nothing is)."""
    if not isinstance(manifest, dict):
        return f"holds {_describe(manifest)}, not an object"
    for name, types in MANIFEST_FIELDS.items():
        if name not in manifest:
            return f"has no {name!r}"
        value = manifest[name]
        if isinstance(value, bool) or not isinstance(value, types):
            names = {str: "a string", int: "an integer", dict: "an object", type(None): "null"}
            allowed = " or ".join(names[t] for t in types)
            return f"has {name} = {show(value)}; it must be {allowed}"
    for name, entry in manifest["files"].items():
        if name in ("", ".", "..", MANIFEST) or "/" in name or "\\" in name or "\0" in name:
            return f"lists {show(name)} in files, which is not a file of a run folder"
        if not isinstance(entry, dict) or set(entry) != {"bytes", "sha256"}:
            return f"has files[{name!r}] = {show(entry)}; it must be {{'bytes': N, 'sha256': HEX}}"
        size, digest = entry["bytes"], entry["sha256"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            return f"has files[{name!r}].bytes = {show(size)}; it must be an integer >= 0"
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            return f"has files[{name!r}].sha256 = {show(digest)}; it must be 64 hex digits"
    return None


def read_manifest(folder: str | os.PathLike, verify: bool = True) -> dict:
    """The manifest of a complete run folder, checked for form (every field present with its
    type); with ``verify``, every file it lists must be there with its recorded size and hash.
    Anything else is a :class:`~workbench.spec.SpecError` naming the file."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        error = SpecError(
            [Problem("run", f"{str(folder)!r} is not a complete run folder (no {MANIFEST})")]
        )
        error.reason = f"no {MANIFEST}"
        raise error
    manifest = _read_json(path, "run")
    problem = _manifest_problem(manifest)
    if problem is not None:
        raise _refusal(path, problem, "run")
    if verify:
        for name, expected in manifest["files"].items():
            file = folder / name
            if not file.is_file():
                raise _refusal(file, "is missing", "run")
            if file.stat().st_size != expected["bytes"] or _sha256(file) != expected["sha256"]:
                raise _refusal(
                    file,
                    "differs from the one the run wrote (size or SHA-256 in manifest.json)",
                    "run",
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


def random_schema(network, encoder, *loaders) -> dict:
    """The form of :func:`random_state` for these objects (see :func:`conform`).  An object
    with its own ``runtime_state`` checks what it is given itself (its errors are refused
    through :meth:`Checkpoint.restoring`); generator states are byte tensors, some of which
    (per device) may not have been made yet."""

    def streams(obj):
        if hasattr(obj, "runtime_state"):
            return ANY
        return MapOf(str, TensorLike(torch.uint8, None))

    return {
        "torch": like(torch.get_rng_state()),
        "loaders": [
            like(loader.generator.get_state()) if loader.generator is not None else None
            for loader in loaders
        ],
        "encoder": streams(encoder),
        "network": {name: streams(m) for name, m in network.named_modules()},
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


# ------------------------------------------------------------------------- the form of a state
#
# A schema is plain data: a dict (exactly these keys, each conforming), a list or tuple (this
# length, element-wise), a tensor (one of this dtype and shape), a type (a value of it; float
# also takes an int), None, or one of the small classes below.


class _Mismatch(Exception):
    def __init__(self, where: str, message: str):
        super().__init__(f"{where or 'the state'} {message}")


class TensorLike:
    """A tensor of ``dtype`` and ``shape`` (None: any)."""

    def __init__(self, dtype: torch.dtype | None, shape: tuple | None):
        self.dtype = dtype
        self.shape = None if shape is None else tuple(shape)


class Maybe:
    """None, or what ``schema`` describes."""

    def __init__(self, schema):
        self.schema = schema


class ListOf:
    """A list whose every element conforms to ``schema``."""

    def __init__(self, schema):
        self.schema = schema


class MapOf:
    """A dict with keys of type ``key`` and every value conforming to ``schema``."""

    def __init__(self, key: type, schema):
        self.key, self.schema = key, schema


class SomeOf:
    """A dict holding some of the keys of ``schemas`` (a dict), each conforming to its own."""

    def __init__(self, schemas: dict):
        self.schemas = schemas


class Exactly:
    """This very value."""

    def __init__(self, value):
        self.value = value


class Between:
    """An integer from ``low`` to ``high`` (inclusive)."""

    def __init__(self, low: int, high: int):
        self.low, self.high = low, high


class AnyOf:
    """A value conforming to one of ``schemas``."""

    def __init__(self, *schemas):
        self.schemas = schemas


ANY = object()  # anything at all
NUMBER = AnyOf(int, float)  # float also takes an int (a loss of exactly 0, say)
SCALAR = AnyOf(int, float, bool, str, None)


def like(value):
    """The schema of ``value`` as it is: the same keys, lengths, types, tensor dtypes and
    shapes.  Build the schema of what a loop will save from what it would save now."""
    if isinstance(value, torch.Tensor):
        return TensorLike(value.dtype, value.shape)
    if isinstance(value, dict):
        return {k: like(v) for k, v in value.items()}
    if isinstance(value, list):
        return [like(v) for v in value]
    if isinstance(value, tuple):
        return tuple(like(v) for v in value)
    if value is None:
        return None
    if isinstance(value, float):
        return NUMBER
    return type(value)


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {list(value.shape)}"
    if value is None:
        return "null"
    return f"{type(value).__name__} {show(value)}"


def conform(value, schema, where: str = "") -> None:
    """Raise :class:`_Mismatch` (naming the place, e.g. ``network['hidden.weight']``) unless
    ``value`` has the form ``schema`` describes."""
    if schema is ANY:
        return
    if isinstance(schema, AnyOf):
        for option in schema.schemas:
            try:
                conform(value, option, where)
                return
            except _Mismatch:
                pass
        raise _Mismatch(where, f"is {_describe(value)}, which is not allowed here")
    if isinstance(schema, Maybe):
        if value is not None:
            conform(value, schema.schema, where)
        return
    if isinstance(schema, Exactly):
        if type(value) is not type(schema.value) or value != schema.value:
            raise _Mismatch(where, f"is {_describe(value)}; this run has {show(schema.value)}")
        return
    if isinstance(schema, Between):
        if type(value) is not int or not schema.low <= value <= schema.high:
            raise _Mismatch(
                where,
                f"is {_describe(value)}; it must be an integer from {schema.low} to {schema.high}",
            )
        return
    if isinstance(schema, TensorLike):
        if not isinstance(value, torch.Tensor):
            raise _Mismatch(where, f"is {_describe(value)}, not a tensor")
        if (schema.dtype is not None and value.dtype != schema.dtype) or (
            schema.shape is not None and tuple(value.shape) != schema.shape
        ):
            dtype = str(schema.dtype).removeprefix("torch.") if schema.dtype else "any dtype"
            shape = list(schema.shape) if schema.shape is not None else "any shape"
            raise _Mismatch(where, f"is {_describe(value)}; this run needs {dtype}, {shape}")
        return
    if isinstance(schema, (ListOf, list, tuple)):
        kind = tuple if isinstance(schema, tuple) else list
        if type(value) is not kind:
            raise _Mismatch(where, f"is {_describe(value)}, not a {kind.__name__}")
        if isinstance(schema, ListOf):
            for i, item in enumerate(value):
                conform(item, schema.schema, f"{where}[{i}]")
            return
        if len(value) != len(schema):
            raise _Mismatch(where, f"has {len(value)} items; this run has {len(schema)}")
        for i, (item, option) in enumerate(zip(value, schema)):
            conform(item, option, f"{where}[{i}]")
        return
    if isinstance(schema, (dict, MapOf, SomeOf)):
        if type(value) is not dict:
            raise _Mismatch(where, f"is {_describe(value)}, not an object")
        if isinstance(schema, MapOf):
            for key, item in value.items():
                if type(key) is not schema.key:
                    raise _Mismatch(where, f"has the key {show(key)}")
                conform(item, schema.schema, f"{where}[{key!r}]")
            return
        schemas = schema.schemas if isinstance(schema, SomeOf) else schema
        unknown = [k for k in value if k not in schemas]
        if unknown:
            raise _Mismatch(where, f"has the key {show(unknown[0])}, which this run does not")
        if isinstance(schema, dict):
            missing = [k for k in schema if k not in value]
            if missing:
                raise _Mismatch(where, f"has no {show(missing[0])}")
        for key, item in value.items():
            conform(item, schemas[key], f"{where}[{key!r}]" if where else str(key))
        return
    if schema is None:
        if value is not None:
            raise _Mismatch(where, f"is {_describe(value)}; it must be null")
        return
    if isinstance(schema, type):
        if type(value) is not schema:
            raise _Mismatch(where, f"is {_describe(value)}; it must be {schema.__name__}")
        return
    raise TypeError(f"not a schema: {schema!r}")


# ------------------------------------------------------------------------ encoding a state


_DTYPES = {  # what a checkpoint's tensors may be (by the name state.json records)
    name: getattr(torch, name)
    for name in (
        "float64",
        "float32",
        "float16",
        "bfloat16",
        "int64",
        "int32",
        "int16",
        "int8",
        "uint8",
        "bool",
    )
}
_TAGS = ("$tensor", "$tuple", "$float", "$items")
_MAX_DEPTH = 32  # a saved state nests a handful of levels


def _encode(value, tensors: dict, path: str):
    """``value`` as JSON data, its tensors moved into ``tensors`` under flat names."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, torch.Tensor):
        name, n = path or "tensor", 1
        while name in tensors:  # keys with "/" in them could meet another path
            name, n = f"{path}#{n}", n + 1
        tensors[name] = value.detach().to("cpu", copy=True).contiguous()
        dtype = str(value.dtype).removeprefix("torch.")
        if dtype not in _DTYPES:
            raise TypeError(f"{name}: a {dtype} tensor cannot be saved in a checkpoint")
        return {"$tensor": name, "dtype": dtype, "shape": list(value.shape)}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v, tensors, f"{path}/{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, tensors, f"{path}/{i}") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: _encode(v, tensors, f"{path}/{k}" if path else k) for k, v in value.items()}
        items = []
        for k, v in value.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"{path}: a key {k!r} cannot be saved in a checkpoint")
            items.append([k, _encode(v, tensors, f"{path}/{k}" if path else str(k))])
        return {"$items": items}
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # a numpy scalar
        return _encode(value.item(), tensors, path)
    raise TypeError(f"{path}: a {type(value).__name__} cannot be saved in a checkpoint")


def _decode(node, tensors: dict, used: set, where: str, depth: int = 0):
    """The value :func:`_encode` encoded as ``node`` (raises :class:`_Mismatch`)."""
    if depth > _MAX_DEPTH:
        raise _Mismatch(where, f"is nested more than {_MAX_DEPTH} deep")
    if node is None or isinstance(node, (bool, str, int, float)):
        return node
    if isinstance(node, list):
        return [_decode(v, tensors, used, f"{where}[{i}]", depth + 1) for i, v in enumerate(node)]
    if not isinstance(node, dict):
        raise _Mismatch(where, f"is {_describe(node)}")  # not from json.loads
    tags = [k for k in node if k.startswith("$")]
    if not tags:
        return {
            k: _decode(v, tensors, used, f"{where}[{k!r}]" if where else k, depth + 1)
            for k, v in node.items()
        }
    tag = tags[0]
    if tag == "$tensor":
        if set(node) != {"$tensor", "dtype", "shape"}:
            raise _Mismatch(where, "is a tensor reference without exactly $tensor, dtype, shape")
        name, dtype, shape = node["$tensor"], node["dtype"], node["shape"]
        if not isinstance(name, str) or name not in tensors:
            raise _Mismatch(where, f"names the tensor {show(name)}, which the tensor file lacks")
        if name in used:
            raise _Mismatch(where, f"names the tensor {name!r} a second time")
        tensor = tensors[name]
        if (
            dtype not in _DTYPES
            or tensor.dtype != _DTYPES[dtype]
            or not isinstance(shape, list)
            or list(tensor.shape) != shape
        ):
            raise _Mismatch(
                where,
                f"is recorded as {show(dtype)} {show(shape)}; the tensor file holds "
                f"{_describe(tensor)}",
            )
        used.add(name)
        return tensor
    if tag not in _TAGS:
        raise _Mismatch(where, f"is an object with the unknown key {show(tag)}")
    if len(node) != 1:
        raise _Mismatch(where, f"is an object with {tag} and other keys")
    content = node[tag]
    if tag == "$float":
        if content not in ("nan", "inf", "-inf"):
            raise _Mismatch(where, f"is the float {show(content)}; only nan, inf, -inf are tagged")
        return float(content)
    if not isinstance(content, list):
        raise _Mismatch(where, f"holds {_describe(content)} under {tag}, not a list")
    if tag == "$tuple":
        return tuple(
            _decode(v, tensors, used, f"{where}[{i}]", depth + 1) for i, v in enumerate(content)
        )
    out = {}
    for item in content:  # $items: [[key, value], ...]
        if not isinstance(item, list) or len(item) != 2:
            raise _Mismatch(where, f"holds {_describe(item)} under $items, not [key, value]")
        key = item[0]
        if isinstance(key, bool) or not isinstance(key, (str, int)) or key in out:
            raise _Mismatch(where, f"has the key {show(key)} (not a string or integer, or twice)")
        out[key] = _decode(item[1], tensors, used, f"{where}[{key!r}]", depth + 1)
    return out


# ------------------------------------------------------------------------------------ checkpoints


def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    """Where a run that will be written to ``run_dir`` keeps its checkpoint."""
    run_dir = Path(run_dir)
    return run_dir.parent / f".{run_dir.name}{CHECKPOINT_SUFFIX}"


class Checkpoint:
    """A folder holding the state of an unfinished run (see the module docstring).

    ``every``: save after every ``every``-th epoch (and never after a stopped, partial one).
    The training loop calls :meth:`load` once before its first epoch and :meth:`save` after
    epochs; ``experiment.train`` writes the run's configuration beside the state
    (``run.json``)."""

    STATE = "state.json"
    LEGACY = "state.pt"  # the pickled state of earlier versions: refused, never loaded
    RUN = "run.json"
    FORMAT = "workbench-checkpoint"
    VERSION = 1
    _TENSORS = re.compile(r"state-(\d{6,})\.safetensors")
    _SEALED = ("tensors", "run_sha256", "state")  # the parts of state.json its sha256 covers

    def __init__(self, folder: str | os.PathLike, every: int = 1):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise SpecError([Problem("checkpoint_every", f"{every!r} must be an integer >= 1")])
        self.folder = Path(folder)
        self.every = every

    @property
    def path(self) -> Path:
        return self.folder / self.STATE

    def exists(self) -> bool:
        """Whether a state was saved (by this version or, in ``state.pt``, an earlier one)."""
        return self.path.is_file() or (self.folder / self.LEGACY).is_file()

    def due(self, epoch: int) -> bool:
        return epoch % self.every == 0

    def refusal(self, reason: str, name: str | None = None) -> SpecError:
        """The error for this checkpoint's file ``name`` (default ``state.json``)."""
        return _refusal(self.folder / (name or self.STATE), reason)

    # -------------------------------------------------------------------------------- loading

    def load(self, expected=None) -> dict | None:
        """The last saved state, or None when nothing was saved yet.  Both files are checked
        (see the module docstring); with ``expected`` (a schema, see :func:`like`) so is the
        state's form against what this run would save.  Any fault: a
        :class:`~workbench.spec.SpecError` naming the file."""
        if not self.path.is_file():
            if (self.folder / self.LEGACY).is_file():
                raise self.refusal(
                    "was written by an earlier version of the workbench (a pickled state, "
                    "which this version does not load); start the run again (delete "
                    f"{str(self.folder)!r})",
                    self.LEGACY,
                )
            return None
        document = _read_json(self.path, "checkpoint")
        if not isinstance(document, dict) or document.get("format") != self.FORMAT:
            raise self.refusal(f'is not a workbench checkpoint (no "format": {self.FORMAT!r})')
        if document.get("version") != self.VERSION:
            raise self.refusal(
                f"has format version {show(document.get('version'))}; this version of the "
                f"workbench reads {self.VERSION}"
            )
        missing = [k for k in self._SEALED + ("sha256",) if k not in document]
        if missing:
            raise self.refusal(f"has no {missing[0]!r}")
        try:
            sealed = _seal(document, self._SEALED)
        except (ValueError, RecursionError):
            sealed = None
        if sealed != document["sha256"]:
            raise self.refusal("was changed after it was saved (its SHA-256 differs)")
        tensors = self._load_tensors(document["tensors"])
        if document["run_sha256"] is not None:
            run = self.folder / self.RUN
            if not run.is_file():
                raise self.refusal("is missing", self.RUN)
            if _sha256(run) != document["run_sha256"]:
                raise self.refusal(
                    "differs from the one this state was saved with (SHA-256 in state.json)",
                    self.RUN,
                )
        used: set = set()
        try:
            state = _decode(document["state"], tensors, used, "")
        except _Mismatch as exc:
            raise self.refusal(f"is not a valid state: {exc}") from None
        unused = sorted(set(tensors) - used)
        if unused:
            raise self.refusal(f"does not refer to the tensor {unused[0]!r} of its tensor file")
        if not isinstance(state, dict):
            raise self.refusal(f"holds {_describe(state)} as its state, not an object")
        if expected is not None:
            try:
                conform(state, expected)
            except _Mismatch as exc:
                raise self.refusal(f"does not hold this run's state: {exc}") from None
        return state

    def _load_tensors(self, entry) -> dict:
        if (
            not isinstance(entry, dict)
            or set(entry) != {"file", "bytes", "sha256"}
            or not isinstance(entry["file"], str)
            or not self._TENSORS.fullmatch(entry["file"])
        ):
            raise self.refusal(f"has tensors = {show(entry)}; it must name a state-N.safetensors")
        path = self.folder / entry["file"]
        if not path.is_file():
            raise self.refusal("is missing", entry["file"])
        data = path.read_bytes()
        if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise self.refusal(
                "differs from the one state.json was saved with (size or SHA-256)", entry["file"]
            )
        try:
            return load_tensors(data)
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise self.refusal(f"is not a safetensors file ({first})", entry["file"]) from None

    @contextlib.contextmanager
    def restoring(self):
        """Around putting a loaded state into the network, optimiser and streams: an error
        there (a state that passed :meth:`load` but still does not fit) becomes a refusal
        naming ``state.json``, not a traceback."""
        try:
            yield
        except SpecError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
            text = str(exc).strip()
            first = text.splitlines()[0] if text else ""
            raise self.refusal(
                f"does not fit this run ({type(exc).__name__}: {show(first, 160)})"
            ) from None

    # --------------------------------------------------------------------------------- saving

    def save(self, state: dict) -> None:
        """Replace the saved state by ``state``: its tensors to the next generation's
        safetensors file, the rest to ``state.json`` (each written, synced, renamed; see the
        module docstring), then the previous generation's file is deleted."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tensors: dict = {}
        tree = _encode(state, tensors, "")
        blob = save_tensors(tensors)
        generations = [
            int(m.group(1)) for p in self.folder.iterdir() if (m := self._TENSORS.fullmatch(p.name))
        ]
        name = f"state-{max(generations, default=0) + 1:06d}.safetensors"
        _write_atomic(self.folder / name, blob)
        run = self.folder / self.RUN
        document = {
            "format": self.FORMAT,
            "version": self.VERSION,
            "workbench_version": __version__,
            "tensors": {
                "file": name,
                "bytes": len(blob),
                "sha256": hashlib.sha256(blob).hexdigest(),
            },
            "run_sha256": _sha256(run) if run.is_file() else None,
            "state": tree,
        }
        document["sha256"] = _seal(document, self._SEALED)
        _write_atomic(self.path, json.dumps(document, indent=1, allow_nan=False).encode())
        _sync_folder(self.folder)
        for path in self.folder.iterdir():  # the previous generation, and killed writes' files
            if (self._TENSORS.fullmatch(path.name) and path.name != name) or (
                path.name.startswith(".") and path.name.endswith(".part")
            ):
                path.unlink(missing_ok=True)

    def write_json(self, name: str, data: dict) -> None:
        """Write ``name`` (the run's configuration, say) into the folder, atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.folder / name, json.dumps(data, indent=2).encode())
        _sync_folder(self.folder)

    def read_json(self, name: str) -> dict | None:
        """The JSON document ``name`` of the folder (None when there is none); a file that is
        not a JSON object is refused, naming it."""
        path = self.folder / name
        if not path.is_file():
            return None
        data = _read_json(path, "checkpoint")
        if not isinstance(data, dict):
            raise self.refusal(f"holds {_describe(data)}, not an object", name)
        return data

    def run_settings(self) -> dict | None:
        """``run.json`` (``{"config": {...}, "spec": {...} or null}``), checked for form."""
        saved = self.read_json(self.RUN)
        if saved is None:
            return None
        if set(saved) != {"config", "spec"}:
            raise self.refusal(
                f"has the keys {sorted(saved)}; it must have config and spec", self.RUN
            )
        if not isinstance(saved["config"], dict):
            raise self.refusal(
                f"has config = {_describe(saved['config'])}, not an object", self.RUN
            )
        if saved["spec"] is not None and not isinstance(saved["spec"], dict):
            raise self.refusal(f"has spec = {_describe(saved['spec'])}, not an object", self.RUN)
        return saved


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


def _hidden(path: Path, store: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(store).parts)


def list_runs(store: str | os.PathLike) -> pd.DataFrame:
    """One row per run folder under ``store`` and per checkpoint; ``run`` is the path relative
    to ``store``.  ``status``: "complete"; "corrupt: FILE why" for a run folder whose files no
    longer match its manifest (or whose manifest is unreadable); "resumable at epoch N of M";
    "corrupt checkpoint: FILE why" for a checkpoint whose files are not whole (JSON, hashes,
    tensor file: what a flipped byte, a cut-short or a missing file shows; whether its state
    fits the network is checked when it is resumed, which builds the network); "old
    checkpoint: ..." for one of an earlier version; "leftover checkpoint" for one beside its
    complete run folder (a process killed between writing the run and deleting its
    checkpoint).  A bad entry is listed, never raised: one broken run must not hide the others
    (``workbench runs`` exits 0 and shows them all)."""
    store = Path(store)
    if not store.is_dir():
        raise SpecError([Problem("store", f"{str(store)!r} is not a folder")])
    rows = []
    for manifest_path in sorted(store.rglob(MANIFEST)):
        folder = manifest_path.parent
        if _hidden(folder, store):
            continue  # a temporary folder of a write in progress (or killed)
        manifest, status, metrics = {}, "complete", {}
        try:
            manifest = read_manifest(folder)
        except SpecError as exc:
            status = f"corrupt: {getattr(exc, 'reason', exc)}"
            with contextlib.suppress(SpecError):
                manifest = read_manifest(folder, verify=False)
        else:
            with contextlib.suppress(SpecError):
                metrics = _read_json(folder / "metrics.json", "run")
            if not isinstance(metrics, dict):
                metrics = {}
        rows.append(
            {
                **{k: manifest.get(k) for k in RUN_COLUMNS},
                "run": str(folder.relative_to(store)),
                "status": status,
                "epochs": metrics.get("epochs"),
                "test_accuracy": metrics.get("test_accuracy"),
            }
        )
    for folder in sorted(store.rglob(f".*{CHECKPOINT_SUFFIX}")):
        checkpoint = Checkpoint(folder)
        if not folder.is_dir() or _hidden(folder.parent, store) or not checkpoint.exists():
            continue  # nothing saved yet (killed in its first epoch)
        run = folder.parent / folder.name[1 : -len(CHECKPOINT_SUFFIX)]
        row = {"run": str(run.relative_to(store))}
        try:
            settings = checkpoint.run_settings() or {"config": {}}
            config = settings["config"]
            saved = checkpoint.load()
            training = config.get("training")
            epochs = training.get("epochs") if isinstance(training, dict) else None
            epoch = saved.get("epoch")
            if type(epoch) is not int or epoch < 1 or (type(epochs) is int and epoch > epochs):
                raise checkpoint.refusal(f"has epoch = {show(epoch)}, not one of 1..{epochs}")
            status = f"resumable at epoch {epoch} of {epochs}"
            if (run / MANIFEST).is_file():
                status = "leftover checkpoint (the run folder is complete; it can be deleted)"
            row.update(
                {k: config.get(k) for k in ("dataset", "algorithm", "backend", "seed")},
                epochs=epoch,
                workbench_version=checkpoint.read_json(Checkpoint.STATE).get("workbench_version"),
            )
        except SpecError as exc:
            reason = getattr(exc, "reason", str(exc))
            kind = "old" if reason.startswith(Checkpoint.LEGACY) else "corrupt"
            status = f"{kind} checkpoint: {reason}"
        row["status"] = status
        rows.append(row)
    return pd.DataFrame(rows, columns=list(RUN_COLUMNS))


__all__ = [
    "Checkpoint",
    "checkpoint_dir",
    "conform",
    "like",
    "list_runs",
    "read_manifest",
    "write_manifest",
]
