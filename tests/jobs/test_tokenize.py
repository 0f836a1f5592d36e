"""`genie tokenize` argument checks: every path through pipelines/storage.py, bad ones refused
before Ray or MLflow are touched. (Tokenizing itself runs in the training chain tests, local
and on S3.)"""

from __future__ import annotations

import pytest

from jobs.tokenize import main


def run(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    return capsys.readouterr().err


def test_bad_paths_are_refused_before_any_work(tmp_path, capsys, monkeypatch):
    clips = tmp_path / "clips"
    clips.mkdir()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert "--clips: " in run(["--clips", str(tmp_path / "nope"), "--out", str(tmp_path)], capsys)
    assert f"--out: {a_file} is a file" in run(
        ["--clips", str(clips), "--out", str(a_file)], capsys
    )
    # In a job from a bare `ray job submit`, a relative path would land in Ray's copy: refused.
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")
    monkeypatch.delenv("GENIE_SUBMIT_DIR", raising=False)
    err = run(["--clips", str(clips), "--out", "tokens-here"], capsys)
    assert "--out 'tokens-here' is relative" in err
    assert not (tmp_path / "tokens-here").exists()


def test_a_finished_output_on_s3_is_not_redone(s3_server, tmp_path, capsys):
    from pipelines import storage

    out = s3_server.uri("tokenize-done")
    storage.write_bytes(storage.join(out, "_SUCCESS"), b"")
    clips = tmp_path / "clips"
    clips.mkdir()
    assert main(["--clips", str(clips), "--out", out]) == 0
    assert f"{out} is complete already ({out}/_SUCCESS)" in capsys.readouterr().out
