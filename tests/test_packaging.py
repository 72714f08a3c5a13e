"""The project's set-up files agree with each other, and the layers import downwards only."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_lists_the_same_packages_and_bounds_as_pyproject():
    project = _pyproject()["project"]
    extras = project["optional-dependencies"]
    wanted = {
        _name(r): r.replace(" ", "")
        for r in project["dependencies"]
        + extras["app"]
        + extras["cluster"]
        + extras["nir"]
        + extras["test"]
        if _name(r) != project["name"]  # the test extra includes the other extras
    }
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    listed = {}
    for entry in env["dependencies"]:
        items = entry["pip"] if isinstance(entry, dict) else [entry]
        for item in items:
            if item.startswith("-e") or _name(item) in ("python", "pip"):
                continue
            listed[_name(item)] = item.replace(" ", "")
    assert set(listed) == set(wanted)
    for name, requirement in wanted.items():
        if name == "torch":  # pyproject gives a floor; the environment pins the CPU build
            assert listed[name] == "torch==2.13.0"
        else:
            assert listed[name] == requirement, name


def test_constraints_pin_the_cpu_build_of_torch():
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    assert "torch==2.13.0" in [line.strip() for line in lines]


def test_the_test_extra_includes_every_other_extra_and_nir_is_pinned():
    extras = _pyproject()["project"]["optional-dependencies"]
    assert extras["nir"] == ["nir>=1.0"]
    included = next(r for r in extras["test"] if _name(r) == "snn-workbench")
    assert set(included[included.index("[") + 1 : -1].split(",")) == set(extras) - {"test"}
    pins = [line.strip() for line in (ROOT / "constraints.txt").read_text().splitlines()]
    assert "nir==1.0.8" in pins
    bench = [line.strip() for line in (ROOT / "requirements-bench.txt").read_text().splitlines()]
    assert "nir==1.0.8" in bench  # the peers' nirtorch needs it; the same pin


def test_ci_installs_the_peer_libraries_without_touching_torch():
    script = (ROOT / ".ci" / "run").read_text()
    setup = script.index("make setup")
    peers = script.index("--no-deps snntorch==1.0.0 norse==1.1.0")
    bench = script.index("-r requirements-bench.txt -c constraints.txt")
    check = script.index("2.13.0+cpu")
    assert setup < peers < bench < check < script.index("make test")


def test_hardware_and_widgets_install_as_subpackages():
    setuptools = _pyproject()["tool"]["setuptools"]
    assert setuptools["package-dir"]["workbench.hardware"] == "hardware"
    assert setuptools["package-dir"]["workbench.widgets"] == "widgets"
    import workbench.hardware
    import workbench.widgets

    assert Path(workbench.hardware.__file__).parent == ROOT / "hardware"
    assert Path(workbench.widgets.__file__).parent == ROOT / "widgets"


def test_the_core_imports_no_ui_library():
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "The compute core imports no UI library KEPT" in done.stdout


def test_importing_the_core_loads_no_ui_module():
    code = (
        "import sys, workbench, workbench.experiment, workbench.cli; "
        "ui = {'panel', 'holoviews', 'bokeh', 'ipywidgets', 'param'} & set(sys.modules); "
        "print(sorted(ui))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_emulators_import_only_the_core():
    import ast

    forbidden = {"panel", "holoviews", "bokeh", "ipywidgets", "hvplot", "param"}
    for path in (ROOT / "hardware").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"
                assert not name.startswith("workbench.widgets"), f"{path.name} imports {name}"


def test_the_checks_and_the_command_line_import_no_torch():
    # A bad option is refused before torch and Numba load (issue 18: within a second).
    code = (
        "import sys, workbench, workbench.spec, workbench.limits, workbench.catalog, "
        "workbench.neuron_models, workbench.cli; "
        "print(sorted({'torch', 'numba'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_torch_free_names_are_the_registries_names():
    from workbench import catalog, experiment, neuron_models, neurons
    from workbench.algorithms import ALGORITHMS
    from workbench.backends import available_backends
    from workbench.data import ENCODERS

    assert sorted(catalog.ALGORITHM_NAMES) == sorted(ALGORITHMS)
    assert sorted(catalog.DATASET_NAMES) == sorted(experiment.DATASET_REFERENCES)
    assert catalog.backend_names() == available_backends()
    assert set(catalog.STATIC_ENCODERS) <= set(ENCODERS)
    assert experiment.STATIC_ENCODERS is catalog.STATIC_ENCODERS
    assert neurons.MODELS is neuron_models.MODELS
    assert neurons.SURROGATES is neuron_models.SURROGATES


def test_the_package_loads_its_torch_names_on_first_use():
    import workbench
    import workbench.backends

    assert workbench.build is workbench.backends.build
    assert workbench.RunResult is workbench.backends.RunResult
    assert workbench.available_backends is workbench.backends.available_backends
    assert {"build", "RunResult", "available_backends"} <= set(dir(workbench))
    assert all(hasattr(workbench, name) for name in workbench.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nonesuch'"):
        workbench.nonesuch  # noqa: B018


def test_modules_that_use_numba_import_workbench_kernels_first():
    # workbench.kernels sizes Numba's thread pool from torch's thread count when it is the first
    # to import Numba; importing the package no longer does that for every module, so each one
    # that imports Numba imports workbench.kernels before it.
    import ast

    for path in [*(ROOT / "workbench").rglob("*.py"), *(ROOT / "hardware").rglob("*.py")]:
        if path.name == "kernels.py" and path.parent.name == "workbench":
            continue
        kernels = numba = None
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            else:
                continue
            if kernels is None and "workbench.kernels" in names:
                kernels = node.lineno
            if numba is None and any(n.split(".")[0] == "numba" for n in names):
                numba = node.lineno
        if numba is not None:
            assert kernels is not None and kernels < numba, path.relative_to(ROOT)
