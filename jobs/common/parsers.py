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


def add_scored_clips(parser: argparse.ArgumentParser) -> None:
    """`--clips` and `--actions`, as the commands that score models on held-out curated clips
    (against the game's true actions, where the footage has action logs) take them."""
    parser.add_argument("--clips", required=True, help="curated clips (Parquet folder)")
    parser.add_argument(
        "--actions",
        default=None,
        help="the source manifest the clips were curated from: where its `actions_uri` column "
        "names a video's action log, that log gives the true actions (default, and for videos "
        "it leaves out: <stem>.actions.parquet beside each video)",
    )


def resolve_scored_clips(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Resolve `args.clips`, `args.actions` and (where the command has it) `args.out` in place
    (relative paths mean the folder the job was submitted from: pipelines/storage.py); a path
    that cannot be resolved, or an input that does not exist, ends the command with an error
    naming its flag."""
    from pipelines import storage

    try:
        args.clips = storage.resolve(args.clips, "--clips")
        if getattr(args, "out", None):
            args.out = storage.resolve(args.out, "--out")
        args.actions = args.actions and storage.resolve(args.actions, "--actions")
    except storage.StoragePathError as error:
        parser.error(str(error))
    for flag, path in (("--clips", args.clips), ("--actions", args.actions)):
        if path and not storage.exists(path):
            parser.error(f"{flag} {path} does not exist")
