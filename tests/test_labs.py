"""Labs: student and teacher versions from one source, and self-checking exercises."""

import json
from pathlib import Path

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
    for path in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")):
        solutions(json.loads(path.read_text()))  # raises LabError naming the cell


NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
LAB_NUMBERS = [f"{n:02d}" for n in (*range(4, 11), 12, 13)]


@pytest.mark.parametrize("number", LAB_NUMBERS)
def test_each_lab_has_checked_exercises_and_a_student_version_without_answers(number):
    paths = sorted(NOTEBOOKS.glob(f"{number}_*.ipynb"))
    assert len(paths) == 1, f"notebook {number} is missing (or there are several)"
    nb = json.loads(paths[0].read_text())
    assert solutions(nb) >= 2, f"{paths[0].name}: a lab needs at least two exercises"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in code]
    # every exercise is followed by a cell that checks it
    exercise_cells = [k for k, s in enumerate(sources) if "# BEGIN SOLUTION" in s]
    for k in exercise_cells:
        assert any("check(" in s for s in sources[k:]), f"{paths[0].name}: exercise unchecked"
    answers = [  # each solution block's code lines, comments aside
        [line.strip() for line in block.split("# END SOLUTION")[0].split("\n")]
        for s in sources
        for block in s.split("# BEGIN SOLUTION")[1:]
    ]
    answers = [[x for x in a if x and not x.startswith("#")] for a in answers]
    student = [
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in student_version(nb)["cells"]
        if c["cell_type"] == "code"
    ]
    student_lines = [line.strip() for source in student for line in source.split("\n")]
    assert not any("SOLUTION" in line for line in student_lines)
    # No answer survives whole (a single line of one, `with torch.no_grad():` say, may also be
    # part of the lesson outside the exercise).
    flat = "\n".join(student_lines)
    leaked = [a for a in answers if a and "\n".join(a) in flat]
    assert not leaked, f"{paths[0].name}: the student version shows answers: {leaked}"
    assert student_lines.count(PLACEHOLDER) == solutions(nb)
