"""The tests' source parser rides out CPython 3.11's spurious AST SystemError, and only that."""

from __future__ import annotations

import ast

import pytest

from tests import sources


def test_a_spurious_recursion_depth_mismatch_is_tried_again_and_a_syntax_error_is_not(
    monkeypatch,
):
    real, calls = ast.parse, []

    def flaky(source):
        calls.append(source)
        if len(calls) == 1:
            raise SystemError("AST constructor recursion depth mismatch (before=111, after=73)")
        return real(source)

    monkeypatch.setattr(ast, "parse", flaky)
    assert isinstance(sources.parse("x = 1"), ast.Module) and len(calls) == 2
    with pytest.raises(SyntaxError):
        sources.parse("x = ")
    assert len(calls) == 3
