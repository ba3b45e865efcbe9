"""Every command's --help teaches: each option says what it is, each command shows an example."""

import typer

from facelab.cli import app


def all_commands(group, prefix=()):
    """(name, command) of every command under ``group`` (typer carries its own click: groups are told by their commands)."""
    for name in group.list_commands(None):  # the study group builds its commands when asked
        command = group.get_command(None, name)
        if hasattr(command, "commands"):
            yield from all_commands(command, (*prefix, name))
        else:
            yield " ".join((*prefix, name)), command


def test_every_option_of_every_command_has_a_description():
    root = typer.main.get_command(app)
    missing = [
        f"facelab {name} {param.opts[0]}"
        for name, command in all_commands(root)
        for param in command.params
        if param.param_type_name == "option" and param.opts[0] != "--help" and not (param.help or "").strip()
    ]
    assert not missing, missing


def test_every_command_shows_an_example():
    root = typer.main.get_command(app)
    commands = dict(all_commands(root))
    assert len(commands) >= 37 and "study inversion" in commands
    without = [name for name, command in commands.items() if "Example: facelab " + name.split()[0] not in (command.help or "")]
    assert not without, without


def test_a_studys_scale_options_name_the_protocols_defaults():
    root = typer.main.get_command(app)
    epochs = next(p for p in dict(all_commands(root))["study inversion"].params if p.name == "epochs")
    assert "Default: the protocol's (30)." in epochs.help and "else 3" not in epochs.help
