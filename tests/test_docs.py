"""The docs run: every python block of the listed pages is executed in order, and an output block
(```text) right after a python block must equal what that block prints.

The pages run in a separate process so that what they declare (a demo primitive) does not leak
into the primitive table the other tests iterate over.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["docs/ir.md", "docs/solve.md", "README.md"]
_FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)

_RUNNER = r"""
import contextlib, io, json, sys
blocks = json.load(sys.stdin)
namespace = {"__name__": "__docs__"}
outputs = []
for i, code in enumerate(blocks):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, f"<{sys.argv[1]} block {i + 1}>", "exec"), namespace)
    outputs.append(buf.getvalue())
print(json.dumps(outputs))
"""


def blocks(text: str):
    """(code, expected output or None) for each python block, in order."""
    fences = [(m.group(1), m.group(2), m.start(), m.end()) for m in _FENCE.finditer(text)]
    out = []
    for k, (lang, body, _, end) in enumerate(fences):
        if lang != "python":
            continue
        expected = None
        if k + 1 < len(fences):
            nlang, nbody, nstart, _ = fences[k + 1]
            if nlang == "text" and not text[end:nstart].strip():
                expected = nbody
        out.append((body, expected))
    return out


def test_block_parser():
    page = "x\n```python\nprint(1)\n```\n\n```text\n1\n```\ntext\n```python\npass\n```\n"
    assert blocks(page) == [("print(1)\n", "1\n"), ("pass\n", None)]


@pytest.mark.parametrize("page", PAGES)
def test_page_runs_and_prints_what_it_shows(page):
    found = blocks((ROOT / page).read_text())
    assert found, f"{page} has no python blocks"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("SCIML_DEBUG", None)
    proc = subprocess.run([sys.executable, "-c", _RUNNER, page], input=json.dumps(
        [code for code, _ in found]), capture_output=True, text=True, cwd=ROOT, env=env,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = json.loads(proc.stdout.strip().splitlines()[-1])
    for i, ((code, expected), got) in enumerate(zip(found, outputs)):
        if expected is not None:
            assert got.rstrip() == expected.rstrip(), f"{page} block {i + 1}:\n{code}"


def test_gomd_equation_table_points_at_definitions():
    """docs/gomd.md maps each equation to ``file.py:line``; each line is a ``def`` (so that the
    table does not drift when the code around it changes)."""
    text = (ROOT / "docs/gomd.md").read_text()
    table = text[text.index("## Equations and where they are stated"):]
    refs = 0
    for row in table.splitlines():
        if not row.startswith("|"):
            continue
        current = None
        for m in re.finditer(r"`(?:(?:cases/gomd/)?([a-z_]+\.py))?:(\d+)`", row):
            current = m.group(1) or current
            line = (ROOT / "cases/gomd" / current).read_text().splitlines()[int(m.group(2)) - 1]
            assert line.startswith("def "), f"{current}:{m.group(2)} is not a def: {line!r}"
            refs += 1
    assert refs >= 30
