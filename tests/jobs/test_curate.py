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
from jobs.curate import main as curate_main
from pipelines.curation.conditions import Compare, parse_where
from pipelines.curation.decode import ClipDecoder, DecodeSpec
from pipelines.curation.filters.duplicate import BANDS, copy_rank, distance_to_earlier
from pipelines.curation.filters.quality import LogisticQualityModel, load_model, save_model
from pipelines.curation.scoring import SCORED, score_source
from pipelines.curation.sources import iter_sources
from pipelines.video import read_frames

SHORT = ["decode.clip_frames=20", "decode.stride_frames=20"]  # 2 s clips at 10 FPS

# file -> (verdict, reason); reasons of accepted sources are ""
EXPECTED = {
    "game1.mp4": ("accepted", ""),
    "game2.mkv": ("accepted", ""),
    "vfr.mp4": ("accepted", ""),
    "cut.mp4": ("accepted", ""),  # its first clip holds the cut and is dropped, the second kept
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
    (folder / "README.txt").write_text("not listed: not a video suffix\n")
    return folder


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


def test_every_source_ends_accepted_rejected_or_errored(curated):
    sources = by_source(read(curated, "sources"))
    assert set(sources) == set(EXPECTED), "README.txt is not listed; every video is"
    got = {name: (row["verdict"], row["reason"]) for name, row in sources.items()}
    assert got == EXPECTED
    summary = json.loads((curated / "summary.json").read_text())
    funnel = summary["sources"]
    assert funnel["inputs"] == len(EXPECTED)
    assert funnel["accepted"] + funnel["rejected"] + funnel["errored"] == funnel["inputs"]
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
    cut = [r for r in rejects if Path(r["source_uri"]).name == "cut.mp4"]
    assert [(r["start_s"], r["reject_reason"]) for r in cut] == [(0.0, "scene_cut")]
    clips = read(curated, "clips", ["source_uri", "start_s", "keep", "reject_reason"]).to_pylist()
    kept = {(Path(c["source_uri"]).name, c["start_s"]) for c in clips}
    for name in ("game1.mp4", "game2.mkv", "vfr.mp4"):
        assert {(name, 0.0), (name, 2.0)} <= kept  # normal gameplay passes every filter
    assert ("cut.mp4", 2.0) in kept
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
        assert step["in"] - step["out"] == step["rejected"] >= 1  # every filter caught a clip
    assert summary["throughput"]["score"]["clips_per_s_per_core"] > 0
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
    }  # fmt: skip
    for argv, message in cases.items():
        assert run_cli(*argv) == 2, argv
        assert message in capsys.readouterr().err, argv
    assert not out.exists()


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


# ---------------------------------------------------------------- real clip shape and timing


def test_real_clips_are_160_frames_160x90_at_10fps(ray_cluster, mlflow_uri, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    cv.gameplay(raw / "cfr30.mp4", 16.5, seed=11)
    cv.vfr(raw / "vfr.mp4", 16.5, seed=12)
    out = tmp_path / "out"
    assert run_cli("run", "--source", str(raw), "--out", str(out),
                   f"mlflow_uri={mlflow_uri}") == 0  # fmt: skip
    clips = read(out, "clips").to_pylist()
    assert sorted(Path(c["source_uri"]).name for c in clips) == ["cfr30.mp4", "vfr.mp4"]
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


def _frame_number(frame: np.ndarray) -> int:
    """Inverse of curate_videos.numbered at 160x90 (three base-16 digits in bands)."""
    digits = [round(float(frame[band * 30 + 15, 80].mean() - 8) / 16) for band in range(3)]
    return digits[0] + 16 * digits[1] + 256 * digits[2]


@pytest.mark.parametrize("fps", [30, 25, 60])
def test_constant_rate_source_resamples_to_10fps_by_timestamp(tmp_path, fps):
    path = cv.numbered(tmp_path / f"n{fps}.mp4", 4.0, fps)
    spec = DecodeSpec(clip_frames=40, stride_frames=40)
    with ClipDecoder(str(path), spec) as decoder:
        clips = list(decoder.clips())
    assert len(clips) == 1
    got = [_frame_number(f) for f in clips[0].frames]
    assert got == [int(k * fps / 10) for k in range(40)]


def test_variable_rate_source_shows_the_frame_on_screen_at_each_tick(tmp_path):
    path, times = cv.vfr_numbered(tmp_path / "vfr.mkv", 4.5, seed=5)
    spec = DecodeSpec(clip_frames=40, stride_frames=40)
    with ClipDecoder(str(path), spec) as decoder:
        clips = list(decoder.clips())
    got = [_frame_number(f) for f in clips[0].frames]
    times = np.asarray(times)
    expected = [int(np.searchsorted(times, k / 10 + 1e-9, side="right") - 1) for k in range(40)]
    assert got == expected
    assert len(set(np.diff(times).round(3))) > 2  # really variable


def test_stride_overlaps_clips(tmp_path):
    path = cv.numbered(tmp_path / "n.mp4", 4.0, 10)
    spec = DecodeSpec(clip_frames=20, stride_frames=10)
    with ClipDecoder(str(path), spec) as decoder:
        starts = [(c.start_s, _frame_number(c.frames[0])) for c in decoder.clips()]
    assert starts == [(0.0, 0), (1.0, 10), (2.0, 20)]


# ---------------------------------------------------------------- decode limits


def _source_row(path: Path, spec: DecodeSpec) -> dict:
    rows = list(score_source(str(path), 0, spec))
    return rows[-1]


def test_decode_limits_bound_hostile_sources(tmp_path):
    path = cv.gameplay(tmp_path / "g.mp4", 4.5, seed=1)
    base = dict(clip_frames=20, stride_frames=20)
    row = _source_row(path, DecodeSpec(**base, max_pixels=320 * 100))
    assert (row["status"], row["reason"]) == ("rejected", "too_large")
    row = _source_row(path, DecodeSpec(**base, max_duration_s=2.0))
    assert (row["status"], row["reason"]) == ("rejected", "too_long")
    row = _source_row(path, DecodeSpec(**base, time_budget_s=1e-6))
    assert (row["status"], row["reason"]) == ("rejected", "decode_limit")
    assert "time_budget_s" in row["note"]


def test_crafted_sources_each_end_in_one_row(tmp_path):
    """Without Ray: every crafted source gives exactly one source row, never an exception."""
    game = cv.gameplay(tmp_path / "game.mkv", 4.5, seed=3)
    paths = [
        cv.truncated(tmp_path / "part.mkv", game, keep=0.6),
        cv.zero_bytes(tmp_path / "empty.mp4"),
        cv.audio_only(tmp_path / "audio.mp4", 2.0),
        tmp_path / "vanished.mp4",
    ]
    spec = DecodeSpec(clip_frames=20, stride_frames=20)
    statuses = {}
    for path in paths:
        rows = list(score_source(str(path), 0, spec))
        assert [r["kind"] for r in rows].count("source") == 1
        statuses[path.name] = (rows[-1]["status"], rows[-1]["clips"])
    assert statuses["part.mkv"] == ("scored", 1)  # the complete clip before the cut-off
    assert statuses["empty.mp4"][0] == "errored"
    assert statuses["audio.mp4"][0] == "errored"
    assert statuses["vanished.mp4"][0] == "errored"


# ---------------------------------------------------------------- pieces


def test_sources_from_directory_glob_and_manifest(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.mp4").write_bytes(b"")
    (tmp_path / "b.MKV").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "_done").mkdir()
    (tmp_path / "_done" / "hidden.mp4").write_bytes(b"")
    listing = iter_sources(str(tmp_path))
    assert not isinstance(listing, list)  # streamed
    assert [Path(u).relative_to(tmp_path).as_posix() for u in listing] == ["a/x.mp4", "b.MKV"]
    assert [Path(u).name for u in iter_sources(f"{tmp_path}/**/*.mp4")] == ["x.mp4"]
    (tmp_path / "list.csv").write_text("uri\na/x.mp4\n/elsewhere/y.mp4\n")
    assert list(iter_sources(str(tmp_path / "list.csv"))) == [
        str(tmp_path / "a" / "x.mp4"), "/elsewhere/y.mp4",
    ]  # fmt: skip
    pq.write_table(pa.table({"uri": ["s3://bucket/v.mp4"]}), tmp_path / "list.parquet")
    assert list(iter_sources(str(tmp_path / "list.parquet"))) == ["s3://bucket/v.mp4"]


def test_where_expressions_parse_and_evaluate_safely():
    columns = {"motion": np.array([0.0, 0.05, 0.05, np.nan]), "blur": np.array([90, 90, 10, 90.0])}
    condition = parse_where("motion > 0.02 and (blur > 80 or not blur < 5)")
    assert condition.evaluate(columns).tolist() == [False, True, True, False]
    assert parse_where("motion >= 1e-3") == Compare("motion", ">=", 0.001)
    for bad in ("motion >", "__import__('os').system('x')", "motion > 1 and", "(motion > 1"):
        with pytest.raises(ValueError, match="--where"):
            parse_where(bad)


def test_duplicate_search_finds_every_near_copy_within_the_band_guarantee():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 256, (400, 32), dtype=np.uint8)
    copies = hashes[:50].copy()
    bits = np.unpackbits(copies, axis=1)
    for row in bits:  # flip BANDS - 1 random bits: still guaranteed to share a band
        row[rng.choice(256, BANDS - 1, replace=False)] ^= 1
    allh = np.concatenate([hashes, np.packbits(bits, axis=1)])
    rank = copy_rank(np.full(450, 90.0), np.arange(450), np.zeros(450))
    distances = distance_to_earlier(allh, rank)
    assert (distances[400:] == BANDS - 1).all()
    assert (distances[:400] > 64).all()  # random hashes are ~128 bits apart


def test_logistic_quality_model_roundtrips_as_json(tmp_path):
    rng = np.random.default_rng(1)
    x = np.abs(rng.normal(size=(200, 2))) * [1, 10]
    y = (x[:, 0] > 0.7).astype(float)
    model = LogisticQualityModel.fit(x, y, ("motion", "blur"))
    assert model.trained_on["train_accuracy"] > 0.9
    path = save_model(model, tmp_path / "m.json")
    assert json.loads(path.read_text())["kind"] == "logistic"
    again = load_model(path)
    assert np.allclose(again.predict(x), model.predict(x))


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
