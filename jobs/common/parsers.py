"""The argument parser every `genie` command starts from."""

from __future__ import annotations

import argparse


def command_parser(
    prog: str | None, description: str | None, epilog: str
) -> argparse.ArgumentParser:
    """A command's parser: its module docstring as the description and its examples as the
    epilog, both printed as written (`--help` keeps their line breaks)."""
    return argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
