"""`genie` and `python -m jobs.<name>` are the same entry points, and --help explains each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jobs.cli import SUBCOMMANDS

GENIE = str(Path(sys.executable).parent / "genie")  # the console script this venv installed


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_genie_help_lists_every_command():
    result = run(GENIE, "--help")
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert f"  {name} " in result.stdout


def test_unknown_command_fails_with_usage():
    result = run(GENIE, "trian")
    assert result.returncode == 2
    assert "unknown command 'trian'" in result.stderr
    assert "commands:" in result.stderr


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_each_command_help_explains_with_an_example(name):
    module = SUBCOMMANDS[name][0]
    via_cli = run(GENIE, name, "--help")
    via_module = run(sys.executable, "-m", module, "--help")
    assert via_cli.returncode == 0, via_cli.stderr
    assert via_module.returncode == 0, via_module.stderr
    assert "example" in via_cli.stdout.lower()
    assert f"usage: genie {name}" in via_cli.stdout
    # Same options either way: the CLI only dispatches.
    assert via_cli.stdout.split("options:")[1] == via_module.stdout.split("options:")[1]
