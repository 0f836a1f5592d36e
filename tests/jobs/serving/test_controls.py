"""Action maps (genie eval's action_map.json) and the controls the play page shows from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.serving.controls import ActionMapError, action_names, controls, load_action_map

NAMES = ["noop", "left", "right", "jump", "left+jump", "right+jump"]


def write_map(folder: Path, data) -> Path:
    path = folder / "action_map.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_named_controls_for_mapped_codes_and_latent_buttons_for_the_rest(tmp_path):
    path = write_map(
        tmp_path,
        {"names": NAMES, "code_for_action": {"left": 2, "right": 5, "left+jump": 0, "noop": 7},
         "source": "abc123"},
    )  # fmt: skip
    action_map = load_action_map(path, num_actions=8)
    assert action_map.source == "abc123"
    shown = {c.label: (c.code, c.keys, c.named) for c in controls(8, action_map)}
    assert shown == {
        "noop": (7, (), True),  # no key: a button
        "left": (2, ("ArrowLeft",), True),
        "right": (5, ("ArrowRight",), True),
        "left+jump": (0, ("ArrowLeft", " "), True),
        "latent 1": (1, ("2",), False),
        "latent 3": (3, ("4",), False),
        "latent 4": (4, ("5",), False),
        "latent 6": (6, ("7",), False),
    }
    names = action_names(8, action_map)
    assert names[2] == "left" and names[0] == "left+jump" and names[1] == "latent 1"

    # Without a map: latent buttons 1..|A|, keys 1..9.
    plain = controls(10)
    assert [c.label for c in plain] == [f"latent {k}" for k in range(10)]
    assert [c.keys for c in plain][8:] == [("9",), ()]
    assert action_names(10, None) is None


def test_two_true_actions_on_one_code_both_get_a_control(tmp_path):
    path = write_map(tmp_path, {"names": NAMES, "code_for_action": {"noop": 3, "jump": 3}})
    shown = [(c.label, c.code) for c in controls(4, load_action_map(path, 4))]
    assert shown == [("noop", 3), ("jump", 3), ("latent 0", 0), ("latent 1", 1), ("latent 2", 2)]
    assert action_names(4, load_action_map(path, 4))[3] == "noop"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ({"names": NAMES}, "missing field(s) ['code_for_action']"),
        ({"names": "left", "code_for_action": {}}, "'names' must be a list of non-empty strings"),
        ({"names": ["left", "left"], "code_for_action": {}}, "'names' repeats a name"),
        ({"names": NAMES, "code_for_action": [2]}, "'code_for_action' must be an object"),
        ({"names": NAMES, "code_for_action": {"fly": 1}}, "names 'fly', which is not in 'names'"),
        ({"names": NAMES, "code_for_action": {"left": 8}},
         "'code_for_action'['left'] must be a latent code in 0..7 (this world has 8), got 8"),
        ({"names": NAMES, "code_for_action": {"left": "2"}}, "got '2'"),
        ({"names": NAMES, "code_for_action": {"left": True}}, "got True"),
        ({"names": NAMES, "code_for_action": {}, "source": 5}, "'source' must be a string"),
    ],
)  # fmt: skip
def test_a_bad_action_map_is_refused_naming_the_problem(tmp_path, content, problem):
    path = write_map(tmp_path, content)
    with pytest.raises(ActionMapError) as error:
        load_action_map(path, num_actions=8)
    assert str(path) in str(error.value) and problem in str(error.value)


def test_a_missing_or_huge_action_map_is_refused(tmp_path):
    with pytest.raises(ActionMapError, match="no such file"):
        load_action_map(tmp_path / "absent.json", 8)
    huge = write_map(tmp_path, " " * 100_000 + "{}")
    with pytest.raises(ActionMapError, match="100,002 bytes"):
        load_action_map(huge, 8)
