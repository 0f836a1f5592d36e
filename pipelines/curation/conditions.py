"""Conditions over clip scores: the per-filter thresholds, or a `--where` expression such as
`motion > 0.02 and (blur > 80 or quality >= 0.7)`, parsed without evaluating any Python.

`Selection.of` checks a condition against the scores the data holds and splits it into the
clip-level terms (checked in order; the first that fails is the reject reason) and the
near-duplicate terms (checked last, over the whole dataset).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.curation.filters import SELECT_FILTERS, Thresholds
from pipelines.schemas import SCORE_COLUMNS


@dataclass(frozen=True)
class Compare:
    field: str
    op: str
    value: float

    def evaluate(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        values = columns[self.field]
        with np.errstate(invalid="ignore"):
            result = _OPS[self.op](values, self.value)
        return result & ~np.isnan(values)  # a score that could not be computed never passes

    def __str__(self) -> str:
        return f"{self.field} {self.op} {self.value:g}"


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or" | "not"
    terms: tuple[Any, ...]

    def evaluate(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        masks = [t.evaluate(columns) for t in self.terms]
        if self.op == "not":
            return ~masks[0]
        return np.logical_and.reduce(masks) if self.op == "and" else np.logical_or.reduce(masks)

    def __str__(self) -> str:
        if self.op == "not":
            return f"not ({self.terms[0]})"
        return f" {self.op} ".join(
            f"({t})" if isinstance(t, BoolOp) else str(t) for t in self.terms
        )


Condition = Compare | BoolOp

_OPS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    ">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
    "==": np.equal, "!=": np.not_equal,
}  # fmt: skip
MAX_NESTING = 32  # parentheses and `not`s inside one another
_TOKEN = re.compile(r"\s*(?:(?P<num>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|(?P<op>>=|<=|==|!=|>|<)"
                    r"|(?P<paren>[()])|(?P<word>[A-Za-z_][A-Za-z0-9_]*))")  # fmt: skip


def parse_where(text: str) -> Condition:
    """`motion > 0.02 and (blur > 80 or quality >= 0.7)` -> a condition. Only score names,
    numbers, comparisons, and/or/not and parentheses: nothing is evaluated as Python."""
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ValueError(f"--where: cannot read {text[position:].strip()!r} in {text!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    parser = _Parser(tokens, text)
    condition = parser.disjunction()
    if parser.position != len(tokens):
        raise ValueError(f"--where: unexpected {tokens[parser.position][1]!r} in {text!r}")
    return condition


class _Parser:
    """Recursive descent, one level per parenthesis or `not`: nesting is capped at
    MAX_NESTING so a hostile expression is a config error, not a RecursionError."""

    def __init__(self, tokens: list[tuple[str, str]], text: str):
        self.tokens, self.text, self.position, self.depth = tokens, text, 0, 0

    def _peek(self) -> tuple[str, str]:
        return self.tokens[self.position] if self.position < len(self.tokens) else ("end", "")

    def _take(self) -> tuple[str, str]:
        token = self._peek()
        self.position += 1
        return token

    def _fail(self, wanted: str) -> ValueError:
        got = self._peek()[1] or "the end"
        return ValueError(f"--where: expected {wanted}, got {got!r} in {self.text!r}")

    def disjunction(self) -> Condition:
        terms = [self.conjunction()]
        while self._peek() == ("word", "or"):
            self._take()
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else BoolOp("or", tuple(terms))

    def conjunction(self) -> Condition:
        terms = [self.negation()]
        while self._peek() == ("word", "and"):
            self._take()
            terms.append(self.negation())
        return terms[0] if len(terms) == 1 else BoolOp("and", tuple(terms))

    def negation(self) -> Condition:
        if self._peek() in (("word", "not"), ("paren", "(")):
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise ValueError(f"--where: nested deeper than {MAX_NESTING} parentheses or 'not's")
            inner = self._nested()
            self.depth -= 1
            return inner
        kind, name = self._take()
        if kind != "word" or name in ("and", "or", "not"):
            self.position -= 1
            raise self._fail("a score name")
        op_kind, op = self._take()
        if op_kind != "op":
            self.position -= 1
            raise self._fail(f"a comparison after {name!r}")
        number_kind, number = self._take()
        if number_kind != "num":
            self.position -= 1
            raise self._fail(f"a number after '{name} {op}'")
        return Compare(name, op, float(number))

    def _nested(self) -> Condition:
        if self._take() == ("word", "not"):
            return BoolOp("not", (self.negation(),))
        inner = self.disjunction()
        if self._take() != ("paren", ")"):
            raise self._fail("')'")
        return inner


def fields_of(condition: Condition) -> set[str]:
    if isinstance(condition, Compare):
        return {condition.field}
    return set().union(*(fields_of(t) for t in condition.terms))


def thresholds_condition(thresholds: Thresholds, with_quality: bool) -> Condition:
    """The per-filter thresholds as one `and`, in filter order."""
    terms = [
        Compare(f.name, f.op, float(getattr(thresholds, f.name)))
        for f in SELECT_FILTERS
        if f.name != "quality" or with_quality
    ]
    return BoolOp("and", tuple(terms))


@dataclass(frozen=True)
class Selection:
    """A condition split into what is checked per clip and the duplicate terms (checked last,
    over the whole dataset)."""

    terms: tuple[Condition, ...]  # clip-level, in order; the first failing one is the reason
    duplicate: tuple[Compare, ...]
    text: str

    @classmethod
    def of(cls, condition: Condition, with_quality: bool) -> Selection:
        """Check the condition against what the scored data holds; errors name the field."""
        known = set(SCORE_COLUMNS)
        for name in sorted(fields_of(condition)):
            if name not in known:
                raise ValueError(f"select: unknown score {name!r}; scores are {sorted(known)}")
        if "quality" in fields_of(condition) and not with_quality:
            raise ValueError("select: 'quality' needs a quality model (quality_model=model.json)")
        terms = condition.terms if _is_and(condition) else (condition,)
        duplicate = tuple(t for t in terms if "duplicate" in fields_of(t))
        for term in duplicate:
            if not (isinstance(term, Compare) and term.op in (">", ">=")):
                raise ValueError(
                    f"select: the duplicate condition must be a top-level 'and' term like "
                    f"'duplicate >= 16' (the distance to the nearest kept copy), got '{term}'"
                )
        clip_terms = tuple(t for t in terms if t not in duplicate)
        return cls(clip_terms, duplicate, str(condition))


def _is_and(condition: Condition) -> bool:
    return isinstance(condition, BoolOp) and condition.op == "and"
