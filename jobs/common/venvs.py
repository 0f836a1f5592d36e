"""Small virtual environments of pinned packages, for tools whose dependencies clash with ours
(procgen needs numpy < 2; the JAX I3D reference needs JAX)."""

from __future__ import annotations

import subprocess
import venv
from collections.abc import Sequence
from pathlib import Path


def pinned_venv(folder: Path, packages: Sequence[str]) -> Path:
    """The python of a venv in `folder` holding exactly `packages` (pinned specs), created or
    re-created (when the pins changed) first. Only stdlib here: it also runs inside such venvs."""
    python = folder / "bin" / "python"
    stamp = folder / ".installed"
    pins = "\n".join(packages)
    if stamp.is_file() and stamp.read_text() == pins:
        return python
    print(f"creating the environment in {folder} ({', '.join(packages)})", flush=True)
    venv.create(folder, with_pip=True, clear=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *packages], check=True)
    stamp.write_text(pins)
    return python
