"""`genie`: one command for every job. Each subcommand is `python -m jobs.<module>`.

The CLI only dispatches: every job module owns its parser (`build_parser`) and its
`main(argv)`, so `genie synth --help` and `python -m jobs.synth --help` print the same,
and `ray job submit -- python -m jobs.synth ...` runs exactly what the CLI runs.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module under jobs/, one line for `genie --help`)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "curate": (
        "jobs.curate",
        "curate raw video into scored 16 s clips: score, select (re-threshold), run",
    ),
    "synth": (
        "jobs.synth",
        "render the built-in synthetic platformer corpus (videos + action logs)",
    ),
    "record": (
        "jobs.record",
        "record a real game (CoinRun) as raw video with per-frame action logs",
    ),
    "train": ("jobs.train", "train a stage (tokenizer, lam, dynamics) with Ray Train + MLflow"),
    "tokenize": ("jobs.tokenize", "turn curated clips into token shards with latent actions"),
    "fetch-i3d": ("jobs.tools.fetch_i3d", "fetch and convert the Kinetics-400 I3D weights for FVD"),
    "eval": ("jobs.evaluate", "evaluate a trained world model (PSNR, SSIM, ΔtPSNR, FVD, NMI)"),
    "probe-actions": (
        "jobs.probe_actions",
        "how much of the true actions the footage shows: a reference for the LAM's NMI",
    ),
    "bench": ("jobs.bench", "benchmarks: curation, training loop, models, play (ratios)"),
    "play": ("jobs.play", "play a trained world in the browser (Ray Serve app + web page)"),
    "rollout": ("jobs.rollout", "roll a trained world out from an image and actions to an mp4"),
    "submit": ("jobs.submit", "submit a job to the Ray cluster; relative paths mean this folder"),
}

EPILOG = """\
examples:
  genie synth --out data/raw --videos 30 --seed 0
  genie synth --help

Every subcommand runs the same as `python -m jobs.<module>`; that is what you pass to
`ray job submit --working-dir . -- python -m jobs.<module> ...` on a cluster.
"""


def usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = ["usage: genie <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in SUBCOMMANDS.items()]
    return "\n".join(lines) + "\n\n" + EPILOG


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"genie: unknown command {name!r}\n", file=sys.stderr)
        print(usage(), file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return module.main(rest, prog=f"genie {name}")


if __name__ == "__main__":
    sys.exit(main())
