"""Latent actions against what the footage shows: the game's true actions from the action log
beside each source video (`<stem>.actions.parquet`: `time_s`, `action`, optional
`action_name`; `genie synth` and `genie record` write them), and which way each latent action
moves the camera, in the true frames and in rollouts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from models import metrics
from pipelines import storage
from pipelines.images import to_model
from pipelines.training_data import heldout_windows

MAX_ACTION_ID = 2**16  # ids index count tables: a log's ids stay under this
# A camera move under half a pixel a frame reads as still (`motion_classes`).
STILL_PX = 0.5


class ActionLogError(ValueError):
    """An action log that cannot be read or breaks the format; the message names the log."""


@dataclass(frozen=True)
class ActionLog:
    """A source video's action log as a step function: `actions[i]` is held from `times[i]`
    until `times[i + 1]` (the last one until `end`)."""

    times: np.ndarray  # (N,) float64 seconds into the source video, increasing
    actions: np.ndarray  # (N,) int64
    names: dict[int, str]  # action id -> name, where the log names them
    end: float

    def labels(self, start: float, count: int, fps: float) -> np.ndarray | None:
        """The action held longest over each of `count` intervals [start + t/fps,
        start + (t+1)/fps), t = 0..count-1 (curated frame t to frame t+1); None where the log
        does not cover one. Works for logs at the video's own rate (one entry a frame, where
        float rounding can put an entry a hair after a frame's time), coarser and finer ones."""
        starts = np.append(self.times, self.end)
        labels = []
        for t in range(count):
            lo, hi = start + t / fps, start + (t + 1) / fps
            overlap = np.minimum(starts[1:], hi) - np.maximum(starts[:-1], lo)
            if overlap.max(initial=0.0) <= 0.5 / fps * 1e-3:
                return None
            held = np.bincount(self.actions, weights=np.clip(overlap, 0.0, None))
            labels.append(int(held.argmax()))
        return np.array(labels, np.int64)


def action_log_path(source_uri: str) -> str:
    """Where a source video's action log sits: `<stem>.actions.parquet` beside it (a local
    path or an object-store URI, as the video's)."""
    stem = storage.name_of(source_uri).rsplit(".", 1)[0]
    return storage.join(storage.parent(source_uri), f"{stem}.actions.parquet")


def read_action_log(
    source_uri: str, fps: float = 10.0, logs: Mapping[str, str] | None = None
) -> ActionLog | None:
    """A source video's action log: the one `logs` names for it (a source manifest's
    `actions_uri`), else the one beside it; None when there is none. A log that is not Parquet or
    breaks the format (`_checked_columns`) raises ActionLogError naming it; a storage error
    (a timeout, a permission) propagates as it is."""
    path = (logs or {}).get(source_uri) or action_log_path(source_uri)
    if not storage.is_file(path):
        return None
    fs, inner = storage.filesystem(path)
    try:
        table = pq.read_table(inner, filesystem=fs)
    except pa.ArrowInvalid as error:
        raise ActionLogError(f"action log {path} is not a Parquet file: {error}") from error
    times, actions = _checked_columns(table, path)
    order = np.argsort(times, kind="stable")
    times, actions = times[order], actions[order]
    names = {}
    if "action_name" in table.column_names:
        labels = np.asarray(table.column("action_name"))[order]
        names = dict(zip(actions.tolist(), labels.tolist(), strict=True))
    distinct = np.unique(times)  # an entry logged twice at one time does not shorten the last
    step = float(np.median(np.diff(distinct))) if len(distinct) > 1 else 1.0 / fps
    return ActionLog(times, actions, names, end=float(times[-1]) + step)


def _checked_columns(table: pa.Table, path: str) -> tuple[np.ndarray, np.ndarray]:
    """The log's `time_s` (float64) and `action` (int64) columns, or an ActionLogError naming the
    log and what is wrong: a missing column, no rows, a null, a column of the wrong type, a time
    that is not finite, an action id outside [0, MAX_ACTION_ID)."""
    kinds = {
        "time_s": (pa.types.is_integer, pa.types.is_floating),
        "action": (pa.types.is_integer,),
    }
    for name, accepted in kinds.items():
        if name not in table.column_names:
            raise ActionLogError(f"action log {path} has no {name!r} column")
        column = table.column(name)
        if not any(accepts(column.type) for accepts in accepted):
            wanted = "a number" if name == "time_s" else "an integer"
            raise ActionLogError(
                f"action log {path}: {name!r} must be {wanted} column, got {column.type}"
            )
        if column.null_count:
            raise ActionLogError(f"action log {path} has empty values in {name!r}")
    if table.num_rows == 0:
        raise ActionLogError(f"action log {path} has no rows")
    times = table.column("time_s").to_numpy().astype(np.float64)
    actions = table.column("action").to_numpy()
    if not np.isfinite(times).all():
        raise ActionLogError(
            f"action log {path}: 'time_s' holds a value that is not a finite number"
        )
    if actions.min() < 0 or actions.max() >= MAX_ACTION_ID:
        raise ActionLogError(
            f"action log {path}: action ids must be in [0, {MAX_ACTION_ID}), got "
            f"{actions.min() if actions.min() < 0 else actions.max()}"
        )
    return times, actions.astype(np.int64)


def true_actions(
    window: dict, frames: int, fps: float = 10.0, logs: Mapping[str, str] | None = None
) -> tuple[np.ndarray | None, str]:
    """The game's action for each transition t -> t+1 of a held-out window (`heldout_windows`),
    from its source video's action log (`read_action_log`): (labels (frames-1,), "") or
    (None, why not)."""
    source = window.get("source_uri")
    if not source or window.get("start_s") is None:
        return None, "the clips do not record their source video and start time"
    try:
        log = read_action_log(str(source), fps, logs)
    except ActionLogError as error:
        return None, str(error)
    if log is None:
        return (
            None,
            f"no action log for {source} in the manifest or beside it "
            f"({storage.name_of(action_log_path(str(source)))})",
        )
    labels = log.labels(window["start_s"] + window["start"] / fps, frames - 1, fps)
    if labels is None:
        return None, f"the action log beside {source} does not cover the window"
    return labels, ""


@dataclass(frozen=True)
class LabelledWindows:
    """Held-out windows (`heldout_windows`) with the game's action for each transition, or why
    they have none: what `lam_alignment` scores codes against."""

    frames: np.ndarray  # (N, T, H, W, 3) uint8
    truth: np.ndarray | None  # (N, T-1) int64; None when any window has none
    names: dict[int, str]  # action id -> name, where the logs name them
    skipped: str  # why `truth` is None; "" when it is not


def labelled_windows(
    clips: str,
    samples: int,
    frames: int,
    logs: Mapping[str, str] | None = None,
    every_clip: bool = False,
) -> LabelledWindows:
    """Up to `samples` held-out windows of `frames` frames with their true actions (logs as
    `read_action_log` finds them), or `skipped`: how many windows have none and why the first
    has none. Raises ValueError where the clips hold no held-out window (`heldout_windows`)."""
    windows = heldout_windows(clips, frames, samples, every_clip)
    video = np.stack([w["frames"] for w in windows])
    labelled = [true_actions(w, frames, logs=logs) for w in windows]
    missing = [why for labels, why in labelled if labels is None]
    if missing:
        reason = f"{len(missing)} of {len(windows)} windows have no true actions: {missing[0]}"
        return LabelledWindows(video, None, {}, reason)
    names = {}
    for source in dict.fromkeys(str(w["source_uri"]) for w in windows):  # in window order
        names |= read_action_log(source, logs=logs).names
    return LabelledWindows(video, np.stack([labels for labels, _ in labelled]), names, "")


def lam_alignment(lam, windows: LabelledWindows) -> tuple[dict[str, float], dict]:
    """How the LAM's codes on held-out windows line up with the game's true actions:
    (metrics, details) where details hold `skipped` (why NMI could not be computed, if so) and
    the `action_map` play uses (true action names and the code each most often gets).

    Beside `lam_nmi`, `camera_motion_nmi` scores `motion_classes` of the frames' dominant motion
    (`metrics.camera_motion`) the same way, a reference: a LAM near it may read little more
    than which way the picture moved."""
    frames = to_model(windows.frames)
    codes = lam.infer_actions(frames).numpy()
    results = {
        "lam_codes_used": float(len(np.unique(codes))),
        "lam_windows": float(len(windows.frames)),
    }
    if windows.truth is None:
        return results, {"skipped": windows.skipped}
    alignment = metrics.action_alignment(codes, windows.truth)
    camera = metrics.camera_motion(frames[:, :-1], frames[:, 1:])
    results |= {
        "lam_nmi": alignment.nmi,
        "lam_accuracy": alignment.accuracy,
        "lam_chance_accuracy": alignment.chance_accuracy,
        "camera_motion_nmi": metrics.action_alignment(motion_classes(camera), windows.truth).nmi,
    }
    return results, {"action_map": action_map(codes, windows.truth, windows.names)}


def motion_classes(motion: torch.Tensor, still_px: float = STILL_PX) -> np.ndarray:
    """Camera moves (..., 2) (dx, dy) in pixels -> one of 9 classes each: left, still or right
    times up, still or down, still within `still_px` either way (its bounds included)."""
    move = motion.numpy()
    sides = (move > still_px).astype(np.int64) - (move < -still_px) + 1  # 0, 1, 2 on each axis
    return sides[..., 0] * 3 + sides[..., 1]


def action_map(codes: np.ndarray, truth: np.ndarray, names: dict[int, str]) -> dict:
    """For play: each true action's name and the latent code it most often gets, where that
    code goes with it more often than with any other true action (otherwise it is unmapped)."""
    codes, truth = codes.reshape(-1), truth.reshape(-1)
    count = max(int(truth.max()), *names, 0) + 1
    joint = np.zeros((int(codes.max()) + 1, count))
    np.add.at(joint, (codes, truth), 1)
    listed = [names.get(a, f"action {a}") for a in range(count)]
    mapped = {}
    for action in range(count):
        if joint[:, action].sum() == 0:
            continue
        code = int(joint[:, action].argmax())
        if joint[code].argmax() == action:
            mapped[listed[action]] = code
    return {"names": listed, "code_for_action": mapped}


def motion_by_action(
    truth: torch.Tensor, inferred: torch.Tensor, generated: torch.Tensor, held: torch.Tensor
) -> dict[str, dict[int, tuple[float, float]]]:
    """Mean camera motion a frame (`metrics.camera_motion`, pixels (dx, dy)) by latent action:
    of true frames (B, T, C, H, W) grouped by the action the LAM infers for each transition
    (B, T-1), and of rollouts (B', T', C, H, W) that hold action `held` (B',) throughout."""

    def motion(video: torch.Tensor) -> torch.Tensor:
        return metrics.camera_motion(video[:, :-1], video[:, 1:])  # (B, T-1, 2)

    true, rolled = motion(truth), motion(generated)

    def mean(values: torch.Tensor) -> tuple[float, float]:
        dx, dy = values.reshape(-1, 2).mean(dim=0).tolist()
        return float(dx), float(dy)

    return {
        "true": {int(a): mean(true[inferred == a]) for a in inferred.unique()},
        "generated": {int(a): mean(rolled[held == a]) for a in held.unique()},
    }
