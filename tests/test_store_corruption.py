"""Corrupted checkpoints and manifests (issue 18): every kind is refused with a SpecError that
names the file, and through the CLI with exit code 2 and one line on stderr; `workbench runs`
lists the broken entry (with why) instead of failing on it.  Nothing is ever unpickled."""

import hashlib
import json
import shutil

import pytest
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import load_file
from safetensors.torch import save as save_tensors

from workbench import experiment, store
from workbench.cli import main
from workbench.spec import SpecError
from workbench.store import Checkpoint, checkpoint_dir, list_runs, read_manifest
from workbench.training import BatchEnd, StopSignal


def tiny_config(epochs: int = 2):
    config = experiment.reference_config("digits", "surrogate", "float", seed=3)
    config.hidden, config.n_steps = [12], 10
    config.training["epochs"] = epochs
    return config


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A store holding a complete run folder ``done`` and the checkpoint of a run ``run``
    stopped in its second epoch (saved after the first), plus the weights an uninterrupted
    run of that configuration ends with."""
    root = tmp_path_factory.mktemp("pristine")
    reference = experiment.train(tiny_config())
    experiment.save_run(reference, root / "done")
    stop = StopSignal()

    def stop_in_epoch_2(event):
        if isinstance(event, BatchEnd) and event.epoch == 2:
            stop.set()

    experiment.train(
        tiny_config(),
        callbacks=[stop_in_epoch_2],
        stop=stop,
        checkpoint=checkpoint_dir(root / "run"),
    )
    weights = {k: v.clone() for k, v in reference.network.state_dict().items()}
    return root, weights


@pytest.fixture
def copy(pristine, tmp_path):
    """A fresh copy of the pristine store to corrupt."""
    root = tmp_path / "store"
    shutil.copytree(pristine[0], root)
    return root


def _document(folder):
    return json.loads((folder / Checkpoint.STATE).read_text())


def _tensor_file(folder):
    return folder / _document(folder)["tensors"]["file"]


def flip_byte(path, where: float = 0.5):
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(path, keep: float = 0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def resave(folder, edit):
    """Load the state, ``edit`` it, save it back with every hash consistent: what a buggy
    writer (or another version) would leave, which only the form check can refuse."""
    checkpoint = Checkpoint(folder)
    state = checkpoint.load()
    edit(state)
    checkpoint.save(state)


def reseal(folder, edit_document=None, edit_tensors=None, blob=None):
    """Edit ``state.json`` and/or the tensors, then make every size and SHA-256 match again."""
    document = _document(folder)
    tensor_file = folder / document["tensors"]["file"]
    if blob is None:
        tensors = load_tensors(tensor_file.read_bytes())
        if edit_tensors is not None:
            edit_tensors(tensors)
        blob = save_tensors(tensors)
    tensor_file.write_bytes(blob)
    document["tensors"].update(bytes=len(blob), sha256=hashlib.sha256(blob).hexdigest())
    if edit_document is not None:
        edit_document(document)
    document["sha256"] = store._seal(document, Checkpoint._SEALED)
    (folder / Checkpoint.STATE).write_text(json.dumps(document))


def _edit_text(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _legacy(folder):
    state = Checkpoint(folder).load()
    for path in folder.iterdir():
        if path.name != Checkpoint.RUN:
            path.unlink()
    torch.save(state, folder / Checkpoint.LEGACY)  # the format of earlier versions


def _nested(folder):
    (folder / Checkpoint.STATE).write_text("[" * 100_000 + "]" * 100_000)


def _weight_key(state):
    return next(iter(state["network"]))


def _wrong_shape(state):
    key = _weight_key(state)
    state["network"][key] = torch.zeros(state["network"][key].shape[0] + 1, 3)


def _wrong_dtype(state):
    key = _weight_key(state)
    state["network"][key] = state["network"][key].double()


def _moment_shape(state):
    state["optimiser"]["state"][0]["exp_avg"] = torch.zeros(2, 2)


def _wrong_stream(state):
    state["random"]["torch"] = torch.zeros(7, dtype=torch.uint8)


def _history_longer(state):
    state["history"] = state["history"] * 2


def _tag(name, value):
    def edit(document):
        document["state"][name] = value

    return edit


def _rename_reference(document):
    first = next(iter(document["state"]["network"]))
    document["state"]["network"][first]["$tensor"] = "no/such/tensor"


# kind -> (corrupt(folder), the file the refusal must name)
CHECKPOINT_CORRUPTIONS = {
    "state.json byte flipped": (lambda f: flip_byte(f / "state.json"), "state.json"),
    "state.json byte flipped at its end": (
        lambda f: flip_byte(f / "state.json", 0.995),
        "state.json",
    ),
    "state.json truncated": (lambda f: truncate(f / "state.json"), "state.json"),
    "state.json empty": (lambda f: (f / "state.json").write_text(""), "state.json"),
    "state.json not JSON": (lambda f: (f / "state.json").write_text("{not json"), "state.json"),
    "state.json not UTF-8": (lambda f: (f / "state.json").write_bytes(b"\xff\xfe{}"), "state.json"),
    "state.json a list": (lambda f: (f / "state.json").write_text("[1, 2]"), "state.json"),
    "state.json nested 100000 deep": (_nested, "state.json"),
    "state.json value edited by hand": (
        lambda f: _edit_text(f / "state.json", '"epoch": 1,', '"epoch": 2,'),
        "state.json",
    ),
    "state.json NaN literal": (
        lambda f: _edit_text(f / "state.json", '"epoch": 1,', '"epoch": NaN,'),
        "state.json",
    ),
    "state.json of a newer format version": (
        lambda f: reseal(f, edit_document=lambda d: d.update(version=2)),
        "state.json",
    ),
    "state.json tensor file outside the folder": (
        lambda f: reseal(f, edit_document=lambda d: d["tensors"].update(file="../x.safetensors")),
        "state.json",
    ),
    "state.json unknown tag": (
        lambda f: reseal(f, edit_document=_tag("best", {"$pickle": "gASVCAAAAAAAAAB9lC4="})),
        "state.json",
    ),
    "state.json dangling tensor reference": (
        lambda f: reseal(f, edit_document=_rename_reference),
        "state.json",
    ),
    "tensor file has a tensor state.json never names": (
        lambda f: reseal(f, edit_tensors=lambda t: t.update(extra=torch.zeros(3))),
        "state.json",
    ),
    "tensor file missing": (lambda f: _tensor_file(f).unlink(), "state-000001.safetensors"),
    "tensor file byte flipped": (lambda f: flip_byte(_tensor_file(f)), "state-000001.safetensors"),
    "tensor file truncated": (lambda f: truncate(_tensor_file(f)), "state-000001.safetensors"),
    "tensor file of another state (wrong hash)": (
        lambda f: _tensor_file(f).write_bytes(save_tensors({"x": torch.zeros(3)})),
        "state-000001.safetensors",
    ),
    "tensor file not safetensors (hashes consistent)": (
        lambda f: reseal(f, blob=b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage}" + bytes(64)),
        "state-000001.safetensors",
    ),
    "run.json edited": (
        lambda f: _edit_text(f / "run.json", '"seed": 3', '"seed": 4'),
        "run.json",
    ),
    "run.json not JSON": (lambda f: truncate(f / "run.json"), "run.json"),
    "run.json missing": (lambda f: (f / "run.json").unlink(), "run.json"),
    "run.json settings refused": (
        lambda f: (f / "run.json").write_text(json.dumps({"config": {"hidden": -1}, "spec": None})),
        "run.json",
    ),
    "tensor of the wrong shape": (lambda f: resave(f, _wrong_shape), "state.json"),
    "tensor of the wrong dtype": (lambda f: resave(f, _wrong_dtype), "state.json"),
    "optimiser moment of the wrong shape": (lambda f: resave(f, _moment_shape), "state.json"),
    "random stream of the wrong size": (lambda f: resave(f, _wrong_stream), "state.json"),
    "missing key": (lambda f: resave(f, lambda s: s.pop("optimiser")), "state.json"),
    "unknown key": (lambda f: resave(f, lambda s: s.update(extra=1)), "state.json"),
    "edited type (epoch a string)": (
        lambda f: resave(f, lambda s: s.update(epoch="1")),
        "state.json",
    ),
    "edited type (best a list)": (
        lambda f: resave(f, lambda s: s.update(best=[0.5])),
        "state.json",
    ),
    "epoch beyond the run's epochs": (
        lambda f: resave(f, lambda s: s.update(epoch=99)),
        "state.json",
    ),
    "history contradicting the epoch": (lambda f: resave(f, _history_longer), "state.json"),
    "old pickled format (state.pt)": (_legacy, "state.pt"),
}


# whole files (every hash matches) holding a state that does not fit this run's network
FORM_ONLY = {
    "tensor of the wrong shape",
    "tensor of the wrong dtype",
    "optimiser moment of the wrong shape",
    "random stream of the wrong size",
    "missing key",
    "unknown key",
    "edited type (best a list)",
    "history contradicting the epoch",
}


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@pytest.mark.parametrize("kind", list(CHECKPOINT_CORRUPTIONS))
def test_a_corrupt_checkpoint_is_refused_naming_the_file(kind, copy, capsys):
    corrupt, name = CHECKPOINT_CORRUPTIONS[kind]
    folder = checkpoint_dir(copy / "run")
    corrupt(folder)
    with pytest.raises(SpecError) as refused:
        experiment.resume(folder)
    assert f"{name} " in str(refused.value) and str(folder) in str(refused.value)
    if kind == "old pickled format (state.pt)":
        assert "earlier version" in str(refused.value)
    # the CLI: one line, exit 2, nothing written
    capsys.readouterr()
    assert main(["resume", str(copy / "run"), "--quiet"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("error: ") and f"{name} " in line
    assert not (copy / "run").exists()
    # `runs` lists it, with why, beside the complete run
    # `runs` lists it beside the complete run: as corrupt where its files are not whole; a
    # state that is whole but does not fit the network is found when resumed (it builds one)
    rows = list_runs(copy).set_index("run")["status"]
    if kind in FORM_ONLY:
        assert rows["run"] == "resumable at epoch 1 of 2"
    else:
        kind_of = "old" if name == "state.pt" else "corrupt"
        assert rows["run"].startswith(f"{kind_of} checkpoint: {name} "), rows["run"]
    assert rows["done"] == "complete"
    assert main(["runs", str(copy)]) == 0
    assert rows["run"].split(":")[0] in capsys.readouterr().out


def test_the_pristine_checkpoint_resumes_to_the_uninterrupted_weights(pristine, copy, capsys):
    assert Checkpoint(checkpoint_dir(copy / "run")).load()["epoch"] == 1
    assert list_runs(copy).set_index("run")["status"]["run"] == "resumable at epoch 1 of 2"
    assert main(["resume", str(copy / "run"), "--quiet"]) == 0
    resumed = load_file(copy / "run" / "weights.safetensors")
    assert resumed.keys() == pristine[1].keys()
    assert all(torch.equal(resumed[k], pristine[1][k]) for k in resumed)
    assert not checkpoint_dir(copy / "run").exists()
    # a second resume of the finished run is refused in one line
    capsys.readouterr()
    assert main(["resume", str(copy / "run"), "--quiet"]) == 2
    assert "complete run already" in _one_line(capsys.readouterr().err)


def test_a_checkpoint_is_two_files_and_nothing_pickled(copy):
    folder = checkpoint_dir(copy / "run")
    assert sorted(p.name for p in folder.iterdir()) == [
        "run.json",
        "state-000001.safetensors",
        "state.json",
    ]
    document = _document(folder)
    assert document["format"] == Checkpoint.FORMAT and document["state"]["epoch"] == 1
    # a second save switches generation and deletes the first
    checkpoint = Checkpoint(folder)
    checkpoint.save(checkpoint.load())
    assert sorted(p.name for p in folder.iterdir()) == [
        "run.json",
        "state-000002.safetensors",
        "state.json",
    ]


def test_a_save_killed_before_state_json_is_renamed_leaves_the_previous_state(copy, monkeypatch):
    """The one switching step is renaming state.json: dying before it (after the new tensor
    file was written) leaves the old, consistent pair."""
    folder = checkpoint_dir(copy / "run")
    checkpoint = Checkpoint(folder)
    before = checkpoint.load()
    changed = dict(before, stale=1)
    real = store._write_atomic

    def die_at_state_json(path, data):
        if path.name == Checkpoint.STATE:
            raise KeyboardInterrupt  # as if killed here
        real(path, data)

    monkeypatch.setattr(store, "_write_atomic", die_at_state_json)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(changed)
    monkeypatch.undo()
    assert (folder / "state-000002.safetensors").exists()  # the new generation, unused
    assert checkpoint.load()["stale"] == before["stale"]
    checkpoint.save(changed)  # the next save goes on from there and tidies up
    assert checkpoint.load()["stale"] == 1
    assert sorted(p.name for p in folder.iterdir()) == [
        "run.json",
        "state-000003.safetensors",
        "state.json",
    ]


def test_a_checkpoint_beside_its_complete_run_is_listed_as_leftover(copy):
    shutil.copytree(checkpoint_dir(copy / "run"), checkpoint_dir(copy / "done"))
    statuses = list_runs(copy)["status"].tolist()
    assert statuses.count("complete") == 1 and statuses.count("resumable at epoch 1 of 2") == 1
    assert [s for s in statuses if s.startswith("leftover checkpoint")] == [
        "leftover checkpoint (the run folder is complete; it can be deleted)"
    ]


# ------------------------------------------------------------------------------ manifests


def _manifest_edit(edit):
    def corrupt(folder):
        path = folder / "manifest.json"
        manifest = json.loads(path.read_text())
        edit(manifest)
        path.write_text(json.dumps(manifest))

    return corrupt


def _first_file(folder):
    return folder / sorted(json.loads((folder / "manifest.json").read_text())["files"])[0]


MANIFEST_CORRUPTIONS = {
    "not JSON": (lambda f: (f / "manifest.json").write_text("{files"), "manifest.json"),
    "truncated": (lambda f: truncate(f / "manifest.json"), "manifest.json"),
    "byte flipped": (lambda f: flip_byte(f / "manifest.json", 0.02), "manifest.json"),
    "a list": (lambda f: (f / "manifest.json").write_text("[]"), "manifest.json"),
    "NaN literal": (
        lambda f: _edit_text(f / "manifest.json", '"seed": 3', '"seed": NaN'),
        "manifest.json",
    ),
    "no files": (_manifest_edit(lambda m: m.pop("files")), "manifest.json"),
    "files a list": (_manifest_edit(lambda m: m.update(files=["spec.json"])), "manifest.json"),
    "file entry without sha256": (
        _manifest_edit(lambda m: m["files"]["spec.json"].pop("sha256")),
        "manifest.json",
    ),
    "bytes a string": (
        _manifest_edit(lambda m: m["files"]["spec.json"].update(bytes="12")),
        "manifest.json",
    ),
    "sha256 not hex": (
        _manifest_edit(lambda m: m["files"]["spec.json"].update(sha256="z" * 64)),
        "manifest.json",
    ),
    "seed a string": (_manifest_edit(lambda m: m.update(seed="3")), "manifest.json"),
    "no spec_hash": (_manifest_edit(lambda m: m.pop("spec_hash")), "manifest.json"),
    "a file outside the folder": (
        _manifest_edit(lambda m: m["files"].update({"../x": {"bytes": 0, "sha256": "0" * 64}})),
        "manifest.json",
    ),
    "listed file missing": (lambda f: (f / "spec.json").unlink(), "spec.json"),
    "listed file byte flipped": (lambda f: flip_byte(f / "metrics.json"), "metrics.json"),
    "listed file truncated": (lambda f: truncate(f / "weights.safetensors"), "weights.safetensors"),
}


@pytest.mark.parametrize("kind", list(MANIFEST_CORRUPTIONS))
def test_a_corrupt_manifest_is_refused_naming_the_file(kind, copy, capsys):
    corrupt, name = MANIFEST_CORRUPTIONS[kind]
    folder = copy / "done"
    corrupt(folder)
    with pytest.raises(SpecError) as refused:
        read_manifest(folder)
    assert f"{name} " in str(refused.value) and str(folder) in str(refused.value)
    with pytest.raises(SpecError):
        experiment.load_run(folder)
    capsys.readouterr()
    assert main(["evaluate", str(folder)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("error: ") and name in line
    rows = list_runs(copy).set_index("run")["status"]
    assert rows["done"].startswith(f"corrupt: {name} "), rows["done"]
    assert rows["run"] == "resumable at epoch 1 of 2"  # the others are still listed
    assert main(["runs", str(copy)]) == 0
    assert "corrupt: " in capsys.readouterr().out


def test_a_run_folder_without_manifest_is_not_a_run(copy, capsys):
    (copy / "done" / "manifest.json").unlink()
    with pytest.raises(SpecError, match="not a complete run folder"):
        read_manifest(copy / "done")
    assert main(["evaluate", str(copy / "done")]) == 2
    assert "manifest.json" in _one_line(capsys.readouterr().err)
    assert list(list_runs(copy)["run"]) == ["run"]
