"""Curation of a hostile folder: every hostile file a security review tried, beside two good
videos, curated by `genie curate run` on a fresh local Ray; the peak memory of the whole run
(the job and every Ray process under it, sampled every 0.1 s) is the figure.

The folder holds a 16000x16000 16-bit PNG renamed `.mp4` and the same inside a QuickTime file
(2 GB decoded each), a two-frame file with a 5 h timestamp gap, a file name that is not UTF-8,
a FIFO, a dangling symlink, symlinks to their own folder, a symlink ring, symlinks out of the
folder, hidden and `_` names, an `.mp3` and a text file. The run must finish, account for
every entry (inputs = accepted + rejected + errored + skipped), curate both good videos and
write nothing outside --out.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from jobs.benchmarks.curate import gameplay_frames
from jobs.benchmarks.process_tree import ProcessTree
from jobs.common.parsers import command_parser
from pipelines.video import write_video

PEAK_LIMIT_MB = 1536.0  # what the acceptance asks of the whole run
NO_MLFLOW = "http://127.0.0.1:9"  # unreachable: the run keeps its metrics inside --out
EPILOG = """\
examples:
  python -m jobs.bench curate --hostile
  python -m jobs.benchmarks.curate_hostile --workdir /tmp/hostile --cpus 2
"""


def png_bomb(path: Path, side: int = 16000, container: str = "") -> Path:
    """A PNG of side x side RGBA pixels at 16 bits (2 GB decoded, all zeros: a few MB on disk),
    under whatever name `path` has; with container="mov", the PNG is the one frame of a
    QuickTime file (a whitelisted container around a bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    compressor = zlib.compressobj(1)
    zeros = bytes(64 << 20)
    remaining, parts = side * (1 + side * 8), []  # a filter byte and 8 bytes a pixel per row
    while remaining:
        take = min(len(zeros), remaining)
        parts.append(compressor.compress(memoryview(zeros)[:take]))
        remaining -= take
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 16, 6, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
    png += chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")
    if container != "mov":
        path.write_bytes(png)
        return path
    with av.open(str(path), "w", format="mov") as writer:
        stream = writer.add_stream("png", rate=1)
        stream.width = stream.height = side
        stream.pix_fmt = "rgba64be"
        packet = av.Packet(png)
        packet.stream, packet.pts, packet.dts, packet.time_base = stream, 0, 0, Fraction(1, 1)
        writer.mux(packet)
    return path


def timestamp_gap(path: Path, gap_s: float) -> Path:
    """Two frames `gap_s` apart: a few KB that say they last for hours."""
    frame = next(gameplay_frames(1, 30, 320, 180, 0))
    write_video(path, [frame, frame], 30, timestamps=[0.0, gap_s])
    return path


def hostile_folder(root: Path, outside: Path, good_seconds: float = 17.0) -> dict[str, tuple]:
    """Write the folder; returns entry name (relative, an undecodable byte shown as \\xNN) ->
    (expected verdict, reason), reason "*" where any reason will do."""
    (root / "sub").mkdir(parents=True)
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "elsewhere.mp4").write_bytes(b"outside the source folder\n")
    for name, seed in (("good1.mp4", 1), ("good2.mkv", 2)):
        write_video(root / name, gameplay_frames(good_seconds, 30, 320, 180, seed), 30)
    png_bomb(root / "bomb.mp4")
    png_bomb(root / "bomb.mov", container="mov")
    timestamp_gap(root / "gap.mp4", 5 * 3600.0)
    for name in ("notes.txt", "song.mp3", ".hidden.mp4", "_private.mp4", "sub/.DS_Store"):
        (root / name).write_bytes(b"not a video\n")
    os.mkfifo(root / "pipe.mp4")
    os.symlink(root / "missing.mp4", root / "dangling.mp4")
    os.symlink(".", root / "loop")
    os.symlink(".", root / "loop2")
    os.symlink(root, root / "sub" / "up")
    os.symlink(root / "ring2.mp4", root / "ring1.mp4")
    os.symlink(root / "ring1.mp4", root / "ring2.mp4")
    os.symlink(outside, root / "escape")
    os.symlink(outside / "elsewhere.mp4", root / "escape.mp4")
    with open(os.path.join(os.fsencode(root), b"caf\xe9.mp4"), "wb") as handle:
        handle.write((root / "good1.mp4").read_bytes())  # a video, under a Latin-1 name
    skipped = {
        "notes.txt": "not_a_video", "song.mp3": "not_a_video", ".hidden.mp4": "hidden",
        "_private.mp4": "hidden", "sub/.DS_Store": "hidden", "pipe.mp4": "not_a_regular_file",
        "dangling.mp4": "dangling_symlink", "loop": "symlink_to_folder",
        "loop2": "symlink_to_folder", "sub/up": "symlink_to_folder", "ring1.mp4": "symlink_loop",
        "ring2.mp4": "symlink_loop", "escape": "symlink_to_folder",
        "escape.mp4": "symlink_outside_source", "caf\\xe9.mp4": "undecodable_name",
    }  # fmt: skip
    return {
        "good1.mp4": ("accepted", ""),
        "good2.mkv": ("accepted", ""),
        "bomb.mp4": ("errored", "unsupported_container"),
        "bomb.mov": ("rejected", "too_large"),
        "gap.mp4": ("rejected", "*"),  # a still frame until the time budget: motion, or the limit
        **{name: ("skipped", reason) for name, reason in skipped.items()},
    }


def tree(folder: Path) -> dict[str, tuple]:
    """(type, size, mtime) of everything under `folder`, symlinks not followed."""
    found = {}
    for parent, folders, files in os.walk(folder):
        for name in folders + files:
            info = os.lstat(os.path.join(parent, name))
            key = os.fsencode(os.path.join(parent, name)).decode("utf-8", "backslashreplace")
            found[key] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found


def run_hostile(workdir: Path, cpus: int, extra: list[str]) -> dict[str, Any]:
    """Build the folder under `workdir`, curate it in a child process with its own Ray, and
    return the figures and checks."""
    workdir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="hostile-", dir=workdir))
    raw, out = base / "raw", base / "out"
    expected = hostile_folder(raw, base / "outside")
    before = tree(base)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "MLFLOW"))}
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    script = (
        "import ray, sys; from jobs.curate import main; "
        f"ray.init(num_cpus={cpus}, include_dashboard=False, logging_level='ERROR'); "
        "code = main(sys.argv[1:]); ray.shutdown(); sys.exit(code)"
    )
    argv = [sys.executable, "-c", script, "run", "--source", str(raw), "--out", str(out),
            f"mlflow_uri={NO_MLFLOW}", "decode.time_budget_s=2", *extra]  # fmt: skip
    started = time.monotonic()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with ProcessTree(process.pid, interval=0.1, memory=True) as usage:
        output = process.communicate(timeout=1800)[0].decode(errors="replace")
    seconds = time.monotonic() - started
    summary = json.loads((out / "summary.json").read_text()) if process.returncode == 0 else {}
    after = tree(base)
    outside_out = {
        path for path in set(before) | set(after)
        if not path.startswith(f"{out}/") and path != str(out)
        and before.get(path) != after.get(path)
    }  # fmt: skip
    return {
        "returncode": process.returncode,
        "seconds": round(seconds, 1),
        "peak_pss_mb": round(usage.peak_pss_mb, 1),
        "peak_rss_sum_mb": round(usage.peak_rss_sum_mb, 1),
        "peak_by_process_mb": {k: round(v) for k, v in sorted(usage.peak_by_process_mb.items())},
        "peak_limit_mb": PEAK_LIMIT_MB,
        "entries": len(expected),
        "sources": summary.get("sources"),
        "changed_outside_out": sorted(outside_out),
        "expected": expected,
        "folder": str(base),
        "output_tail": output[-3000:] if process.returncode else "",
    }


def run(argv: list[str]) -> int:
    parser = command_parser("python -m jobs.benchmarks.curate_hostile", __doc__, EPILOG)
    parser.add_argument("--workdir", default=".genie/bench/curate-hostile")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the run's own Ray")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args, extra = parser.parse_known_args(argv)
    figures = run_hostile(Path(args.workdir), args.cpus, extra)
    sources = figures["sources"] or {}
    print(f"\nhostile folder: {figures['entries']} entries, run exit {figures['returncode']} in "
          f"{figures['seconds']} s, peak memory of the whole run {figures['peak_pss_mb']:.0f} MB "
          f"PSS (limit {PEAK_LIMIT_MB:.0f} MB; the sum of RSS, which counts shared pages once "
          f"per process, peaked at {figures['peak_rss_sum_mb']:.0f} MB)")  # fmt: skip
    print(f"inputs {sources.get('inputs')} = {sources.get('accepted')} accepted + "
          f"{sources.get('rejected')} rejected + {sources.get('errored')} errored + "
          f"{sources.get('skipped')} skipped; changed outside --out: "
          f"{figures['changed_outside_out'] or 'nothing'}")  # fmt: skip
    if figures["output_tail"]:
        print(figures["output_tail"])
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))
    ok = (
        figures["returncode"] == 0
        and sources.get("inputs") == figures["entries"]
        and sources.get("conserved")
        and not figures["changed_outside_out"]
        and figures["peak_pss_mb"] < PEAK_LIMIT_MB
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
