"""What `genie eval` leaves to look at: side-by-side videos (mp4 and gif) and plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def side_by_side(*videos: np.ndarray, gap: int = 2) -> np.ndarray:
    """(T, H, W, 3) videos next to each other, white gaps between: one (T, H, W', 3) video."""
    height = videos[0].shape[1]
    spacer = np.full((len(videos[0]), height, gap, 3), 255, np.uint8)
    parts = [part for video in videos for part in (video, spacer)][:-1]
    return np.concatenate(parts, axis=2)


def write_clip(stem: Path, video: np.ndarray, fps: int = 5) -> list[Path]:
    """mp4 (H.264) and gif of a (T, H, W, 3) uint8 video, upscaled 2x to be watchable."""
    from PIL import Image

    from pipelines.video import write_video

    video = video.repeat(2, axis=1).repeat(2, axis=2)
    video = video[:, : video.shape[1] // 2 * 2, : video.shape[2] // 2 * 2]  # H.264 wants even
    mp4, gif = stem.with_suffix(".mp4"), stem.with_suffix(".gif")
    write_video(mp4, video, fps)
    images = [Image.fromarray(frame) for frame in video]
    images[0].save(gif, save_all=True, append_images=images[1:], duration=1000 // fps, loop=0)
    return [mp4, gif]


def plot_delta_psnr(delta_by_t: dict[int, float], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 3.2))
    axes.plot(list(delta_by_t), list(delta_by_t.values()), marker="o")
    axes.axhline(0, color="grey", linewidth=0.8)
    axes.set_xlabel("t (frames after the prompt frame, which is t = 1)")
    axes.set_ylabel("ΔtPSNR (dB)")
    axes.set_title("Controllability: inferred vs random actions")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_motion(motion: dict[str, dict[int, tuple[float, float]]], path: Path) -> Path:
    """Camera motion a frame by latent action, true frames beside rollouts, dx and dy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    actions = sorted(motion["generated"])
    x = np.arange(len(actions))
    figure, panes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
    for axis, (pane, name) in enumerate(zip(panes, ("dx (right +)", "dy (down +)"), strict=True)):
        true = [motion["true"].get(a, (np.nan, np.nan))[axis] for a in actions]
        generated = [motion["generated"][a][axis] for a in actions]
        pane.bar(x - 0.2, true, 0.4, label="true frames the LAM labels with it")
        pane.bar(x + 0.2, generated, 0.4, label="rollouts holding it")
        pane.axhline(0, color="grey", linewidth=0.8)
        pane.set_xticks(x, [str(a) for a in actions])
        pane.set_xlabel("latent action")
        pane.set_title(f"camera {name}, pixels a frame", fontsize=9)
    panes[0].legend(fontsize=7)
    figure.suptitle("Does each action move the world its way?")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
