"""The built-in synthetic game: a procedural platformer rendered to real video files with
per-frame action logs, plus the bad sources curation must handle."""

from pipelines.synth.corpus import generate_corpus, load_actions, plan_corpus
from pipelines.synth.game import ACTIONS

__all__ = ["ACTIONS", "generate_corpus", "load_actions", "plan_corpus"]
