"""Labs: notebooks whose exercises check themselves, and a teacher's version from the same source.

A lab notebook is written once, with the solutions in it, each between two marker lines::

    # BEGIN SOLUTION
    tau_mem = 12.0
    # END SOLUTION

followed by a check cell that calls :func:`check`.  From that source,

- :func:`teacher_version` drops the marker lines (solutions stay), and
- :func:`student_version` replaces each marked block by ``# YOUR CODE HERE`` and a line that
  raises ``NotImplementedError``, so a student runs into the exercise instead of past it.

``workbench labs SRC_DIR OUT_DIR`` writes ``OUT_DIR/student/`` and ``OUT_DIR/teacher/`` for every
notebook of ``SRC_DIR``.  The suite executes the source (that is, the teacher's version).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
PLACEHOLDER = "# YOUR CODE HERE"


class LabError(ValueError):
    """A notebook whose solution markers do not pair up."""


def check(condition: bool, passed: str, hint: str) -> None:
    """Tell the student whether an exercise is solved: print ``passed``, or raise an
    ``AssertionError`` carrying ``hint``."""
    if not condition:
        raise AssertionError(f"Not yet: {hint}")
    print(f"Correct: {passed}")


def _source(cell: dict) -> list[str]:
    source = cell.get("source", "")
    return (source if isinstance(source, str) else "".join(source)).split("\n")


def _blocks(lines: list[str], where: str) -> list[tuple[int, int]]:
    """``(begin, end)`` line indices of each solution block in ``lines``."""
    out, begin = [], None
    for k, line in enumerate(lines):
        marker = line.strip()
        if marker == BEGIN:
            if begin is not None:
                raise LabError(f"{where}: line {k + 1}: {BEGIN!r} inside a solution block")
            begin = k
        elif marker == END:
            if begin is None:
                raise LabError(f"{where}: line {k + 1}: {END!r} without {BEGIN!r}")
            out.append((begin, k))
            begin = None
    if begin is not None:
        raise LabError(f"{where}: line {begin + 1}: {BEGIN!r} is never closed by {END!r}")
    return out


def solutions(nb: dict) -> int:
    """How many solution blocks ``nb`` has (checking that every marker pairs up)."""
    return sum(
        len(_blocks(_source(cell), f"cell {index}"))
        for index, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code"
    )


def _transform(nb: dict, student: bool) -> dict:
    out = copy.deepcopy(nb)
    for index, cell in enumerate(out["cells"]):
        if cell["cell_type"] != "code":
            continue
        lines = _source(cell)
        blocks = _blocks(lines, f"cell {index}")
        if not blocks:
            continue
        kept, start = [], 0
        for begin, end in blocks:
            kept += lines[start:begin]
            if student:
                indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
                kept += [
                    indent + PLACEHOLDER,
                    indent + 'raise NotImplementedError("exercise: replace this line")',
                ]
            else:
                kept += lines[begin + 1 : end]
            start = end + 1
        kept += lines[start:]
        cell["source"] = "\n".join(kept)
        cell["outputs"], cell["execution_count"] = [], None
    return out


def student_version(nb: dict) -> dict:
    """``nb`` with every solution block replaced by a placeholder that raises."""
    return _transform(nb, student=True)


def teacher_version(nb: dict) -> dict:
    """``nb`` with the solutions and without the marker lines."""
    return _transform(nb, student=False)


def write_versions(src: str | Path, out: str | Path) -> list[Path]:
    """Write ``out/student/NAME`` and ``out/teacher/NAME`` for every notebook in ``src`` that
    has exercises; returns the files written."""
    written = []
    for path in sorted(Path(src).glob("*.ipynb")):
        nb = json.loads(path.read_text())
        if not solutions(nb):
            continue
        for kind, make in (("student", student_version), ("teacher", teacher_version)):
            target = Path(out) / kind / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(make(nb), indent=1) + "\n")
            written.append(target)
    return written
