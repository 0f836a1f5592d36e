"""Every command README.md shows runs as written.

The README's commands are the lines of its shell blocks (continuations joined) that run
`genie ...`, `python -m jobs....` or `make ...`, alone, after `VAR=value`, or after
`ray job submit ... --` or `genie submit ... --`; and its inline code spans that start so.
The `genie` and `python -m jobs` commands are checked in one subprocess (one import of jobs):

- with `--help` added, each exits 0 and prints its usage;
- a shell-block line, or an inline span with options or `key=value`, is parsed as written by
  the command's own parser (required flags, choices, no unknown options); a `genie train` or
  `genie curate` one also builds its config (preset, field names, values) as the command does
  before any work. A `<placeholder>` fails: a shell reads `<run id>` as a redirect. A span
  that only names a command (`genie synth`) gets the `--help` check alone;
- a ```console block holds `$ command` lines, each followed by what it prints: the command runs
  with its work refused (the module's `run` raises) and must print exactly that.

`make` lines are dry-run (`make -n`). And the README names every `genie` subcommand and every
`make` target, so a new user can find each.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
OPERATORS = {";", "&&", "||", "|", "&"}
REDIRECTS = {"<", ">", "<<", ">>"}
SHELL_BLOCKS = ("bash", "sh", "shell", "console")


@dataclasses.dataclass(frozen=True)
class Command:
    line: str  # as the README writes it
    kind: str  # "module" (genie / python -m jobs.X) or "make"
    argv: tuple[str, ...]  # after `genie` / `python -m jobs.X` / `make`
    module: str = ""
    prog: str = ""
    fenced: bool = True  # a fenced line, not an inline span

    @property
    def as_written(self) -> bool:
        """Parsed as written: a fenced line, or an inline span with options or key=value (a
        span that only names a command, like `genie synth`, gets --help alone)."""
        return self.fenced or any(a.startswith("-") or "=" in a for a in self.argv)


def shell_lines(block: str) -> list[str]:
    """A block's lines with `\\` continuations joined."""
    return block.replace("\\\n", " ").splitlines()


def commands_in(line: str, fenced: bool) -> list[Command]:
    """The genie / python -m jobs / make commands of one shell line."""
    from jobs.cli import SUBCOMMANDS

    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    segments: list[list[str]] = [[]]
    for token in tokens:
        if token in OPERATORS:
            segments.append([])
        else:
            segments[-1].append(token)
    found = []
    for words in segments:
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            words = words[1:]  # VAR=value before the command
        if words[:3] == ["ray", "job", "submit"] and "--" in words:
            words = words[words.index("--") + 1 :]
        if not words:
            continue
        if words[0] == "genie" or words[0].endswith("/genie"):
            rest = words[1:]
            if rest and rest[0] in SUBCOMMANDS:
                module, prog, rest = SUBCOMMANDS[rest[0]][0], f"genie {rest[0]}", rest[1:]
            else:
                module, prog = "jobs.cli", "genie"
            found.append(Command(line, "module", tuple(rest), module, prog, fenced))
            if prog == "genie submit" and "--" in rest:  # and the command it submits
                found += commands_in(shlex.join(rest[rest.index("--") + 1 :]), fenced)
        elif words[:2] == ["python", "-m"] and len(words) > 2 and words[2].startswith("jobs."):
            found.append(Command(line, "module", tuple(words[3:]), words[2], "", fenced))
        elif words[0] == "make":
            found.append(Command(line, "make", tuple(words[1:]), fenced=fenced))
    return found


def readme_commands() -> tuple[list[Command], list[tuple[str, str]]]:
    """(commands, console examples as (command line, expected output))."""
    text = README.read_text()
    commands: list[Command] = []
    console: list[tuple[str, str]] = []
    for language, block in FENCE.findall(text):
        if language not in SHELL_BLOCKS:
            continue  # a diagram or a tree
        if language == "console":
            for example in re.split(r"^\$ ", block, flags=re.M)[1:]:
                command, _, output = example.partition("\n")
                console.append((command, output.strip()))
            continue
        for line in shell_lines(block):
            commands += commands_in(line, fenced=True)
    prose = FENCE.sub("", text)
    for span in INLINE.findall(prose):
        if re.match(r"(genie|make)( |$)|python -m jobs\.\w", span) and "<" not in span:
            commands += commands_in(span, fenced=False)
    return commands, console


# ---- run in the subprocess -------------------------------------------------------------


def _call(function, *args) -> tuple[int, str, object]:
    """(exit code, stdout + stderr, what it returned) of a CLI function that may exit."""
    output = io.StringIO()
    returned = None
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        try:
            returned = function(*args)
            code = returned if isinstance(returned, int) else 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return code, output.getvalue(), returned


def _main(command: dict):
    module = importlib.import_module(command["module"])
    if command["module"] == "jobs.cli":
        return lambda argv: module.main(argv)
    return lambda argv: module.main(argv, prog=command["prog"] or None)


def _config_check(command: dict, args) -> None:
    """Build the config of a train or curate line as the command would before any work."""
    from jobs.common.config import load_config

    if command["module"] == "jobs.train":
        from jobs.training.config import PRESETS_DIR, TrainConfig

        stage = [f"stage={args.stage}"] if args.stage else []
        load_config(TrainConfig, args.preset, [*stage, *args.overrides], PRESETS_DIR)
    elif command["module"] == "jobs.curate" and args.command != "fit-quality":
        from jobs.curation.config import PRESETS_DIR, CurateConfig

        config = load_config(CurateConfig, args.preset, args.overrides, PRESETS_DIR)
        if args.where:
            dataclasses.replace(config, where=args.where)


def check_in_process(commands: list[dict], console: list[str]) -> dict:
    """Problems of each command (by index), and the output of each console example."""
    problems: dict[int, str] = {}
    for index, command in enumerate(commands):
        argv = list(command["argv"])
        # Before any `--`: after it, `--help` would belong to a command `genie submit` runs.
        cut = argv.index("--") if "--" in argv else len(argv)
        try:
            code, output, _ = _call(_main(command), [*argv[:cut], "--help", *argv[cut:]])
        except Exception as error:  # an import or a crash: what a user would see
            problems[index] = f"--help raised {error!r}"
            continue
        if code != 0 or "usage:" not in output:
            problems[index] = f"--help exited {code}: {output[-500:]}"
            continue
        if not command["as_written"] or command["module"] == "jobs.cli":
            continue
        if "--help" in argv or "-h" in argv:
            continue  # it only asks for help: checked above
        parser = importlib.import_module(command["module"]).build_parser(command["prog"] or None)
        code, output, args = _call(parser.parse_args, argv)
        if code != 0:
            problems[index] = f"does not parse: {output.strip()[-500:]}"
            continue
        try:
            _config_check(command, args)
        except Exception as error:
            problems[index] = f"config: {error}"
    outputs = []
    for line in console:
        command = commands_in(line, fenced=True)[0]
        module = importlib.import_module(command.module)

        def refuse(*args, **kwargs):
            raise RuntimeError("a README console example got past its checks and would run")

        if not hasattr(module, "run"):  # nothing to refuse: do not run it at all
            outputs.append(f"{command.module} has no `run` to refuse; not run")
            continue
        module.run = refuse
        _, output, _ = _call(_main(dataclasses.asdict(command)), list(command.argv))
        outputs.append(output.strip())
    return {"problems": problems, "outputs": outputs}


# ---- the tests -------------------------------------------------------------------------

COMMANDS, CONSOLE = readme_commands()


def test_readme_shows_commands_of_each_kind():
    kinds = {(c.kind, c.fenced) for c in COMMANDS}
    assert {("module", True), ("make", True), ("module", False)} <= kinds
    assert CONSOLE, "the README shows no console example"


def test_readme_commands_have_no_placeholders_a_shell_would_misread():
    bad = []
    for language, block in FENCE.findall(README.read_text()):
        for line in shell_lines(block) if language in ("bash", "sh", "shell") else []:
            if not commands_in(line, fenced=True):
                continue
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            if REDIRECTS & set(lexer):
                bad.append(line)
    assert not bad, "write a real value, not <...> (a shell reads it as a redirect):\n" + "\n".join(
        bad
    )


def test_every_genie_and_python_command_in_the_readme_runs_as_written():
    modules = [
        {**dataclasses.asdict(c), "as_written": c.as_written}
        for c in COMMANDS
        if c.kind == "module"
    ]
    result = subprocess.run(
        [sys.executable, "-m", "tests.test_readme"],
        input=json.dumps({"commands": modules, "console": [line for line, _ in CONSOLE]}),
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    problems = [f"{modules[int(i)]['line']!r}: {why}" for i, why in report["problems"].items()]
    assert not problems, "README commands that do not run as written:\n" + "\n".join(problems)
    for (line, expected), printed in zip(CONSOLE, report["outputs"], strict=True):
        assert printed == expected, (
            f"README says `{line}` prints {expected!r}; it prints {printed!r}"
        )


def test_every_make_command_in_the_readme_dry_runs():
    failed = []
    for command in (c for c in COMMANDS if c.kind == "make"):
        result = subprocess.run(
            ["make", "-n", *command.argv], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            failed.append(f"{command.line!r}: {result.stderr.strip()[-300:]}")
    assert not failed, "make lines of the README that make -n refuses:\n" + "\n".join(failed)


def test_readme_names_every_genie_command_and_make_target():
    from jobs.cli import SUBCOMMANDS

    named = {c.prog.removeprefix("genie ") for c in COMMANDS if c.prog.startswith("genie ")}
    phony = re.search(r"^\.PHONY:(.*)$", (REPO / "Makefile").read_text(), re.M)
    targets = set(phony.group(1).split()) if phony else set()
    made = {c.argv[0] for c in COMMANDS if c.kind == "make" and c.argv}
    assert not set(SUBCOMMANDS) - named, (
        f"genie commands the README never names: {set(SUBCOMMANDS) - named}"
    )
    assert not targets - made, f"make targets the README never names: {targets - made}"


if __name__ == "__main__":  # the subprocess: JSON in, JSON out
    request = json.load(sys.stdin)
    print(json.dumps(check_in_process(request["commands"], request["console"])))
