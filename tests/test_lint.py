"""The code's form is checked with the suite: ruff's linter (pyflakes, pycodestyle, import order) and its formatter,
and mypy on the typed modules, configured once in pyproject.toml (both come with the test extra)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff_finds_nothing(command):
    done = subprocess.run([sys.executable, "-m", "ruff", *command, "src", "tests"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_nothing_in_the_typed_modules():
    """The modules pyproject.toml lists under [tool.mypy] (typed results and what reads them) type-check clean: a
    renamed result field is an error here, not a broken page at run time."""
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
