"""Labs: student and teacher versions from one source, and self-checking exercises."""

import json

import nbformat
import pytest

from workbench.labs import (
    PLACEHOLDER,
    LabError,
    check,
    solutions,
    student_version,
    teacher_version,
    write_versions,
)

EXERCISE = "x = 1\nif x:\n    # BEGIN SOLUTION\n    tau = 12.0\n    # END SOLUTION\ny = 2"


def lab() -> dict:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("Set tau.\n# BEGIN SOLUTION"),  # markdown is left alone
        nbformat.v4.new_code_cell(EXERCISE),
        nbformat.v4.new_code_cell("check(tau == 12.0, 'tau', 'try again')"),
    ]
    return nb


def test_the_student_version_hides_the_solution_behind_a_raising_placeholder():
    student = student_version(lab())
    source = student["cells"][1]["source"]
    assert "12.0" not in source and "SOLUTION" not in source
    assert source.split("\n") == [
        "x = 1",
        "if x:",
        "    " + PLACEHOLDER,
        '    raise NotImplementedError("exercise: replace this line")',
        "y = 2",
    ]
    assert student["cells"][0]["source"] == lab()["cells"][0]["source"]
    with pytest.raises(NotImplementedError):
        exec(source, {})


def test_the_teacher_version_keeps_the_solution_without_markers():
    source = teacher_version(lab())["cells"][1]["source"]
    assert source == "x = 1\nif x:\n    tau = 12.0\ny = 2"


def test_unpaired_markers_are_refused_with_the_cell_and_line():
    nb = lab()
    nb.cells[1].source = "# BEGIN SOLUTION\nx = 1"
    with pytest.raises(LabError, match="cell 1: line 1: '# BEGIN SOLUTION' is never closed"):
        solutions(nb)
    nb.cells[1].source = "x = 1\n# END SOLUTION"
    with pytest.raises(LabError, match="cell 1: line 2: '# END SOLUTION' without"):
        student_version(nb)


def test_check_tells_the_student(capsys):
    check(True, "tau is right", "look at the decay")
    assert "Correct: tau is right" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="Not yet: look at the decay"):
        check(False, "tau is right", "look at the decay")


def test_write_versions_writes_both_for_notebooks_with_exercises(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    nbformat.write(lab(), src / "04_lab.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), src / "01_plain.ipynb")
    written = write_versions(src, tmp_path / "out")
    from workbench.cli import main

    assert main(["labs", str(src), str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "teacher" / "04_lab.ipynb").exists()
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == [
        "student/04_lab.ipynb",
        "teacher/04_lab.ipynb",
    ]
    student = json.loads((tmp_path / "out" / "student" / "04_lab.ipynb").read_text())
    assert PLACEHOLDER in student["cells"][1]["source"]
    nbformat.validate(nbformat.reads(json.dumps(student), as_version=4))


def test_every_committed_notebooks_markers_pair_up():
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")):
        solutions(json.loads(path.read_text()))  # raises LabError naming the cell
