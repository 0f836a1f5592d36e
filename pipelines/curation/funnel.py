"""The accounting of a selection: one verdict per listed entry, and the funnels of summary.json.

Every entry ends in exactly one verdict: accepted (at least one clip kept), rejected (with the
reason), errored (with the error) or skipped by the listing (with the reason), so
`inputs = accepted + rejected + errored + skipped` holds by construction and is checked.
The frame funnel says where the decoded footage went: into clips, lost to hard cuts (the tails
of shots shorter than a clip's stride), or lost at the end of a source.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pipelines.curation.conditions import Compare, Condition, Selection
from pipelines.curation.filters import SELECT_FILTERS
from pipelines.schemas import SOURCE_VERDICTS


def reject_label(term: Condition) -> str:
    """The reject reason a failing term gives: its score's name, or `where` for a compound."""
    return term.field if isinstance(term, Compare) else "where"


def verdict(
    row: dict[str, Any], scored: int, kept: int, why: Counter, original: str | None
) -> tuple[str, str, str | None]:
    """(verdict, reason, detail) of one entry from its source row and its clips' outcomes."""
    if row["status"] == "skipped":
        return "skipped", row["reason"], row.get("note")
    if row["status"] == "errored":
        return "errored", row.get("reason") or "error", row.get("error")
    if original is not None:
        return "rejected", "duplicate_source", f"same bytes as {original}"
    if row["status"] == "rejected":
        return "rejected", row["reason"], row.get("note")
    if kept > 0:
        return "accepted", "", None
    if why and set(why) == {"error"}:
        return "errored", "error", f"all {scored} clips failed scoring"
    order = {f.name: i for i, f in enumerate(SELECT_FILTERS)}
    reason = min(why, key=lambda r: (-why[r], order.get(r, len(order))))
    detail = ", ".join(f"{r} {n}" for r, n in why.most_common())
    return "rejected", reason, f"all {scored} clips rejected: {detail}"


def source_funnel(verdicts: list[dict[str, Any]]) -> dict[str, Any]:
    counts = Counter(v["verdict"] for v in verdicts)
    funnel: dict[str, Any] = {"inputs": len(verdicts)}
    funnel.update({name: counts[name] for name in SOURCE_VERDICTS})
    funnel["conserved"] = len(verdicts) == sum(counts[name] for name in SOURCE_VERDICTS)
    for name, key in (("rejected", "reject"), ("errored", "error"), ("skipped", "skip")):
        reasons = Counter(v["reason"] for v in verdicts if v["verdict"] == name)
        funnel[f"{key}_reasons"] = dict(reasons.most_common())
    return funnel


def clip_funnel(
    selection: Selection, scored: int, reasons: Counter, errored: int
) -> dict[str, Any]:
    """Filters in order: how many clips reached each and how many it let through."""
    steps = []
    remaining = scored - errored
    labels = [reject_label(t) for t in selection.terms] + (
        ["duplicate"] if selection.duplicate else []
    )
    for name in dict.fromkeys(labels):
        dropped = reasons.get(name, 0)
        steps.append({"filter": name, "in": remaining, "out": remaining - dropped,
                      "rejected": dropped})  # fmt: skip
        remaining -= dropped
    return {
        "scored": scored,
        "errored": errored,
        "kept": remaining,
        "rejected": scored - errored - remaining,
        "conserved": scored == remaining + errored + sum(reasons.values()),
        "funnel": steps,
        "reject_reasons": dict(reasons.most_common()),
    }


def frame_funnel(sources: list[dict[str, Any]], kept_clips: int, spec: dict[str, Any]) -> dict:
    """Seconds of footage on the output timeline: decoded, in clips, lost to cuts, lost at the
    ends of sources, and in kept clips (kept clips x clip length)."""
    fps = spec.get("fps") or 10

    def total(name: str) -> float:
        return sum(row.get(name) or 0 for row in sources)

    decoded = total("duration_s")
    in_clips = total("frames_in_clips") / fps
    lost_to_cuts = total("frames_lost_to_cuts") / fps
    return {
        "decoded_s": round(decoded, 1),
        "in_scored_clips_s": round(in_clips, 1),
        "lost_to_cuts_s": round(lost_to_cuts, 1),
        "lost_at_source_ends_s": round(max(0.0, decoded - in_clips - lost_to_cuts), 1),
        "in_kept_clips_s": round(kept_clips * (spec.get("clip_frames") or 0) / fps, 1),
        "cuts": int(sum(max(0, (row.get("shots") or 0) - 1) for row in sources)),
        "shots": int(total("shots")),
        "shots_shorter_than_a_clip": int(total("short_shots")),
    }
