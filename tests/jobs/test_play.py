"""`genie play` and `genie rollout` with real (untrained, tiny) models on the session's Ray.

The play server is the real Serve application on the local platform's cluster; the browser
test drives Debian's Chromium with Playwright, as a player would. Untrained models are enough:
what is checked is the plumbing (a frame per action, the action reaching the model, limits),
not the pictures' quality, except that the test world is set to scroll for two latent codes,
so the named controls can be checked to move it. MaskGIT runs 4 rounds a frame to keep the
file fast.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import secrets
import shutil
import tracemalloc
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import torch

from jobs.curate import main as curate_main
from jobs.play import main as play_main
from jobs.rollout import main as rollout_main
from jobs.serving.app import PlayConfig, PlayServer, curated_prompts, start_play_server
from jobs.serving.controls import load_action_map
from jobs.serving.sessions import PlayError, PlayLimits
from models.checkpoint import build_model, save_trained
from models.dynamics import NEIGHBOURS
from models.metrics import camera_motion
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
LEFT, RIGHT = 1, 2  # the latent codes the test world scrolls with
ACTION_MAP = {"names": ["noop", "left", "right", "jump"],
              "code_for_action": {"left": LEFT, "right": RIGHT}, "source": "test"}  # fmt: skip


def png_bytes(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def scrolling_dynamics() -> torch.nn.Module:
    """The untrained tiny dynamics model, except that latent code RIGHT makes every token copy
    the frame before's token one column to the right (the scene slides left: the camera moves
    right) and LEFT the one to the left; other codes do what these untrained weights make of
    them.

    Width 0 and 1 of the embeddings carry only these two codes' actions, loud enough to rule
    the final norm's output there, and the copy choices read them."""
    torch.manual_seed(0)
    model = build_model("dynamics", "tiny")
    with torch.no_grad():
        for table in (model.token_embed.weight, model.action_embed.weight):
            table[:, :2] = 0.0
        model.transformer.spatial_position[:, :2] = 0.0
        for code, neighbour, width in ((RIGHT, (0, 1), 0), (LEFT, (0, -1), 1)):
            model.action_embed.weight[code, width] = 100.0
            model.to_choice.weight[NEIGHBOURS.index(neighbour), width] = 3.0
    return model


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    untrained = build_model("tokenizer", "tiny")
    # An untrained tokenizer decodes every token grid to the same grey (its output layer starts
    # at zero); random output weights make different tokens give different frames, as trained.
    torch.nn.init.normal_(untrained.to_pixels[1].weight, std=0.5)
    tokenizer = save_trained(untrained, "tokenizer", "tiny", 0, folder / "tokenizer.pt")
    dynamics = save_trained(scrolling_dynamics(), "dynamics", "tiny", 0, folder / "dynamics.pt")
    return tokenizer, dynamics


@pytest.fixture(scope="module")
def action_map_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("eval") / "action_map.json"
    path.write_text(json.dumps(ACTION_MAP))
    return path


@pytest.fixture(scope="module")
def record_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("recordings")


@pytest.fixture(scope="module")
def play_url(
    ray_cluster, tiny_models, action_map_file, record_dir, tmp_path_factory
) -> Iterator[str]:
    from ray import serve

    clips = write_clips(tmp_path_factory.mktemp("clips"), 3, frames=4)
    prompts = curated_prompts(str(clips), limit=2)
    tokenizer, dynamics = tiny_models
    config = PlayConfig(
        maskgit_steps=MASKGIT_STEPS,
        limits=LIMITS,
        record_dir=str(record_dir),
        action_map=load_action_map(action_map_file, 8),
    )
    url = start_play_server(
        str(tokenizer), str(dynamics), prompts, port=free_ports(1)[0], config=config
    )
    yield url
    serve.shutdown()


def call(
    url: str,
    method: str,
    path: str,
    body: bytes | dict | None = None,
    content_type: str = "",
    host: str = "",
) -> tuple[int, dict | bytes]:
    """(status, JSON or raw bytes) of one request, 4xx/5xx included."""
    if isinstance(body, dict):
        body, content_type = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(url.rstrip("/") + path, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    if host:
        request.add_header("Host", host)
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


def local_server(tiny_models, **config) -> PlayServer:
    """The play server's replica class, built in this process (no Serve, no HTTP)."""
    tokenizer, dynamics = tiny_models
    return PlayServer(str(tokenizer), str(dynamics), None, {}, PlayConfig(**config))


def prompt_image() -> np.ndarray:
    """A 160x90 RGB mosaic of random 8-pixel tiles, one a token: a scroll moves all of it."""
    tiles = np.random.default_rng(0).integers(0, 255, (12, 20, 3), dtype=np.uint8)
    return tiles.repeat(8, axis=0).repeat(8, axis=1)[:90]


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
    # action a different one, so the difference comes from the action, not the sampling. (The
    # other action is not RIGHT: on a prompt whose tokens are the same along each row, copying
    # the left or the right neighbour gives the same grid.)
    status, reset = call(play_url, "POST", f"/sessions/{session}/reset")
    assert status == 200 and reset == {
        "frame": start["frame"],
        "index": 0,
        "ms": 0.0,
        "saved": None,
    }
    status, again = call(play_url, "POST", f"/sessions/{session}/step", {"action": 1})
    assert again["frame"] == frames[0]
    call(play_url, "POST", f"/sessions/{session}/reset")
    status, other = call(play_url, "POST", f"/sessions/{session}/step", {"action": 5})
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


def test_play_answers_only_requests_addressed_to_a_loopback_host(play_url):
    """Issue 18 row 7: a DNS-rebinding page sends its own name as Host; it gets nothing."""
    port = urllib.parse.urlsplit(play_url).port
    for method, path, body in [
        ("GET", "/info", None),
        ("GET", "/prompts/clip000.png", None),
        ("GET", "/", None),
        ("POST", "/sessions", {"prompt": "clip000"}),
    ]:
        for host in ("attacker.example", f"attacker.example:{port}", "127.0.0.1.nip.io"):
            status, answer = call(play_url, method, path, body, host=host)
            assert status == 403 and "is not served here" in answer["error"], (path, host)
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost:8080"):  # port-forwards
        assert call(play_url, "GET", "/info", host=host)[0] == 200


def test_play_caps_the_body_of_every_route(play_url):
    """Issue 18 row 6: every route refuses a body over its cap with 413, /step included, before
    reading it (a 64 MB declared length is answered at once), and goes on serving."""
    session = new_session(play_url)
    json_body = b'{"action": 0, "padding": "' + b"x" * 4096 + b'"}'
    for method, path, body in [
        ("POST", f"/sessions/{session}/step", json_body),
        ("POST", f"/sessions/{session}/record", json_body),
        ("POST", "/sessions", json_body),
        ("POST", f"/sessions/{session}/reset", b"{}"),
        ("GET", "/info", b"{}"),
        ("GET", "/", b"{}"),
        ("GET", "/prompts/clip000.png", b"{}"),
        ("GET", f"/sessions/{session}/video.mp4", b"{}"),
        ("DELETE", f"/sessions/{session}", b"{}"),
    ]:
        status, answer = call(play_url, method, path, body, "application/json")
        assert status == 413, (method, path, status, answer)
        assert "limit for this route" in answer["error"] or "takes no body" in answer["error"]

    address = urllib.parse.urlsplit(play_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    connection.putrequest("POST", f"/sessions/{session}/step")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(64 * 2**20))
    connection.endheaders()  # the body is never sent: the answer comes first
    response = connection.getresponse()
    assert response.status == 413 and "67,108,864 bytes" in json.loads(response.read())["error"]
    connection.close()

    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    chunks = (b"[" + b"0," * 511 + b"0]" for _ in range(64))  # 64 KB, chunked, no length
    connection.request(
        "POST", f"/sessions/{session}/step", chunks, {"Content-Type": "application/json"},
        encode_chunked=True,
    )  # fmt: skip
    response = connection.getresponse()
    assert response.status == 413 and "over the limit" in json.loads(response.read())["error"]
    connection.close()

    assert call(play_url, "POST", f"/sessions/{session}/step", {"action": 0})[0] == 200
    call(play_url, "DELETE", f"/sessions/{session}")


def test_play_records_a_session_in_the_raw_video_layout(play_url, record_dir):
    session = new_session(play_url)
    call(play_url, "POST", f"/sessions/{session}/step", {"action": 0})  # before: not recorded
    status, started = call(play_url, "POST", f"/sessions/{session}/record", {"on": True})
    assert status == 200 and started == {"recording": True, "saved": None,
                                         "folder": str(record_dir)}  # fmt: skip
    for action in (RIGHT, RIGHT, LEFT):
        call(play_url, "POST", f"/sessions/{session}/step", {"action": action})
    status, stopped = call(play_url, "POST", f"/sessions/{session}/record", {"on": False})
    name = stopped["saved"]
    assert status == 200 and stopped["recording"] is False and name.startswith("play-")

    assert read_frames(record_dir / f"{name}.mp4").shape == (4, 90, 160, 3)
    log = pq.read_table(record_dir / f"{name}.actions.parquet").to_pydict()
    assert log["action"] == [RIGHT, RIGHT, LEFT] and log["time_s"] == [0.0, 0.1, 0.2]
    assert log["action_name"] == ["right", "right", "left"]
    manifest = pq.read_table(record_dir / "manifest.parquet").to_pylist()
    assert {"uri": f"{name}.mp4", "actions_uri": f"{name}.actions.parquet"}.items() <= next(
        row for row in manifest if row["uri"] == f"{name}.mp4"
    ).items()

    # Recording on, then the session ends: what was recorded is saved.
    call(play_url, "POST", f"/sessions/{session}/record", {"on": True})
    call(play_url, "POST", f"/sessions/{session}/step", {"action": 0})
    before = len(pq.read_table(record_dir / "manifest.parquet"))
    assert call(play_url, "DELETE", f"/sessions/{session}")[0] == 204
    assert len(pq.read_table(record_dir / "manifest.parquet")) == before + 1

    session = new_session(play_url)
    status, answer = call(play_url, "POST", f"/sessions/{session}/record", {"on": "yes"})
    assert status == 422 and "on: Input should be a valid boolean" in answer["error"]
    call(play_url, "DELETE", f"/sessions/{session}")


# --- the play server's replica, built here --------------------------------------------------


def test_session_slots_are_taken_before_any_model_work(tiny_models):
    """Issue 18 row 17: 6 sessions started at once against a limit of 4 run the models 4 times."""
    server = local_server(tiny_models, maskgit_steps=2, limits=PlayLimits(max_sessions=4))
    model_runs = []
    start_world = server.world.start

    def counted_start(*args, **kwargs):
        model_runs.append(1)
        return start_world(*args, **kwargs)

    server.world.start = counted_start

    def start() -> int:
        try:
            server.start(prompt_image())
            return 201
        except PlayError as error:
            return error.status

    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(pool.map(lambda _: start(), range(6)))
    assert statuses == [201] * 4 + [429] * 2
    assert len(model_runs) == 4


def test_video_download_is_encoded_a_frame_at_a_time_and_capped(tiny_models):
    """Issue 18 row 5: a long session's video is never whole in memory at 4x, and at most
    `max_encodes` are encoded at once."""
    server = local_server(tiny_models, maskgit_steps=2, limits=PlayLimits(max_encodes=1))
    session_id = server.start(prompt_image())["session"]
    session = server.sessions.get(session_id)
    rng = np.random.default_rng(0)
    session.frames += [rng.integers(0, 255, (90, 160, 3), np.uint8) for _ in range(99)]

    async def body(response) -> bytes:
        return b"".join([chunk async for chunk in response.body_iterator])

    tracemalloc.start()
    try:
        response = server.video(session_id)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    upscaled = 100 * 360 * 640 * 3  # bytes of the session at 4x: 69 MB
    assert peak < upscaled / 10, f"{peak / 2**20:.0f} MB traced while encoding"
    data = asyncio.run(body(response))
    assert int(response.headers["content-length"]) == len(data)
    assert read_frames(data).shape == (100, 360, 640, 3)

    with server.encodes.take(), pytest.raises(PlayError) as busy:
        server.video(session_id)
    assert busy.value.status == 503 and busy.value.headers["Retry-After"]


@pytest.mark.slow
def test_a_recorded_session_curates_into_a_clip(tiny_models, ray_cluster, mlflow_uri, tmp_path):
    """Issue 22: a session recorded while playing is footage `genie curate` keeps (16 s clips)."""
    action_map = tmp_path / "action_map.json"
    action_map.write_text(json.dumps(ACTION_MAP))
    server = local_server(
        tiny_models,
        maskgit_steps=2,
        record_dir=str(tmp_path / "recordings"),
        action_map=load_action_map(action_map, 8),
    )
    session = server.start(prompt_image())["session"]
    server.record(session, True)
    for t in range(170):  # 17 s at 10 FPS: one 16 s clip
        server.step(session, RIGHT if (t // 25) % 2 == 0 else LEFT)
    name = server.record(session, False)["saved"]

    out = tmp_path / "curated"
    manifest = tmp_path / "recordings" / "manifest.parquet"
    args = ["run", "--source", str(manifest), "--out", str(out), f"mlflow_uri={mlflow_uri}"]
    assert curate_main(args, prog="genie curate") == 0
    clips = pads.dataset(out / "clips", format="parquet").to_table().to_pylist()
    assert len(clips) >= 1, json.loads((out / "summary.json").read_text())
    assert Path(clips[0]["source_uri"]).name == f"{name}.mp4"
    assert read_frames(clips[0]["video"]).shape == (160, 90, 160, 3)


def test_play_refuses_bad_options_before_starting(tiny_models, tmp_path, capsys):
    tokenizer, dynamics = tiny_models
    bad = tmp_path / "action_map.json"
    bad.write_text(json.dumps({"names": ["left"], "code_for_action": {"left": 8}}))
    common = ["--tokenizer", str(tokenizer), "--dynamics", str(dynamics)]
    with pytest.raises(SystemExit) as exit_:
        play_main([*common, "--action-map", str(bad)])
    assert exit_.value.code == 2
    assert f"action map {bad}: 'code_for_action'['left'] must be a latent code in 0..7" in (
        capsys.readouterr().err
    )
    for argv, message in [
        ([*common, "--confident", "0"], "--confident must be a probability in (0, 1], got 0.0"),
        ([*common, "--maskgit-steps", "0"], "--maskgit-steps must be >= 1, got 0"),
        (["--dynamics", str(dynamics)], "a dynamics model.pt path needs its tokenizer"),
    ]:
        with pytest.raises(SystemExit):
            play_main(argv)
        assert message in capsys.readouterr().err


# --- the page, in a real browser ------------------------------------------------------------


def frame_pixels(data_url: str) -> torch.Tensor:
    """A frame the page shows (a PNG data: URL) as (C, H, W) in [0, 1]."""
    png = base64.b64decode(data_url.split(",", 1)[1])
    image = cv2.cvtColor(
        cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
    )
    return torch.from_numpy(image).permute(2, 0, 1).float() / 255


def test_browser_plays_with_named_controls_and_latent_keys(play_url, tmp_path):
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
            # The map's controls first (jump has no code: no button), then the other codes.
            buttons = page.locator("#actions button")
            expect(buttons).to_have_count(8)
            labels = [buttons.nth(i).get_attribute("data-label") for i in range(8)]
            assert labels == ["left", "right"] + [f"latent {k}" for k in (0, 3, 4, 5, 6, 7)]
            expect(page.locator('#actions button[data-label="right"] kbd')).to_have_text("→")

            page.locator('#prompts img[data-prompt="clip000"]').click()
            expect(frame).to_have_attribute("data-index", "0")
            prompt_src = frame.get_attribute("src")
            page.keyboard.press("1")  # key 1 = latent 0
            expect(frame).to_have_attribute("data-index", "1")
            after_key = frame.get_attribute("src")
            expect(page.locator("#status")).to_contain_text("latent 0")

            page.locator("#reset").click()
            expect(frame).to_have_attribute("data-index", "0")
            page.locator('#actions button[data-code="5"]').click()  # latent 5, same state
            expect(frame).to_have_attribute("data-index", "1")
            assert len({prompt_src, after_key, frame.get_attribute("src")}) == 3

            # Upload a textured prompt, hold → and the world moves as "right" does: the camera
            # goes right; ← the other way.
            mosaic = tmp_path / "mosaic.png"
            mosaic.write_bytes(png_bytes(prompt_image()))
            page.set_input_files("#upload", str(mosaic))
            expect(frame).to_have_attribute("data-index", "0")
            for key, sign in (("ArrowRight", 1), ("ArrowLeft", -1)):
                page.locator("#reset").click()
                expect(frame).to_have_attribute("data-index", "0")
                page.keyboard.down(key)  # held: a frame after another, at the footage's rate
                page.wait_for_function("() => Number(document.querySelector('#frame')"
                                       ".dataset.index) >= 3")  # fmt: skip
                page.keyboard.up(key)
                page.wait_for_function("() => !document.querySelector('#reset').disabled")
                shown = [frame_pixels(img.get_attribute("src")) for img in
                         page.locator("#strip img").all()]  # fmt: skip
                dx, dy = camera_motion(shown[-2], shown[-1]).tolist()
                assert sign * dx > 4 and abs(dy) < 1, (key, dx, dy)
            expect(page.locator("#fps")).to_contain_text("frames/s")

            assert page.locator("#error").text_content() == ""
            assert errors == []
            screenshot = tmp_path / "play.png"
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 10_000
        finally:
            browser.close()
