"""`--where` parsing: safe evaluation, and hostile nesting is a config error naming the field."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.common.config import ConfigError
from jobs.curation.config import CurateConfig
from pipelines.curation.conditions import MAX_NESTING, Compare, parse_where


@pytest.mark.parametrize(
    "text",
    ["(" * 2000 + "motion > 1" + ")" * 2000, "not " * 2000 + "motion > 1",
     "(not " * 1000 + "motion > 1" + ")" * 1000],
)  # fmt: skip
def test_deep_nesting_is_a_config_error(text):
    with pytest.raises(ValueError, match=f"nested deeper than {MAX_NESTING}"):
        parse_where(text)
    with pytest.raises(ConfigError, match="config field 'where'"):
        CurateConfig(where=text)


def test_nesting_up_to_the_cap_parses():
    text = "(" * MAX_NESTING + "motion > 1" + ")" * MAX_NESTING
    assert parse_where(text) == Compare("motion", ">", 1.0)
    assert str(parse_where("not " * 3 + "blur < 2")) == "not (not (not (blur < 2)))"


def test_where_expressions_parse_and_evaluate_safely():
    columns = {"motion": np.array([0.0, 0.05, 0.05, np.nan]), "blur": np.array([90, 90, 10, 90.0])}
    condition = parse_where("motion > 0.02 and (blur > 80 or not blur < 5)")
    assert condition.evaluate(columns).tolist() == [False, True, True, False]
    assert parse_where("motion >= 1e-3") == Compare("motion", ">=", 0.001)
    for bad in ("motion >", "__import__('os').system('x')", "motion > 1 and", "(motion > 1"):
        with pytest.raises(ValueError, match="--where"):
            parse_where(bad)
