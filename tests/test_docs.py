"""No file in the repo cites a file that is not in the repo.

Markdown, Python (code, docstrings and comments; in tests only docstrings and comments, as
tests make up paths on purpose), YAML, the Makefile and CI scripts name files such as
`jobs/training/config.py` or `platform/README.md`; each named file must be in the repo, so a
reader can open it. Two kinds of mention are checked:

- a path with a folder, ending in a source or document suffix (`models/lam.py`,
  `cluster/raycluster.yaml`): it must be a repo file, relative to the repo root, to the citing
  file's folder, or the tail of a repo path (a Makefile comment may say `models/i3d.py`);
- a bare document or module name (`README.md`, `localctl.py`): some repo file has that name.

In Markdown, a backticked path whose first folder is a repo folder (`jobs/`, `tests/`, ...)
must exist too, whatever it ends in (`jobs/configs/train/`).
"""

from __future__ import annotations

import ast
import io
import os
import re
import subprocess
import tokenize
from pathlib import Path

from tests import sources

REPO = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".html", ".ini", ""}
CITED_SUFFIXES = "py|md|yaml|yml|toml|html|ini|sql|cfg"
# `jobs/training/config.py`, `platform/README.md`, `cluster/raycluster.yaml`.
PATH_WITH_FOLDER = re.compile(
    rf"(?<![\w./:-])((?:[\w.-]+/)+[\w-][\w.-]*\.(?:{CITED_SUFFIXES}))(?![\w/-])"
)
# `README.md`, `localctl.py`.
BARE_NAME = re.compile(r"(?<![\w./:-])([\w-][\w.-]*\.(?:md|py))(?![\w/-])")
BACKTICKED = re.compile(r"`([^`\s]+)`")
# Runtime folders and user data named in docs: not repo files.
NOT_REPO = (".genie/", ".venv/", "~/", "/tmp/", "data/")


def repo_files() -> list[str]:
    """Tracked files plus new ones not ignored: what the next commit holds."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout.split("\n")  # fmt: skip
        return sorted(p for p in listed if p and (REPO / p).is_file())
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk it
        skip = {".git", ".venv", ".genie", "__pycache__", ".pytest_cache", ".ruff_cache"}
        found = []
        for root, dirs, files in os.walk(REPO):
            dirs[:] = [d for d in dirs if d not in skip and not d.endswith(".egg-info")]
            found += [str((Path(root) / f).relative_to(REPO)) for f in files]
        return sorted(found)


FILES = repo_files()
FOLDERS = {str(Path(p).parent) for p in FILES} | {
    str(parent) for p in FILES for parent in Path(p).parents
}
NAMES = {Path(p).name for p in FILES}
TOP_FOLDERS = {Path(p).parts[0] for p in FILES if len(Path(p).parts) > 1}


def exists(cited: str, citing: str) -> bool:
    """A cited path is in the repo; a cited test (path, two colons, name) is defined there."""
    if "::" in cited:
        path, name = cited.split("::", 1)
        name = name.split("[", 1)[0]
        return path in FILES and f"def {name}(" in (REPO / path).read_text(errors="replace")
    cited = cited.rstrip("/")
    if "/" not in cited:
        return cited in NAMES or cited in TOP_FOLDERS
    here = Path(citing).parent
    candidates = {cited.lstrip("./"), os.path.normpath(here / cited)}
    if any(c in FILES or c in FOLDERS for c in candidates):
        return True
    return any(p.endswith("/" + cited) for p in FILES)


def citations(path: str, text: str) -> set[str]:
    cited = {m.group(1) for m in PATH_WITH_FOLDER.finditer(text)}
    cited |= {m.group(1) for m in BARE_NAME.finditer(text)}
    if path.endswith(".md"):
        for span in BACKTICKED.findall(text):
            first = span.split("/", 1)[0]
            if "/" in span and first in TOP_FOLDERS and not any(c in span for c in "<>*{$"):
                cited.add(span)
    return {c for c in cited if not c.startswith(NOT_REPO) and "://" not in c}


def docstrings_and_comments(source: str) -> str:
    """The prose of a Python file: its docstrings and comments."""
    tree = sources.parse(source)
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    parts = [
        ast.get_docstring(n, clean=False) or "" for n in ast.walk(tree) if isinstance(n, kinds)
    ]
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    parts += [t.string for t in tokens if t.type == tokenize.COMMENT]
    return "\n".join(parts)


def test_no_file_cites_a_file_that_is_not_in_the_repo():
    missing = []
    for path in FILES:
        if Path(path).suffix not in TEXT_SUFFIXES or path.startswith("tests/data/"):
            continue
        text = (REPO / path).read_text(errors="replace")
        if path.startswith("tests/") and path.endswith(".py"):
            text = docstrings_and_comments(text)
        missing += [f"{path}: {c}" for c in sorted(citations(path, text)) if not exists(c, path)]
    assert not missing, "cited but not in the repo:\n" + "\n".join(missing)


def test_the_check_sees_a_missing_file():
    """The scanner itself: a made-up citation is reported, real ones are not."""
    text = "See NO_SUCH_NOTES.md and `jobs/no_such_module.py`; `jobs/training/config.py` is real."
    found = {c for c in citations("README.md", text) if not exists(c, "README.md")}
    assert found == {"NO_SUCH_NOTES.md", "jobs/no_such_module.py"}
