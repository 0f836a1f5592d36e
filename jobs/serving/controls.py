"""The player's controls: the game's own actions where evaluation mapped them to latent codes,
"latent k" buttons for the codes no true action maps to.

`genie eval` writes the map (`action_map.json` in its --out folder, MLflow artifact
`eval/action_map.json` of the eval run) from how the LAM's codes line up with the game's true
actions on held-out footage:

    {"names": ["noop", "left", "right", "jump", ...],   # true action names, index = true id
     "code_for_action": {"left": 2, "right": 5, ...},   # the code each true action most often
                                                        # gets; absent when unmapped
     "source": "<eval run id>"}

A named action gets keys from its name: arrows for left/right/up/down, Space for jump, both
for a combination such as "left+jump"; a latent code k keeps the digit key k+1 (1..9).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

# Key (KeyboardEvent.key) for each part of an action name.
KEYS = {"left": "ArrowLeft", "right": "ArrowRight", "up": "ArrowUp", "down": "ArrowDown",
        "jump": " "}  # fmt: skip
MAX_MAP_BYTES = 64 * 1024


class ActionMapError(ValueError):
    """An action map file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class ActionMap:
    names: tuple[str, ...]
    code_for_action: dict[str, int]
    source: str


@dataclass(frozen=True)
class Control:
    """One button of the page: the latent `code` it sends, its label and its keys."""

    code: int
    label: str
    keys: tuple[str, ...]
    named: bool  # a true action of the game (else "latent k")


def load_action_map(path: str | Path, num_actions: int) -> ActionMap:
    """The action map at `path`, checked against a world with `num_actions` latent codes.

    Raises ActionMapError naming the file and what is wrong with it.
    """
    path = Path(path)

    def fail(problem: str) -> ActionMapError:
        return ActionMapError(f"action map {path}: {problem}")

    if not path.is_file():
        raise fail("no such file")
    if path.stat().st_size > MAX_MAP_BYTES:
        raise fail(f"{path.stat().st_size:,} bytes; an action map is under {MAX_MAP_BYTES:,}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise fail(f"not JSON ({error})") from None
    if not isinstance(data, dict):
        raise fail(f"expected a JSON object, got {type(data).__name__}")
    missing = {"names", "code_for_action"} - set(data)
    if missing:
        raise fail(f"missing field(s) {sorted(missing)}; it needs 'names' and 'code_for_action'")
    names, codes = data["names"], data["code_for_action"]
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise fail("'names' must be a list of non-empty strings (index = true action id)")
    if len(set(names)) != len(names):
        raise fail(f"'names' repeats a name: {names}")
    if not isinstance(codes, dict):
        raise fail("'code_for_action' must be an object {name: latent code}")
    for name, code in codes.items():
        if name not in names:
            raise fail(f"'code_for_action' names {name!r}, which is not in 'names' {names}")
        if not isinstance(code, int) or isinstance(code, bool) or not 0 <= code < num_actions:
            raise fail(
                f"'code_for_action'[{name!r}] must be a latent code in 0..{num_actions - 1} "
                f"(this world has {num_actions}), got {code!r}"
            )
    source = data.get("source", "")
    if not isinstance(source, str):
        raise fail(f"'source' must be a string (the eval run id), got {source!r}")
    return ActionMap(tuple(names), dict(codes), source)


def action_keys(name: str) -> tuple[str, ...]:
    """Keys for an action name: 'left+jump' -> ('ArrowLeft', ' '); () when a part has no key."""
    parts = name.lower().replace(" ", "").split("+")
    if not all(part in KEYS for part in parts):
        return ()
    return tuple(KEYS[part] for part in parts)


def controls(num_actions: int, action_map: ActionMap | None = None) -> list[Control]:
    """The page's buttons: named ones in the map's order, then "latent k" for the other codes."""
    named = []
    if action_map is not None:
        for name in action_map.names:
            if name in action_map.code_for_action:
                code = action_map.code_for_action[name]
                named.append(Control(code, name, action_keys(name), named=True))
    mapped = {control.code for control in named}
    latent = [
        Control(code, f"latent {code}", (str(code + 1),) if code < 9 else (), named=False)
        for code in range(num_actions)
        if code not in mapped
    ]
    return named + latent


def action_names(num_actions: int, action_map: ActionMap | None) -> list[str] | None:
    """Per latent code, the true action it stands for (the first in the map's order that maps
    to it) or "latent k"; None without a map. What a recording's `action_name` column holds."""
    if action_map is None:
        return None
    by_code = {c.code: c.label for c in reversed(controls(num_actions, action_map))}
    return [by_code[code] for code in range(num_actions)]


def controls_json(items: list[Control]) -> list[dict]:
    return [asdict(control) | {"keys": list(control.keys)} for control in items]
