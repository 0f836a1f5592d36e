"""Reading the repository's own Python source in tests."""

from __future__ import annotations

import ast


def parse(source: str, attempts: int = 3) -> ast.Module:
    """`ast.parse(source)`, tried again on CPython 3.11's spurious "AST constructor recursion
    depth mismatch" SystemError (python/cpython#106905, seen here once in a full `make test`:
    the counter it checks belongs to the interpreter, not the thread, and earlier tests leave
    Ray's and MLflow's threads running). An error in `source` is a SyntaxError, never retried."""
    for attempt in range(attempts):
        try:
            return ast.parse(source)
        except SystemError as error:
            if "recursion depth mismatch" not in str(error) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")
