"""`make gpu-check` in its CPU dry mode (tiny preset, a few steps): the code a GPU node runs,
run here so it cannot rot. The figures themselves need a GPU."""

from __future__ import annotations

import json

import pytest

from jobs.benchmarks.gpu_check import main

pytestmark = pytest.mark.slow


def test_gpu_check_dry_run_measures_every_figure(ray_cluster, tmp_path, capsys):
    out = tmp_path / "gpu-check.json"
    assert main(["--dry", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [s["stage"] for s in results["stages"]] == ["tokenizer", "lam", "dynamics"]
    for stage in results["stages"]:
        assert stage["plain_samples_per_s"] > 0 and stage["flops_per_sample"] > 0
    assert results["ray_train"]["ray_vs_plain"] > 0
    assert results["play_frames_per_s"] > 0
    assert results["block"]["parameters"] > 0
    assert "Ray Train vs plain loop" in capsys.readouterr().out
