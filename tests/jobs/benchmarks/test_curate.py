"""`python -m jobs.bench curate` as a user runs it, at a tiny size, on its own local Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_the_bench_scores_every_clip_the_bare_loop_decodes_from_a_relative_workdir(tmp_path):
    """The bench's manifest once named its sources relative to the working folder, which a
    manifest reads relative to its own folder: every source errored and no ratio came out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "MLFLOW"))}
    env["PYTHONPATH"] = str(REPO)
    argv = [sys.executable, "-m", "jobs.bench", "curate", "--sources", "2", "--seconds", "16.5",
            "--width", "320", "--height", "180", "--workdir", "bench", "--json", "figures.json"]  # fmt: skip
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads((tmp_path / "figures.json").read_text())
    for scale in ("x1", "x4"):
        assert figures[scale]["pipeline"]["clips"] == figures[scale]["bare"]["clips"] > 0
        assert figures[scale]["ratio"] > 0 and figures[scale]["cpu_ratio"] > 0
    assert "steady state (4x minus 1x): wall ratio" in done.stdout
