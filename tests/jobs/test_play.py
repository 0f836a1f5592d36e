"""`genie play` and `genie rollout` with real (untrained, tiny) models on the session's Ray.

The play server is the real Serve application on the local platform's cluster; the browser
test drives Debian's Chromium with Playwright, as a player would. Untrained models are enough:
what is checked is the plumbing (a frame per action, the action reaching the model, limits),
not the pictures' quality. MaskGIT runs 4 rounds a frame to keep the file fast.
"""

from __future__ import annotations

import json
import secrets
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from jobs.rollout import main as rollout_main
from jobs.serving.app import PlayError, PlayLimits, SessionStore, curated_prompts, start_play_server
from models.checkpoint import build_model, save_trained
from pipelines.video import read_frames
from tests.clips import write_clips
from tests.conftest import free_ports

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LIMITS = PlayLimits(
    max_sessions=4, max_upload_bytes=256 * 1024, max_image_pixels=1_000_000, max_frames=12
)
FRAME_SHAPE = (3, 90, 160)
MASKGIT_STEPS = 4


def png_bytes(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    untrained = build_model("tokenizer", "tiny")
    # An untrained tokenizer decodes every token grid to the same grey (its output layer starts
    # at zero); random output weights make different tokens give different frames, as trained.
    torch.nn.init.normal_(untrained.to_pixels[1].weight, std=0.5)
    tokenizer = save_trained(untrained, "tokenizer", "tiny", 0, folder / "tokenizer.pt")
    dynamics = save_trained(
        build_model("dynamics", "tiny"), "dynamics", "tiny", 0, folder / "dynamics.pt"
    )
    return tokenizer, dynamics


@pytest.fixture(scope="module")
def play_url(ray_cluster, tiny_models, tmp_path_factory) -> Iterator[str]:
    from ray import serve

    clips = write_clips(tmp_path_factory.mktemp("clips"), 3, frames=4)
    prompts = curated_prompts(str(clips), limit=2)
    tokenizer, dynamics = tiny_models
    url = start_play_server(
        str(tokenizer),
        str(dynamics),
        prompts,
        port=free_ports(1)[0],
        maskgit_steps=MASKGIT_STEPS,
        limits=LIMITS,
    )
    yield url
    serve.shutdown()


def call(
    url: str, method: str, path: str, body: bytes | dict | None = None, content_type: str = ""
) -> tuple[int, dict | bytes]:
    """(status, JSON or raw bytes) of one request, 4xx/5xx included."""
    if isinstance(body, dict):
        body, content_type = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(url.rstrip("/") + path, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, data, kind = response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        status, data, kind = error.code, error.read(), error.headers["Content-Type"]
    return status, json.loads(data) if kind and "json" in kind else data


def new_session(url: str, prompt: str = "clip000") -> str:
    status, body = call(url, "POST", "/sessions", {"prompt": prompt})
    assert status == 201, body
    return body["session"]


def assert_serving(url: str) -> None:
    status, body = call(url, "GET", "/info")
    assert status == 200 and body["num_actions"] == 8


# --- prompt images (no server) ---------------------------------------------------------------


def test_full_store_refuses_then_evicts_the_least_recently_used_idle_session():
    busy = SessionStore(max_sessions=2, idle_eviction_s=3600)
    first = busy.add(object())
    busy.add(object())
    with pytest.raises(PlayError) as refused:
        busy.add(object())
    assert refused.value.status == 429
    busy.get(first)  # still there

    idle = SessionStore(max_sessions=2, idle_eviction_s=0)
    first, second = idle.add(object()), idle.add(object())
    idle.get(first)  # `second` is now the least recently used
    idle.add(object())
    with pytest.raises(PlayError) as evicted:
        idle.get(second)
    assert evicted.value.status == 404
    idle.get(first)


# --- genie rollout --------------------------------------------------------------------------


def test_rollout_writes_prompt_plus_one_frame_per_action(tiny_models, tmp_path, capsys):
    tokenizer, dynamics = tiny_models
    prompt = tmp_path / "prompt.jpg"
    cv2.imwrite(str(prompt), np.full((360, 480, 3), 90, np.uint8))  # 4:3, cropped to 16:9
    out = tmp_path / "out.mp4"
    common = ["--prompt", str(prompt), "--out", str(out), "--tokenizer", str(tokenizer)]
    common += ["--dynamics", str(dynamics), "--maskgit-steps", "2"]
    assert rollout_main(["--actions", "0,3,7", *common]) == 0
    assert read_frames(out).shape == (4, 360, 640, 3)  # prompt + 3 actions, 4x upscaled

    for actions, message in [("0,9,1", "9 is out of range"), ("0,x", "'x' is not an integer")]:
        with pytest.raises(SystemExit) as exit_:
            rollout_main(["--actions", actions, *common])
        assert exit_.value.code == 2 and message in capsys.readouterr().err


# --- the play server's API ------------------------------------------------------------------


def test_play_session_steps_resets_and_downloads(play_url):
    status, info = call(play_url, "GET", "/info")
    assert status == 200
    assert info["prompts"] == ["clip000", "clip001"] and info["num_actions"] == 8
    status, thumbnail = call(play_url, "GET", "/prompts/clip001.png")
    assert status == 200 and thumbnail.startswith(b"\x89PNG")

    status, start = call(play_url, "POST", "/sessions", {"prompt": "clip000"})
    assert status == 201 and start["index"] == 0, start
    session = start["session"]
    frames = []
    for action in (1, 5):
        status, step = call(play_url, "POST", f"/sessions/{session}/step", {"action": action})
        assert status == 200 and step["index"] == len(frames) + 1 and step["action"] == action
        assert step["frame"].startswith("data:image/png;base64,")
        frames.append(step["frame"])
    assert len({start["frame"], *frames}) == 3

    # After a reset the same seed replays: the same action gives the same frame, another
    # action a different one, so the difference comes from the action, not the sampling.
    status, reset = call(play_url, "POST", f"/sessions/{session}/reset")
    assert status == 200 and reset == {"frame": start["frame"], "index": 0, "ms": 0.0}
    status, again = call(play_url, "POST", f"/sessions/{session}/step", {"action": 1})
    assert again["frame"] == frames[0]
    call(play_url, "POST", f"/sessions/{session}/reset")
    status, other = call(play_url, "POST", f"/sessions/{session}/step", {"action": 2})
    assert status == 200 and other["frame"] != frames[0]

    status, video = call(play_url, "GET", f"/sessions/{session}/video.mp4")
    assert status == 200 and read_frames(video).shape == (2, 360, 640, 3)
    assert call(play_url, "DELETE", f"/sessions/{session}")[0] == 204
    assert call(play_url, "GET", f"/sessions/{session}/video.mp4")[0] == 404


def test_play_upload_starts_a_session(play_url):
    image = np.zeros((720, 1280, 3), np.uint8)
    image[:, :640] = (255, 0, 0)  # blue left half (BGR)
    for body, content_type in [
        (png_bytes(image), "image/png"),
        (cv2.imencode(".jpg", image)[1].tobytes(), "image/jpeg"),
    ]:
        status, start = call(play_url, "POST", "/sessions", body, content_type)
        assert status == 201, start
        status, step = call(play_url, "POST", f"/sessions/{start['session']}/step", {"action": 0})
        assert status == 200 and step["index"] == 1
        call(play_url, "DELETE", f"/sessions/{start['session']}")


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (8, "action must be in 0..7 (this model has 8), got 8"),
        (-1, "got -1"),
        ("3", "action: Input should be a valid integer"),
        (1.5, "action: Input should be a valid integer"),
        (None, "action: Input should be a valid integer"),
    ],
)
def test_play_rejects_bad_actions(play_url, action, expected):
    session = new_session(play_url)
    status, body = call(play_url, "POST", f"/sessions/{session}/step", {"action": action})
    assert status == 422 and expected in body["error"]
    status, step = call(play_url, "POST", f"/sessions/{session}/step", {"action": 7})
    assert status == 200 and step["index"] == 1
    call(play_url, "DELETE", f"/sessions/{session}")


def test_play_rejects_bad_uploads_and_sessions_and_keeps_serving(play_url):
    text = b"just some text, not an image"
    cases = [
        # (method, path, body, content type) -> (status, words in the error)
        (("POST", "/sessions", text, "image/png"), (415, "not a PNG or JPEG")),
        (("POST", "/sessions", text, "text/plain"), (415, "text/plain is not accepted")),
        (("POST", "/sessions", b"\x89PNG" + bytes(300_000), "image/png"), (413, "limit")),
        (("POST", "/sessions", png_bytes(np.zeros((1100, 1000, 3), np.uint8)), "image/png"),
         (413, "1000x1100")),
        (("POST", "/sessions", b"{not json", "application/json"), (400, "not JSON")),
        (("POST", "/sessions", {"prompt": "../../etc/passwd"}, ""), (404, "unknown prompt")),
        (("POST", "/sessions", {"clip": "clip000"}, ""), (422, "expected")),
        (("POST", f"/sessions/{secrets.token_urlsafe(16)}/step", {"action": 0}, ""),
         (404, "unknown session")),
        (("POST", "/sessions/not-a-session-id/step", {"action": 0}, ""), (400, "malformed")),
        (("GET", "/sessions/" + "A" * 21 + "!/video.mp4", None, ""), (400, "malformed")),
        (("POST", f"/sessions/{secrets.token_urlsafe(16)}/reset", None, ""), (404, "unknown")),
        (("GET", "/prompts/nope.png", None, ""), (404, "unknown prompt")),
        (("GET", "/no/such/page", None, ""), (404, "Not Found")),
    ]  # fmt: skip
    for request, (expected_status, words) in cases:
        status, body = call(play_url, *request)
        assert status == expected_status, (request[:2], status, body)
        assert words in body["error"], (request[:2], body)
        assert_serving(play_url)


def test_play_limits_sessions_and_frames(play_url):
    created = []
    for _ in range(LIMITS.max_sessions + 1):
        status, body = call(play_url, "POST", "/sessions", {"prompt": "clip001"})
        if status != 201:
            break
        created.append(body["session"])
    assert status == 429 and "sessions are live" in body["error"]
    assert 0 < len(created) <= LIMITS.max_sessions
    for session in created[1:]:
        call(play_url, "DELETE", f"/sessions/{session}")

    session = created[0]
    for _ in range(LIMITS.max_frames - 1):
        status, _ = call(play_url, "POST", f"/sessions/{session}/step", {"action": 0})
        assert status == 200
    status, body = call(play_url, "POST", f"/sessions/{session}/step", {"action": 0})
    assert status == 409 and f"{LIMITS.max_frames} frames" in body["error"]
    assert call(play_url, "POST", f"/sessions/{session}/reset")[0] == 200
    assert call(play_url, "POST", f"/sessions/{session}/step", {"action": 0})[0] == 200
    call(play_url, "DELETE", f"/sessions/{session}")


# --- the page, in a real browser ------------------------------------------------------------


def test_browser_plays_two_actions(play_url, tmp_path):
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` to run this test")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(play_url)
            frame = page.locator("#frame")

            page.locator('#prompts img[data-prompt="clip000"]').click()
            expect(frame).to_have_attribute("data-index", "0")
            prompt_src = frame.get_attribute("src")

            page.keyboard.press("1")  # key 1 = action 0
            expect(frame).to_have_attribute("data-index", "1")
            after_key = frame.get_attribute("src")
            expect(page.locator("#status")).to_contain_text("ms/frame")

            page.locator("#reset").click()
            expect(frame).to_have_attribute("data-index", "0")
            page.locator("#action-2").click()  # button 3 = action 2, from the same state
            expect(frame).to_have_attribute("data-index", "1")
            after_button = frame.get_attribute("src")
            page.keyboard.press("4")
            expect(frame).to_have_attribute("data-index", "2")
            expect(page.locator("#strip img")).to_have_count(3)

            assert len({prompt_src, after_key, after_button}) == 3
            assert page.locator("#error").text_content() == ""
            assert errors == []
            screenshot = tmp_path / "play.png"
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 10_000
        finally:
            browser.close()
