"""Job-submit semantics: through `ray job submit` on the real local platform, a relative path
means the folder the job was submitted from (`genie submit`) or is refused clearly (a bare
`ray job submit`); FVD weights that a job cannot see fail `genie eval` naming them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.clips import write_clips
from tests.conftest import REPO

pytestmark = pytest.mark.slow

TRAIN = ["python", "-m", "jobs.train", "--stage", "tokenizer", "data=clips", "storage_path=runs",
         "name=rel", "steps=1", "window=4", "batch_size=2", "log_every=1", "eval_every=1",
         "checkpoint_every=1", "windows_per_clip=1"]  # fmt: skip


def test_relative_paths_mean_the_submitting_folder(local_platform, tmp_path):
    write_clips(tmp_path / "clips", count=3)
    env = dict(local_platform.env)
    submitted = subprocess.run(
        [sys.executable, "-m", "jobs.submit", "--", *TRAIN],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    receipt = json.loads((tmp_path / "runs" / "rel" / "result.json").read_text())
    assert receipt["metrics"]["step"] == 1
    assert (tmp_path / "runs" / "rel" / "model" / "model.json").is_file()

    # A bare `ray job submit` runs in Ray's copy of the repo: the relative path is refused.
    bare = subprocess.run(
        ["ray", "job", "submit", "--working-dir", str(REPO), "--",
         *[a if a != "name=rel" else "name=bare" for a in TRAIN]],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert bare.returncode != 0
    assert "config field 'data' 'clips' is relative" in bare.stdout + bare.stderr
    assert not (tmp_path / "runs" / "bare").exists()


def test_eval_without_fvd_weights_fails_naming_them(tmp_path, monkeypatch, capsys):
    from jobs.evaluate import main

    clips = write_clips(tmp_path / "clips", count=2)
    monkeypatch.setenv("GENIE_I3D_WEIGHTS", str(tmp_path / "missing.pt"))
    with pytest.raises(SystemExit) as exit_:
        main(["--clips", str(clips), "--frames", "10"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"FVD needs the I3D weights, not found at {tmp_path / 'missing.pt'}" in err
