"""A fuzz of the command line: every number option of every command given 0, a negative, a huge value and a word;
every command that opens a run given a missing folder and a folder that is no run. Each value outside the option's
declared range (its help's "Range: ...") ends in exit 2, one line naming the option, and the file tree as it was."""

import re
import sys
import typing

import pytest
import typer

from facelab import cli
from test_help import all_commands

FUZZ = (0, -1, 10**12, "abc")


def _number_kind(param):
    kind = param.type_descriptor.annotation
    inner = [t for t in typing.get_args(kind) if t is not type(None)]
    kind = inner[0] if inner else kind
    return kind if kind in (int, float) else None


def _declared_range(param) -> tuple[float, float]:
    """The range an option's help declares ("Range: 1 to 100000." / "Range: 0 or more.")."""
    found = re.search(r"Range: (-?[\d.e+-]+) (?:to (-?[\d.e+-]+)|or more)", param.help or "")
    assert found, f"{param.opts[0]} declares no range: {param.help!r}"
    return float(found[1].rstrip(".")), float(found[2].rstrip(".")) if found[2] else float("inf")


COMMANDS = dict(all_commands(typer.main.get_command(cli.app)))
NUMBER_OPTIONS = [
    (name, param)
    for name, command in COMMANDS.items()
    for param in command.params
    if param.param_type_name == "option" and _number_kind(param)
]
RUN_COMMANDS = [name for name, command in COMMANDS.items() if command.params and command.params[0].name in ("run", "runs", "run_a")]


REQUIRED = {"layer": "3", "attr": "Smiling", "by": "Male", "channels": "0,1,2"}  # a required option's value, as a user types one


def run_command_line(name: str, run) -> list:
    """``facelab NAME RUN ...`` with what else the command requires, as a user would type it."""
    params = COMMANDS[name].params
    given = [run if p.name == "run_b" else "synth:4#0" for p in params[1:] if p.param_type_name == "argument" and p.required]
    required = [x for p in params if p.param_type_name == "option" and p.required for x in (p.opts[0], REQUIRED[p.name])]
    return [*name.split(), run, *given, *required]


def facelab(argv, capsys, monkeypatch) -> tuple[int, list[str]]:
    """``facelab ARGV`` in this process (the fuzz runs hundreds): its exit status and its lines on stderr."""
    monkeypatch.setattr(sys, "argv", ["facelab", *map(str, argv)])
    with pytest.raises(SystemExit) as stopped:
        cli.main()
    return stopped.value.code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_the_fuzz_covers_the_command_line():
    assert len(NUMBER_OPTIONS) >= 80 and len(RUN_COMMANDS) >= 15, (len(NUMBER_OPTIONS), RUN_COMMANDS)


@pytest.mark.parametrize("name, param", NUMBER_OPTIONS, ids=[f"{n} {p.opts[0]}" for n, p in NUMBER_OPTIONS])
def test_a_number_outside_its_declared_range_is_one_line_and_writes_nothing(name, param, tmp_path, capsys, monkeypatch):
    lo, hi = _declared_range(param)
    monkeypatch.chdir(tmp_path)
    refused = [v for v in FUZZ if isinstance(v, str) or not lo <= v <= hi or (_number_kind(param) is int and v != int(v))]
    assert "abc" in refused
    for value in refused:
        code, lines = facelab([*name.split(), param.opts[0], value], capsys, monkeypatch)
        assert code == 2 and len(lines) == 1, (value, lines)
        assert param.opts[0] in lines[0] and "Traceback" not in lines[0], (value, lines)
    assert tree(tmp_path) == []


@pytest.mark.parametrize("name", RUN_COMMANDS)
def test_a_run_command_on_a_missing_or_foreign_folder_is_one_line_and_writes_nothing(name, tmp_path, capsys, monkeypatch):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("a user's file")
    before = tree(tmp_path)
    for folder in (tmp_path / "NORUN", foreign):
        code, lines = facelab(run_command_line(name, folder), capsys, monkeypatch)
        assert code == 2 and len(lines) == 1 and "not a facelab run" in lines[0], (folder.name, lines)
        assert tree(tmp_path) == before, folder.name
