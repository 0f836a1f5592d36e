"""`python -m jobs.bench play`: every setting gets a row, bad settings are refused (no timings
are asserted: speed is measured, not tested)."""

from __future__ import annotations

import re

import pytest

from jobs.benchmarks.play import Setting, run


def test_play_bench_prints_a_row_per_setting(capsys):
    assert run(["--frames", "2", "--repeats", "1", "--settings", "3:1:4,2:0.9:1"]) == 0
    out = capsys.readouterr().out
    rows = [line.split()[0] for line in out.splitlines() if line.strip().startswith(("3:", "2:"))]
    assert rows == ["3:1:4", "2:0.9:1", "3:1:4"]  # the last: the reference without the cache
    assert "frames/CPU-s" in out and "uncached" in out


@pytest.mark.parametrize(
    ("text", "problem"),
    [("8", "is not steps:confident:context"), ("0:0.9:1", "steps >= 1"),
     ("8:1.5:1", "confident in (0, 1]"), ("8:0.9:0", "context >= 1")],
)  # fmt: skip
def test_a_bad_setting_is_refused(text, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        Setting.parse(text)
    assert str(Setting.parse("8:0.9:1")) == "8:0.9:1"
