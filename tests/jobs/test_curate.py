"""Curation on the real local Ray cluster and MLflow server, over real (crafted) video files.

Most tests share one `genie curate run` over a corpus of short sources, each made to trip one
rule, with short clips (20 frames = 2 s) so the whole file runs in well under three minutes; one
run checks the real output shape (160 frames, 160x90, 10 FPS).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import mlflow
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

import tests.curate_videos as cv
from jobs.benchmarks.curate_hostile import hostile_folder, tree
from jobs.curate import main as curate_main
from pipelines.curation.decode import DecodeSpec
from pipelines.curation.filters.quality import load_model
from pipelines.curation.filters.scene_cut import colour_histograms
from pipelines.curation.store import SCORED
from pipelines.video import read_frames

SHORT = ["decode.clip_frames=20", "decode.stride_frames=20"]  # 2 s clips at 10 FPS

# entry -> (verdict, reason); reasons of accepted sources are ""
EXPECTED = {
    "game1.mp4": ("accepted", ""),
    "game2.mkv": ("accepted", ""),
    "vfr.mp4": ("accepted", ""),
    "cut.mp4": ("accepted", ""),  # a cut at 1 s: the 1 s shot gives no clip, the other one
    "static.mp4": ("rejected", "motion"),
    "black.mp4": ("rejected", "blank"),
    "blurry.mp4": ("rejected", "blur"),
    "tiny.mp4": ("rejected", "resolution"),
    "zz_copy_of_game1.mp4": ("rejected", "duplicate"),  # listed after game1, smaller
    "short.mp4": ("rejected", "too_short"),
    "truncated.mp4": ("errored", "cannot_open"),  # the index at the end of the mp4 is gone
    "corrupt.mp4": ("errored", "cannot_open"),
    "empty.mp4": ("errored", "empty_file"),
    "notes.mp4": ("errored", "cannot_open"),
    "audio.mp4": ("errored", "no_video_stream"),
    "README.txt": ("skipped", "not_a_video"),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("raw")
    game1 = cv.gameplay(folder / "game1.mp4", 4.5, seed=1)
    cv.gameplay(folder / "game2.mkv", 4.5, seed=2)
    cv.vfr(folder / "vfr.mp4", 4.5, seed=3)
    cv.scene_cut(folder / "cut.mp4", 4.5, seeds=(4, 5), at=1.0)
    cv.static(folder / "static.mp4", 4.5, seed=6)
    cv.black(folder / "black.mp4", 4.5)
    cv.blurry(folder / "blurry.mp4", 4.5, seed=7)
    cv.tiny(folder / "tiny.mp4", 4.5, seed=8)
    cv.reencoded_copy(folder / "zz_copy_of_game1.mp4", 4.5, seed=1)
    cv.gameplay(folder / "short.mp4", 1.0, seed=9)
    cv.truncated(folder / "truncated.mp4", game1)
    cv.corrupt(folder / "corrupt.mp4", game1)
    cv.zero_bytes(folder / "empty.mp4")
    cv.not_a_video(folder / "notes.mp4")
    cv.audio_only(folder / "audio.mp4", 3.0)
    (folder / "README.txt").write_text("skipped: not a video suffix\n")
    return folder


def largest_change(frames: np.ndarray) -> float:
    """The largest colour-histogram change between consecutive frames (the cut score)."""
    histograms = colour_histograms(frames)
    return float(0.5 * np.abs(np.diff(histograms, axis=0)).sum(axis=1).max())


def run_cli(*argv: str) -> int:
    return curate_main(list(argv), prog="genie curate")


def read(out: Path, table: str, columns: list[str] | None = None) -> pa.Table:
    return pads.dataset(out / table, format="parquet").to_table(columns=columns)


def by_source(table: pa.Table) -> dict[str, dict]:
    return {Path(r["source_uri"]).name: r for r in table.to_pylist()}


@pytest.fixture(scope="module")
def curated(ray_cluster, mlflow_uri, corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("curated")
    code = run_cli(
        "run", "--source", str(corpus), "--out", str(out), f"mlflow_uri={mlflow_uri}",
        "wave_sources=8", *SHORT,
    )  # fmt: skip
    assert code == 0
    return out


# ---------------------------------------------------------------- the shared run


def test_every_entry_ends_accepted_rejected_errored_or_skipped(curated, corpus):
    sources = by_source(read(curated, "sources"))
    got = {name: (row["verdict"], row["reason"]) for name, row in sources.items()}
    assert got == EXPECTED
    summary = json.loads((curated / "summary.json").read_text())
    funnel = summary["sources"]
    assert funnel["inputs"] == len(EXPECTED) == len(list(corpus.iterdir()))
    assert funnel["skip_reasons"] == {"not_a_video": 1}
    verdicts = funnel["accepted"] + funnel["rejected"] + funnel["errored"] + funnel["skipped"]
    assert verdicts == funnel["inputs"]
    assert funnel["conserved"] and "holds" in summary["conservation"]
    errors = by_source(read(curated, "errors"))
    assert {n for n, (v, _) in EXPECTED.items() if v == "errored"} == set(errors)
    assert "InvalidDataError" in errors["notes.mp4"]["error"]
    assert "no video stream" in errors["audio.mp4"]["error"]


def test_each_filter_rejects_its_clip_and_keeps_gameplay(curated):
    rejects = read(curated, "rejects").to_pylist()
    reasons: dict[str, set[str]] = {}
    for row in rejects:
        reasons.setdefault(Path(row["source_uri"]).name, set()).add(row["reject_reason"])
    assert reasons["static.mp4"] == {"motion"}
    assert reasons["black.mp4"] == {"blank"}
    assert reasons["blurry.mp4"] == {"blur"}
    assert reasons["tiny.mp4"] == {"resolution"}
    assert reasons["zz_copy_of_game1.mp4"] == {"duplicate"}
    assert reasons["short.mp4"] == {"too_short"}
    assert "cut.mp4" not in reasons  # no clip holds the cut
    clips = read(curated, "clips", ["source_uri", "start_s", "keep", "reject_reason"]).to_pylist()
    kept = {(Path(c["source_uri"]).name, c["start_s"]) for c in clips}
    for name in ("game1.mp4", "game2.mkv", "vfr.mp4"):
        assert {(name, 0.0), (name, 2.0)} <= kept  # normal gameplay passes every filter
    assert {c for c in kept if c[0] == "cut.mp4"} == {("cut.mp4", 1.0), ("cut.mp4", 2.5)}
    assert all(c["keep"] and c["reject_reason"] == "" for c in clips)
    assert "video" not in read(curated, "rejects").column_names


def test_clip_rows_follow_the_contract(curated):
    clips = read(curated, "clips")
    ids = clips.column("clip_id").to_pylist()
    assert len(ids) == len(set(ids))
    row = clips.slice(0, 1).to_pylist()[0]
    assert (row["num_frames"], row["fps"], row["height"], row["width"]) == (20, 10, 90, 160)
    frames = read_frames(row["video"])
    assert frames.shape == (20, 90, 160, 3)
    for name in ("motion", "blank", "blur", "scene_cut", "resolution", "duplicate"):
        assert np.isfinite(clips.column(name).to_numpy()).all(), name


def test_summary_reports_and_mlflow_run(curated, mlflow_uri):
    summary = json.loads((curated / "summary.json").read_text())
    assert summary["clips"]["conserved"]
    assert [s["filter"] for s in summary["clips"]["funnel"]] == [
        "resolution", "blank", "motion", "scene_cut", "blur", "duplicate",
    ]  # fmt: skip
    for step in summary["clips"]["funnel"]:
        assert step["in"] - step["out"] == step["rejected"]
        # every filter caught a clip, but no clip crosses a cut at the default thresholds
        assert step["rejected"] >= 1 if step["filter"] != "scene_cut" else step["rejected"] == 0
    footage = summary["footage"]
    assert (footage["cuts"], footage["shots_shorter_than_a_clip"]) == (1, 2)  # + short.mp4
    assert footage["lost_to_cuts_s"] == 0.5  # cut.mp4: 1 s shot lost, 0.5 s tail recovered
    assert summary["throughput"]["score"]["clips_per_s_per_core"] > 0
    # the near-copy search's figures, not its 768 bit positions, in the report and its log line
    near_copies = json.loads((curated / "score.json").read_text())["near_copies"]
    assert near_copies["shards"] >= 1 and near_copies["table_rows"] > 0
    assert "tables" not in near_copies and "shard_rows" not in near_copies
    assert summary["code_version"]["package"] == "0.1.0"
    assert summary["config"]["decode"]["clip_frames"] == 20
    for name in ("histograms.png", "funnel.png", "contact_sheet.png"):
        assert (curated / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run = mlflow.MlflowClient(mlflow_uri).get_run(summary["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["dataset_version"] == summary["dataset_version"]
    assert run.data.metrics["sources.inputs"] == len(EXPECTED)
    artifacts = {a.path for a in mlflow.MlflowClient(mlflow_uri).list_artifacts(run.info.run_id)}
    assert {"summary.json", "manifest.json", "report"} <= artifacts
    experiment = mlflow.MlflowClient(mlflow_uri).get_experiment(run.info.experiment_id)
    assert experiment.name == "genie-curate"


def test_select_reproduces_run_without_decoding_and_fast(curated, mlflow_uri):
    before = json.loads((curated / "summary.json").read_text())
    kept_before = set(read(curated, "clips", ["clip_id"]).column("clip_id").to_pylist())
    assert run_cli("select", "--out", str(curated), f"mlflow_uri={mlflow_uri}", *SHORT) == 0
    after = json.loads((curated / "summary.json").read_text())
    kept_after = set(read(curated, "clips", ["clip_id"]).column("clip_id").to_pylist())
    assert kept_after == kept_before
    assert after["dataset_version"] == before["dataset_version"]
    score_s = before["throughput"]["score"]["seconds"]
    assert after["throughput"]["select_s"] * 20 <= score_s, (after["throughput"], score_s)


@pytest.fixture
def rescored(curated, tmp_path) -> Path:
    """A copy of the shared run's scored data, for selects that must not change `curated`."""
    out = tmp_path / "rescored"
    shutil.copytree(curated / SCORED, out / SCORED)
    shutil.copy(curated / "score.json", out / "score.json")
    return out


def test_select_where_and_yaml_thresholds_rethreshold(rescored, mlflow_uri, tmp_path):
    assert run_cli("select", "--out", str(rescored), "--where", "blur > 1e9",
                   f"mlflow_uri={mlflow_uri}") == 0  # fmt: skip
    summary = json.loads((rescored / "summary.json").read_text())
    assert summary["clips"]["kept"] == 0
    assert summary["clips"]["reject_reasons"] == {"blur": summary["clips"]["scored"]}
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text("blank: 0\nmotion: 0.3\n")
    assert run_cli("select", "--out", str(rescored), "--thresholds", str(thresholds),
                   f"mlflow_uri={mlflow_uri}") == 0  # fmt: skip
    summary = json.loads((rescored / "summary.json").read_text())
    reasons = summary["clips"]["reject_reasons"]
    assert "blank" not in reasons  # black clips now fail motion instead
    assert reasons["motion"] >= 6  # all but the tiny source, which fails resolution first


def test_select_reads_scored_data_of_the_version_before_shots(rescored, mlflow_uri):
    """Shards scored before sources were split into shots lack the shot columns: select still
    re-thresholds them (the footage funnel then counts no cuts)."""
    new_columns = ["shots", "short_shots", "frames_in_clips", "frames_lost_to_cuts"]
    for path in (rescored / SCORED).glob("part-*.parquet"):
        pq.write_table(pq.read_table(path).drop(new_columns), path)
    assert run_cli("select", "--out", str(rescored), f"mlflow_uri={mlflow_uri}", *SHORT) == 0
    summary = json.loads((rescored / "summary.json").read_text())
    assert summary["sources"]["inputs"] == len(EXPECTED) and summary["clips"]["kept"] > 0
    assert summary["footage"]["cuts"] == 0


def test_bad_config_fails_before_any_work(curated, tmp_path, capsys):
    out = tmp_path / "never"
    cases = {
        ("run", "--source", str(tmp_path / "missing"), "--out", str(out)): "does not exist",
        ("run", "--source", str(tmp_path), "--out", str(out), "thresholds.motion=-1"):
            "config field 'thresholds.motion' must be in [0, 1]",
        ("run", "--source", str(tmp_path), "--out", str(out), "decode.width=161"):
            "config field 'decode.width' must be even",
        ("run", "--source", str(tmp_path), "--out", str(out), "decode.fsp=10"):
            "did you mean 'decode.fps'",
        ("select", "--out", str(out), "--where", "motion >> 1"): "config field 'where'",
        ("select", "--out", str(out), "--where", "speed > 1"): "unknown score 'speed'",
        ("select", "--out", str(out), "--where", "quality > 0.5"): "needs a quality model",
        ("select", "--out", str(out), "--where", "duplicate < 3"): "duplicate condition",
        ("score", "--source", str(tmp_path), "--out", str(curated), "decode.clip_frames=40"):
            "config field 'decode.clip_frames' is 40 but the scored data",
        ("score", "--out", str(out)): "config field 'source' must be set",
        ("select", "--out", str(out), "--where", "(" * 2000 + "blur > 1" + ")" * 2000):
            "config field 'where': --where: nested deeper than 32",
    }  # fmt: skip
    for argv, message in cases.items():
        assert run_cli(*argv) == 2, argv
        assert message in capsys.readouterr().err, argv
    assert not out.exists()


def test_out_naming_a_file_fails_before_ray_starts(tmp_path):
    """It once passed validation and failed 12 s later, after Ray had started."""
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    for out, message in ((taken, "is a file"), (taken / "sub", "is under")):
        result = subprocess.run(
            [sys.executable, "-m", "jobs.curate", "run", "--source", str(tmp_path), "--out",
             str(out)],
            capture_output=True, text=True, timeout=120, env=env,
            cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
        assert result.returncode == 2, result.stderr[-2000:]
        assert f"config field 'out': {out} {message}" in result.stderr
        assert "ray" not in result.stdout.lower() + result.stderr.lower().replace("--", "")
    assert taken.read_text() == "a file, not a folder\n"


def test_quality_model_learns_from_labels_and_filters(rescored, mlflow_uri, tmp_path):
    clips = pads.dataset(rescored / SCORED, format="parquet").to_table(
        columns=["kind", "clip_id", "source_uri"], filter=pads.field("kind") == "clip"
    )
    good_sources = {"game1.mp4", "game2.mkv", "vfr.mp4"}
    bad_sources = {"static.mp4", "black.mp4", "blurry.mp4"}
    rows = [(r["clip_id"], Path(r["source_uri"]).name) for r in clips.to_pylist()]
    labelled = [(c, "good" if s in good_sources else "bad") for c, s in rows
                if s in good_sources | bad_sources]  # fmt: skip
    labels = tmp_path / "labels.csv"
    labels.write_text("clip_id,label\n" + "".join(f"{c},{lab}\n" for c, lab in labelled))
    model_path = tmp_path / "quality.json"
    assert run_cli("fit-quality", "--scored", str(rescored), "--labels", str(labels),
                   "--model", str(model_path), "--mlflow-uri", mlflow_uri) == 0  # fmt: skip
    model = load_model(model_path)
    assert model.trained_on["train_accuracy"] == 1.0
    assert run_cli("select", "--out", str(rescored), "--where", "quality >= 0.5",
                   f"quality_model={model_path}", f"mlflow_uri={mlflow_uri}") == 0  # fmt: skip
    kept = {Path(u).name for u in read(rescored, "clips", ["source_uri"]).column(0).to_pylist()}
    assert good_sources <= kept
    assert not (bad_sources & kept)


def test_killed_score_resumes_to_the_same_clips(curated, corpus, local_platform, tmp_path):
    """Kill a `score` driver after its first wave commits; the rerun finishes the rest and the
    clip ids equal those of the uninterrupted run, with no duplicates."""
    out = tmp_path / "killed"
    argv = [sys.executable, "-m", "jobs.curate", "score", "--source", str(corpus), "--out",
            str(out), "wave_sources=3", *SHORT]  # fmt: skip
    process = subprocess.Popen(
        argv, env=local_platform.env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    done = out / SCORED / "_done"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(done.glob("*.json"))) < 1:
        assert process.poll() is None, "score ended before it could be killed"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = len(list(done.glob("*.json")))
    assert 1 <= finished < 5, "killed midway: some waves done, not all"
    assert run_cli("score", "--source", str(corpus), "--out", str(out), "wave_sources=3",
                   *SHORT) == 0  # fmt: skip
    assert not list((out / SCORED / "_staging").rglob("*.parquet"))

    def scored_ids(root: Path) -> list[str]:
        table = pads.dataset(root / SCORED, format="parquet").to_table(
            columns=["kind", "clip_id"], filter=pads.field("kind") == "clip"
        )
        return table.column("clip_id").to_pylist()

    resumed, uninterrupted = scored_ids(out), scored_ids(curated)
    assert len(resumed) == len(set(resumed)), "no duplicate clips after the resume"
    assert set(resumed) == set(uninterrupted)
    sources = pads.dataset(out / SCORED, format="parquet").to_table(
        columns=["kind", "source_uri"], filter=pads.field("kind") == "source"
    )
    assert sources.num_rows == len(EXPECTED)


def test_four_near_copies_across_two_waves_keep_exactly_one(ray_cluster, mlflow_uri, tmp_path):
    """The same footage as H.264, VP8 at 256x144, MPEG-4 Part 2 and H.264 crf 30 at 192x108,
    under unrelated names and scored in two waves: each 2 s piece of it is kept once, from a
    full-resolution copy; the other footage is untouched."""
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    copies = {
        "a_original.mp4": cv.gameplay(raw / "a_original.mp4", 4.5, seed=11),
        "b_other.mp4": cv.gameplay(raw / "b_other.mp4", 4.5, seed=12),
        "c_upload.webm": cv.vp8_copy(raw / "c_upload.webm", 4.5, seed=11),
        "d_mirror.mkv": cv.mpeg4_copy(raw / "d_mirror.mkv", 4.5, seed=11),
        "e_other.mp4": cv.gameplay(raw / "e_other.mp4", 4.5, seed=13),
        "f_reupload.mp4": cv.reencoded_copy(raw / "f_reupload.mp4", 4.5, seed=11),
    }
    assert run_cli("run", "--source", str(raw), "--out", str(out), "wave_sources=3",
                   f"mlflow_uri={mlflow_uri}", *SHORT) == 0  # fmt: skip
    assert len(list((out / SCORED / "_done").glob("*.json"))) == 2, "two waves"
    kept = read(out, "clips", ["source_uri", "start_s"]).to_pylist()
    rejects = read(out, "rejects", ["source_uri", "start_s", "reject_reason"]).to_pylist()
    same = {"a_original.mp4", "c_upload.webm", "d_mirror.mkv", "f_reupload.mp4"}
    kept_of_copies: dict[float, list[str]] = {}
    for row in kept:
        if Path(row["source_uri"]).name in same:
            kept_of_copies.setdefault(row["start_s"], []).append(Path(row["source_uri"]).name)
    assert kept_of_copies and all(len(names) == 1 for names in kept_of_copies.values())
    assert {n for names in kept_of_copies.values() for n in names} <= {
        "a_original.mp4",
        "d_mirror.mkv",
    }
    pieces = len(kept_of_copies)
    assert pieces >= 2
    duplicates = [r for r in rejects if r["reject_reason"] == "duplicate"]
    assert len(duplicates) == 3 * pieces
    assert {Path(r["source_uri"]).name for r in rejects} <= same
    others = [r for r in kept if Path(r["source_uri"]).name in ("b_other.mp4", "e_other.mp4")]
    assert len(others) == 2 * pieces
    assert set(copies) == {p.name for p in raw.iterdir()}


# ---------------------------------------------------------------- real clip shape and timing


def test_real_clips_are_160_frames_160x90_at_10fps_and_never_cross_a_cut(
    ray_cluster, mlflow_uri, tmp_path
):
    """Full-size clips; and a 60 s source with hard cuts at 20 s and 40 s, whose clips on the
    fixed 16 s grid held a cut in two of three places (both dropped): now three clips are
    kept, none holding a cut."""
    raw = tmp_path / "raw"
    raw.mkdir()
    cv.gameplay(raw / "cfr30.mp4", 16.5, seed=11)
    cv.vfr(raw / "vfr.mp4", 16.5, seed=12)
    cv.shots(raw / "levels.mp4", 20.0, seeds=(13, 14, 15))
    out = tmp_path / "out"
    assert run_cli("run", "--source", str(raw), "--out", str(out),
                   f"mlflow_uri={mlflow_uri}") == 0  # fmt: skip
    clips = read(out, "clips").to_pylist()
    names = sorted(Path(c["source_uri"]).name for c in clips)
    assert names == ["cfr30.mp4", "levels.mp4", "levels.mp4", "levels.mp4", "vfr.mp4"]
    for clip in clips:
        assert (clip["num_frames"], clip["fps"], clip["width"], clip["height"]) == (
            160,
            10,
            160,
            90,
        )
        frames = read_frames(clip["video"])
        assert frames.shape == (160, 90, 160, 3)
        with av.open(io.BytesIO(clip["video"])) as container:
            assert container.streams.video[0].average_rate == 10
        assert largest_change(frames) < DecodeSpec().cut_threshold  # no cut inside a clip
    levels = sorted(c["start_s"] for c in clips if c["source_uri"].endswith("levels.mp4"))
    assert levels == [0.0, 20.0, 40.0]
    footage = json.loads((out / "summary.json").read_text())["footage"]
    assert (footage["cuts"], footage["shots"], footage["lost_to_cuts_s"]) == (2, 5, 12.0)
    assert footage["in_kept_clips_s"] == 5 * 16.0


def test_hostile_folder_is_accounted_and_nothing_escapes(ray_cluster, mlflow_uri, tmp_path):
    """Every hostile file of the review beside two good videos: the run finishes, every entry
    has one verdict, both good videos are curated, nothing outside --out changes."""
    raw, out = tmp_path / "raw", tmp_path / "out"
    expected = hostile_folder(raw, tmp_path / "outside", good_seconds=4.5)
    before = tree(tmp_path)
    assert run_cli("run", "--source", str(raw), "--out", str(out), f"mlflow_uri={mlflow_uri}",
                   "decode.time_budget_s=2", *SHORT) == 0  # fmt: skip
    after = tree(tmp_path)
    changed = {
        path for path in set(before) | set(after)
        if path != str(out) and not path.startswith(f"{out}/") and before.get(path) != after.get(path)
    }  # fmt: skip
    assert changed == set()
    rows = read(out, "sources").to_pylist()
    got = {str(Path(r["source_uri"]).relative_to(raw)): (r["verdict"], r["reason"]) for r in rows}
    assert set(got) == set(expected) and len(rows) == len(expected)
    for name, (verdict, reason) in expected.items():
        assert got[name][0] == verdict and reason in (got[name][1], "*"), (name, got[name])
    funnel = json.loads((out / "summary.json").read_text())["sources"]
    assert funnel["inputs"] == len(expected) and funnel["conserved"]
    assert funnel["accepted"] == 2


def test_manifest_rows_are_each_accounted(ray_cluster, mlflow_uri, tmp_path):
    """A manifest naming a file twice, an empty row and a FIFO: inputs = rows, nothing blocks."""
    game = cv.gameplay(tmp_path / "game.mp4", 4.5, seed=31)
    os.mkfifo(tmp_path / "pipe.mp4")
    manifest = tmp_path / "list.csv"
    manifest.write_text(f'uri\n{game}\n""\n{tmp_path / "pipe.mp4"}\n{game}\n')
    out = tmp_path / "out"
    assert run_cli("run", "--source", str(manifest), "--out", str(out),
                   f"mlflow_uri={mlflow_uri}", *SHORT) == 0  # fmt: skip
    funnel = json.loads((out / "summary.json").read_text())["sources"]
    assert (funnel["inputs"], funnel["accepted"], funnel["errored"], funnel["skipped"]) == (
        4, 1, 1, 2,
    )  # fmt: skip
    assert funnel["skip_reasons"] == {"empty_uri": 1, "listed_twice": 1}
    assert funnel["error_reasons"] == {"not_a_regular_file": 1}


@pytest.mark.slow
def test_runs_under_ray_job_submit(local_platform, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    cv.gameplay(raw / "game.mp4", 4.5, seed=21)
    cv.not_a_video(raw / "notes.mp4")
    out = tmp_path / "submitted"
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        ["ray", "job", "submit", "--working-dir", str(repo), "--", "python", "-m",
         "jobs.curate", "run", "--source", str(raw), "--out", str(out), *SHORT],
        env=local_platform.env, capture_output=True, text=True, timeout=300, cwd=repo,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    sources = json.loads((out / "summary.json").read_text())["sources"]
    assert (sources["inputs"], sources["accepted"], sources["errored"]) == (2, 1, 1)
