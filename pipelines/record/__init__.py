"""Recorders of real games: gameplay played by a seeded policy, written as raw videos with
per-frame action logs and a manifest, the same layout `genie synth` writes, so curation and
every later stage take it as any footage. Each recorder is a standalone script run in its own
virtual environment (see `jobs.record`)."""
