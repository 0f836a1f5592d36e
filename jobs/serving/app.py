"""The play server: a Ray Serve application (FastAPI ingress) and its web page.

One deployment holds the tokenizer and dynamics (on a GPU when the cluster has one) and the
live sessions: each keeps its `Rollout` (token history and temporal key/value cache), so an
action costs one new frame, not a re-encoding of the past. The page picks a prompt (the first
frame of a curated clip, or an uploaded PNG/JPEG), sends actions from the game's controls
(where an action map names them, `controls.py`) or latent buttons, can record the session as
footage (`recording.py`) and downloads it as mp4.

The routes, the JSON bodies they take and their error replies are in `api.py`. Every input is
checked and a bad one gets a 4xx JSON `{"error": ...}` while the server goes on: the Host a
request is addressed to and its body size, on every route (`guard.py`); action range, upload
type (by its bytes, not its header), upload pixels, session ids (random tokens of a fixed
format); the number of live sessions, reserved before any model work, and of video encodes at
once (`sessions.py`).

HTTP listens on 127.0.0.1 only; on a cluster, reach it with a port-forward.
"""

# No `from __future__ import annotations`: FastAPI must see the route parameters' real types.

import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import ray
import torch
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from ray import serve
from starlette.concurrency import run_in_threadpool

from jobs.serving.api import (
    RecordRequest,
    StepRequest,
    build_api,
    file_chunks,
    parse_json,
    png_data_url,
)
from jobs.serving.controls import ActionMap, action_names, controls, controls_json
from jobs.serving.prompt import ImageTooLarge, UnsupportedImage, decode_prompt_image, fit_to_frame
from jobs.serving.recording import Recorder
from jobs.serving.sessions import EncodeSlots, PlayError, PlayLimits, PlaySession, SessionStore
from jobs.serving.world import (
    PLAY_CONFIDENT,
    PLAY_DECODE_CONTEXT,
    PLAY_MASKGIT_STEPS,
    VIDEO_FPS,
    load_world,
    world_files,
    write_rollout_video,
)
from pipelines.images import to_model, to_uint8
from pipelines.training_data import kept_clips
from pipelines.video import read_frames

HOST = "127.0.0.1"
APP_NAME = "genie-play"
PAGE = Path(__file__).with_name("page.html")
IMAGE_TYPES = ("image/png", "image/jpeg")
MAX_JSON_BYTES = 4096


@dataclass(frozen=True)
class PlayConfig:
    """How a play server runs, besides its models and prompts."""

    maskgit_steps: int = PLAY_MASKGIT_STEPS
    """MaskGIT rounds a frame, at most."""
    confident: float = PLAY_CONFIDENT
    """Samples more probable than this are kept at once (1: the schedule alone)."""
    decode_context: int = PLAY_DECODE_CONTEXT
    """Frames the tokenizer decodes each new frame with."""
    seed: int = 0
    """Sampling seed of every session (a reset replays the same game)."""
    limits: PlayLimits = field(default_factory=PlayLimits)
    allowed_hosts: tuple[str, ...] = ()
    """Host names served besides 127.0.0.1, localhost and [::1]."""
    record_dir: str = ""
    """Folder recordings go to ("" : recording is off)."""
    action_map: ActionMap | None = None
    """Named controls (controls.py); None: latent buttons only."""
    cpus: int = 1
    """CPU threads of the replica."""


class PlayServer:
    """The models, the curated prompts and the live sessions of one replica.

    A plain class (tests build it directly); `start_play_server` deploys it as a Serve ingress,
    whose FastAPI app `build_api` (api.py) makes once the replica is built.
    """

    def __init__(
        self,
        tokenizer: str,
        dynamics: str,
        mlflow_uri: str | None,
        prompts: dict[str, np.ndarray],
        config: PlayConfig,
    ) -> None:
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cpu":
            torch.set_num_threads(config.cpus)
        # Models are loaded here, not sent from the driver: a replica on any node fetches them.
        files = world_files(tokenizer, dynamics, mlflow_uri)
        self.world = load_world(
            files, config.maskgit_steps, self.device, config.confident, config.decode_context
        )
        self.prompts = {
            name: fit_to_frame(frame, self.world.frame_shape) for name, frame in prompts.items()
        }
        self.config, self.limits = config, config.limits
        self.sessions = SessionStore(
            self.limits.max_sessions, self.limits.idle_eviction_s, on_drop=self._save_recording
        )
        self.encodes = EncodeSlots(self.limits.max_encodes)
        self.recorder = Recorder(config.record_dir) if config.record_dir else None
        self.controls = controls(self.world.num_actions, config.action_map)
        self.action_names = action_names(self.world.num_actions, config.action_map)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_api(self)

    def page(self) -> HTMLResponse:
        return HTMLResponse(PAGE.read_text())

    def info(self) -> dict:
        _, height, width = self.world.frame_shape
        action_map = self.config.action_map
        return {
            "num_actions": self.world.num_actions,
            "controls": controls_json(self.controls),
            "action_map": action_map.source or "(no source)" if action_map else None,
            "prompts": list(self.prompts),
            "maskgit_steps": self.world.maskgit_steps,
            "confident": self.world.confident,
            "decode_context": self.world.decode_context,
            "frame": {"height": height, "width": width, "fps": VIDEO_FPS},
            "device": self.device,
            "recording": str(self.recorder.folder) if self.recorder else None,
            "limits": asdict(self.limits),
        }

    def prompt_image(self, name: str) -> Response:
        if name not in self.prompts:
            raise PlayError(404, f"unknown prompt {name[:80]!r}: GET /info lists them")
        _, png = cv2.imencode(".png", cv2.cvtColor(self.prompts[name], cv2.COLOR_RGB2BGR))
        return Response(png.tobytes(), media_type="image/png")

    async def create(self, request: Request) -> JSONResponse:
        """JSON `{"prompt": name}` for a curated prompt, or a PNG/JPEG body to upload one."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await request.body()  # capped by the guard
        if content_type == "application/json":
            prompt = self._curated_prompt(body)
        elif content_type in IMAGE_TYPES:
            prompt = await run_in_threadpool(self._uploaded_prompt, body)
        else:
            raise PlayError(
                415,
                f"Content-Type {content_type or '(none)'} is not accepted: send application/json "
                '{"prompt": <name from /info>} or an image/png or image/jpeg body',
            )
        return JSONResponse(await run_in_threadpool(self.start, prompt), status_code=201)

    def start(self, image: np.ndarray) -> dict:
        """A new session from an RGB uint8 prompt at the frame size; its slot is taken first."""
        started = time.perf_counter()
        with self.sessions.reserve() as add:
            prompt = to_model(image, self.device)[None]
            game = self.world.start(prompt, seed=self.config.seed, keep_video=False)
            session_id = add(PlaySession(prompt, game, [image]))
        return {
            "session": session_id,
            "frame": png_data_url(image),
            "index": 0,
            "ms": (time.perf_counter() - started) * 1000,
            "num_actions": self.world.num_actions,
        }

    async def step_route(self, session_id: str, request: Request) -> dict:
        body = parse_json(await request.body(), StepRequest, '{"action": <code>}')
        return await run_in_threadpool(self.step, session_id, body.action)

    def step(self, session_id: str, action: int) -> dict:
        session = self.sessions.get(session_id)
        actions = self.world.num_actions
        if not 0 <= action < actions:
            raise PlayError(
                422, f"action must be in 0..{actions - 1} (this model has {actions}), got {action}"
            )
        with session.lock:
            if len(session.frames) >= self.limits.max_frames:
                raise PlayError(
                    409,
                    f"session has reached {self.limits.max_frames} frames, the limit: "
                    "download it, then reset or start a new one",
                )
            started = time.perf_counter()
            frame = to_uint8(session.game.step(action)[0])
            ms = (time.perf_counter() - started) * 1000
            session.frames.append(frame)
            session.actions.append(action)
            index = len(session.frames) - 1
        return {"frame": png_data_url(frame), "index": index, "action": action, "ms": ms}

    def reset(self, session_id: str) -> dict:
        """Back to the prompt, same seed; a recording in progress is saved and goes on."""
        session = self.sessions.get(session_id)
        with session.lock:
            saved = self._save_recording(session)
            session.game = self.world.start(session.prompt, seed=self.config.seed, keep_video=False)
            session.frames, session.actions = session.frames[:1], []
            if session.record_from is not None:
                session.record_from = 0
        return {"frame": png_data_url(session.frames[0]), "index": 0, "ms": 0.0, "saved": saved}

    async def record_route(self, session_id: str, request: Request) -> dict:
        body = parse_json(await request.body(), RecordRequest, '{"on": true}')
        return await run_in_threadpool(self.record, session_id, body.on)

    def record(self, session_id: str, on: bool) -> dict:
        """Start recording from the current frame, or stop and save what was recorded."""
        if self.recorder is None:
            raise PlayError(409, "recording is off on this server (start it with --record-dir)")
        session = self.sessions.get(session_id)
        with session.lock:
            saved = self._save_recording(session)
            session.record_from = len(session.frames) - 1 if on else None
        return {"recording": on, "saved": saved, "folder": str(self.recorder.folder)}

    def video(self, session_id: str) -> StreamingResponse:
        """The session so far as mp4, encoded a frame at a time to an unnamed temporary file,
        then streamed from it: at most `max_encodes` at once, none held in memory whole."""
        session = self.sessions.get(session_id)
        with session.lock:
            frames = list(session.frames)
        with self.encodes.take():
            handle = tempfile.TemporaryFile()  # noqa: SIM115 (file_chunks closes it once sent)
            try:
                write_rollout_video(frames, handle)
            except BaseException:
                handle.close()
                raise
        size = handle.tell()
        handle.seek(0)
        filename = f"genie-play-{session_id[:8]}.mp4"
        return StreamingResponse(
            file_chunks(handle),
            media_type="video/mp4",
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Content-Length": str(size),
            },
        )

    def delete(self, session_id: str) -> Response:
        self.sessions.remove(session_id)  # saves a recording in progress (on_drop)
        return Response(status_code=204)

    def _save_recording(self, session: PlaySession) -> str | None:
        """Write the frames recorded so far, if any; the caller holds the session's lock or is
        its last user. Returns the recording's name."""
        if self.recorder is None or session.record_from is None:
            return None
        frames = session.frames[session.record_from :]
        if len(frames) < 2:
            return None
        actions = session.actions[session.record_from :]
        return self.recorder.save(frames, actions, self.action_names)

    def _curated_prompt(self, body: bytes) -> np.ndarray:
        try:
            request = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise PlayError(400, 'body is not JSON: send {"prompt": <name from /info>}') from None
        if not isinstance(request, dict) or not isinstance(request.get("prompt"), str):
            raise PlayError(422, 'expected {"prompt": <name from /info>}')
        if request["prompt"] not in self.prompts:
            raise PlayError(404, f"unknown prompt {request['prompt'][:80]!r}: GET /info lists them")
        return self.prompts[request["prompt"]]

    def _uploaded_prompt(self, data: bytes) -> np.ndarray:
        try:
            return decode_prompt_image(data, self.world.frame_shape, self.limits.max_image_pixels)
        except UnsupportedImage as error:
            raise PlayError(415, f"upload: {error}") from None
        except ImageTooLarge as error:
            raise PlayError(413, f"upload: {error}") from None

    def body_limit(self, method: str, path: str, content_type: str) -> int:
        """Bytes a request may carry (RequestGuard): an image upload, a small JSON, or none."""
        if method == "POST" and path == "/sessions" and content_type in IMAGE_TYPES:
            return self.limits.max_upload_bytes
        if method == "POST" and (path == "/sessions" or path.endswith(("/step", "/record"))):
            return MAX_JSON_BYTES
        return 0


def curated_prompts(clips: str, limit: int) -> dict[str, np.ndarray]:
    """First frames (RGB uint8) of up to `limit` kept curated clips (Parquet folder), by clip id."""
    prompts: dict[str, np.ndarray] = {}
    for row in kept_clips(clips, ["clip_id", "video"]):
        frames = read_frames(row["video"])
        if len(frames):
            prompts[row["clip_id"]] = frames[0]
        if len(prompts) == limit:
            break
    return prompts


def start_play_server(
    tokenizer: str,
    dynamics: str,
    prompts: dict[str, np.ndarray],
    *,
    port: int,
    config: PlayConfig = PlayConfig(),
    mlflow_uri: str | None = None,
    start_timeout_s: float = 120.0,
) -> str:
    """Deploy the play app on the connected Ray cluster; returns its URL once it answers."""
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    serve.start(http_options={"host": HOST, "port": port})
    deployment = serve.deployment(serve.ingress()(PlayServer), max_ongoing_requests=16)
    app = deployment.options(ray_actor_options={"num_cpus": config.cpus, "num_gpus": gpus}).bind(
        tokenizer, dynamics, mlflow_uri, prompts, config
    )
    serve.run(app, name=APP_NAME, route_prefix="/")
    url = f"http://{HOST}:{port}/"
    deadline = time.monotonic() + start_timeout_s
    while True:
        try:
            with urllib.request.urlopen(url + "info", timeout=10) as response:
                json.load(response)
            return url
        except (urllib.error.URLError, OSError) as error:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"play app deployed but {url} does not answer ({error}); if Serve was "
                    "already running on this cluster with another port, `serve shutdown` it"
                ) from error
            time.sleep(0.5)


def default_record_dir() -> Path:
    """Where recordings go unless --record-dir says: the local platform's state folder."""
    home = Path(os.environ.get("GENIE_HOME", Path(__file__).resolve().parents[2] / ".genie"))
    return home / "play" / "recordings"
