"""The play server: a Ray Serve application (FastAPI ingress) and its web page.

One deployment holds the tokenizer and dynamics (on a GPU when the cluster has one) and the
live sessions: each keeps its `Rollout` (token history and temporal key/value cache), so an
action costs one new frame, not a re-encoding of the past. The page picks a prompt (the first
frame of a curated clip, or an uploaded PNG/JPEG), sends actions from buttons or keys 1..|A|,
and downloads the session as mp4.

Every input is checked and a bad one gets a 4xx JSON `{"error": ...}` while the server goes on:
action range, upload type (by its bytes, not its header), upload bytes and pixels, session ids
(random tokens of a fixed format), and the number of live sessions (the least recently used is
evicted only once it has been idle a while; otherwise a new session gets 429).

HTTP listens on 127.0.0.1 only; on a cluster, reach it with a port-forward.
"""

# No `from __future__ import annotations`: FastAPI must see the route parameters' real types
# (Request, StepRequest), and Serve's ingress wrappers resolve string annotations elsewhere.

import base64
import io
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import ray
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from ray import serve
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from jobs.serving.prompt import ImageTooLarge, UnsupportedImage, decode_prompt_image, fit_to_frame
from jobs.serving.world import load_world, write_rollout_video
from models.world import Rollout
from pipelines.images import to_model, to_uint8
from pipelines.training_data import kept_clips
from pipelines.video import read_frames

HOST = "127.0.0.1"
APP_NAME = "genie-play"
PAGE = Path(__file__).with_name("page.html")
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{22}")  # secrets.token_urlsafe(16)
IMAGE_TYPES = ("image/png", "image/jpeg")
MAX_JSON_BYTES = 4096


@dataclass(frozen=True)
class PlayLimits:
    max_sessions: int = 8
    idle_eviction_s: float = 300.0  # a full server evicts its least recent session once this idle
    max_upload_bytes: int = 2 * 2**20
    max_image_pixels: int = 4096 * 4096
    max_frames: int = 300  # per session (30 s at 10 FPS): frames are kept for the download


class PlayError(Exception):
    """A request the server refuses: `status` is the HTTP status, `message` says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class PlaySession:
    prompt: torch.Tensor  # (1, C, H, W), kept for reset
    game: Rollout
    lock: threading.Lock = field(default_factory=threading.Lock)  # one step at a time


class SessionStore:
    """Live sessions by id, least recently used first, with when each was last used."""

    def __init__(self, max_sessions: int, idle_eviction_s: float) -> None:
        self.max_sessions, self.idle_eviction_s = max_sessions, idle_eviction_s
        self.sessions: OrderedDict[str, Any] = OrderedDict()
        self.last_used: dict[str, float] = {}
        self.lock = threading.Lock()

    def add(self, session: Any) -> str:
        with self.lock:
            if len(self.sessions) >= self.max_sessions:
                oldest = next(iter(self.sessions))
                idle = time.monotonic() - self.last_used[oldest]
                if idle < self.idle_eviction_s:
                    raise PlayError(
                        429,
                        f"{self.max_sessions} sessions are live, the limit; one is freed when it "
                        f"has been idle {self.idle_eviction_s:.0f} s: try again in "
                        f"{self.idle_eviction_s - idle:.0f} s",
                    )
                self._drop(oldest)
            session_id = secrets.token_urlsafe(16)
            self.sessions[session_id] = session
            self.last_used[session_id] = time.monotonic()
            return session_id

    def get(self, session_id: str) -> Any:
        if not SESSION_ID.fullmatch(session_id):
            raise PlayError(400, "malformed session id: expected 22 characters of [A-Za-z0-9_-]")
        with self.lock:
            if session_id not in self.sessions:
                raise PlayError(404, "unknown session (it may have been evicted): start a new one")
            self.sessions.move_to_end(session_id)
            self.last_used[session_id] = time.monotonic()
            return self.sessions[session_id]

    def remove(self, session_id: str) -> None:
        self.get(session_id)  # same checks and errors as any other use
        with self.lock:
            self._drop(session_id)

    def _drop(self, session_id: str) -> None:
        self.sessions.pop(session_id, None)
        self.last_used.pop(session_id, None)


class StepRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    action: int


def png_data_url(frame: torch.Tensor) -> str:
    """A (C, H, W) frame in [0, 1] as a data: URL the page can show directly."""
    ok, png = cv2.imencode(".png", cv2.cvtColor(to_uint8(frame), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding of a frame failed")
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode()


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PlayError(413, f"body is {int(declared):,} bytes; the limit is {limit:,}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PlayError(413, f"body is over the limit of {limit:,} bytes")
    return bytes(body)


api = FastAPI(title="genie play", docs_url=None, redoc_url=None, openapi_url=None)


@api.exception_handler(PlayError)
async def play_error(_: Request, error: PlayError) -> JSONResponse:
    return JSONResponse({"error": error.message}, status_code=error.status)


@api.exception_handler(RequestValidationError)
async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
    problems = [
        f"{'.'.join(str(part) for part in e['loc'][1:]) or 'body'}: {e['msg']}"
        for e in error.errors()
    ]
    return JSONResponse({"error": "; ".join(problems)}, status_code=422)


@api.exception_handler(HTTPException)
async def http_error(_: Request, error: HTTPException) -> JSONResponse:
    return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)


@serve.deployment(max_ongoing_requests=16)
@serve.ingress(api)
class PlayServer:
    """The models, the curated prompts and the live sessions of one replica."""

    def __init__(
        self,
        tokenizer: str,
        dynamics: str,
        mlflow_uri: str | None,
        prompts: dict[str, np.ndarray],
        maskgit_steps: int,
        seed: int,
        limits: PlayLimits,
        cpus: int,
    ) -> None:
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cpu":
            torch.set_num_threads(cpus)
        # Models are loaded here, not sent from the driver: a replica on any node fetches them.
        self.world = load_world(tokenizer, dynamics, maskgit_steps, mlflow_uri, self.device)
        self.prompts = {
            name: fit_to_frame(frame, self.world.frame_shape) for name, frame in prompts.items()
        }
        self.seed, self.limits = seed, limits
        self.sessions = SessionStore(limits.max_sessions, limits.idle_eviction_s)
        self.page = PAGE.read_text()

    @api.get("/")
    def page(self) -> HTMLResponse:
        return HTMLResponse(self.page)

    @api.get("/info")
    def info(self) -> dict:
        _, height, width = self.world.frame_shape
        return {
            "num_actions": self.world.num_actions,
            "prompts": list(self.prompts),
            "maskgit_steps": self.world.maskgit_steps,
            "frame": {"height": height, "width": width},
            "device": self.device,
            "limits": asdict(self.limits),
        }

    @api.get("/prompts/{name}.png")
    def prompt_image(self, name: str) -> Response:
        if name not in self.prompts:
            raise PlayError(404, f"unknown prompt {name!r}: GET /info lists them")
        _, png = cv2.imencode(".png", cv2.cvtColor(self.prompts[name], cv2.COLOR_RGB2BGR))
        return Response(png.tobytes(), media_type="image/png")

    @api.post("/sessions", status_code=201)
    async def create(self, request: Request) -> dict:
        """JSON `{"prompt": name}` for a curated prompt, or a PNG/JPEG body to upload one."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/json":
            prompt = self._curated_prompt(await read_body(request, MAX_JSON_BYTES))
        elif content_type in IMAGE_TYPES:
            data = await read_body(request, self.limits.max_upload_bytes)
            prompt = await run_in_threadpool(self._uploaded_prompt, data)
        else:
            raise PlayError(
                415,
                f"Content-Type {content_type or '(none)'} is not accepted: send application/json "
                '{"prompt": <name from /info>} or an image/png or image/jpeg body',
            )
        return await run_in_threadpool(self._start, prompt)

    @api.post("/sessions/{session_id}/step")
    def step(self, session_id: str, body: StepRequest) -> dict:
        session = self.sessions.get(session_id)
        actions = self.world.num_actions
        if not 0 <= body.action < actions:
            raise PlayError(
                422,
                f"action must be in 0..{actions - 1} (this model has {actions}), got {body.action}",
            )
        with session.lock:
            if len(session.game.frames) >= self.limits.max_frames:
                raise PlayError(
                    409,
                    f"session has reached {self.limits.max_frames} frames, the limit: "
                    "download it, then reset or start a new one",
                )
            started = time.perf_counter()
            frame = session.game.step(body.action)[0]
            ms = (time.perf_counter() - started) * 1000
            index = len(session.game.frames) - 1
        return {"frame": png_data_url(frame), "index": index, "action": body.action, "ms": ms}

    @api.post("/sessions/{session_id}/reset")
    def reset(self, session_id: str) -> dict:
        session = self.sessions.get(session_id)
        with session.lock:
            session.game = self.world.start(session.prompt, seed=self.seed)
        return {"frame": png_data_url(session.prompt[0]), "index": 0, "ms": 0.0}

    @api.get("/sessions/{session_id}/video.mp4")
    def video(self, session_id: str) -> Response:
        session = self.sessions.get(session_id)
        with session.lock:
            frames = session.game.video()[0]
        buffer = io.BytesIO()
        write_rollout_video(frames, buffer)
        filename = f"genie-play-{session_id[:8]}.mp4"
        return Response(
            buffer.getvalue(),
            media_type="video/mp4",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @api.delete("/sessions/{session_id}", status_code=204)
    def delete(self, session_id: str) -> Response:
        self.sessions.remove(session_id)
        return Response(status_code=204)

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

    def _start(self, image: np.ndarray) -> dict:
        started = time.perf_counter()
        prompt = to_model(image, self.device)[None]
        session = PlaySession(prompt, self.world.start(prompt, seed=self.seed))
        session_id = self.sessions.add(session)
        ms = (time.perf_counter() - started) * 1000
        return {
            "session": session_id,
            "frame": png_data_url(prompt[0]),
            "index": 0,
            "ms": ms,
            "num_actions": self.world.num_actions,
        }


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
    maskgit_steps: int = 25,
    seed: int = 0,
    limits: PlayLimits = PlayLimits(),
    mlflow_uri: str | None = None,
    cpus: int = 1,
    start_timeout_s: float = 120.0,
) -> str:
    """Deploy the play app on the connected Ray cluster; returns its URL once it answers."""
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    serve.start(http_options={"host": HOST, "port": port})
    app = PlayServer.options(ray_actor_options={"num_cpus": cpus, "num_gpus": gpus}).bind(
        tokenizer, dynamics, mlflow_uri, prompts, maskgit_steps, seed, limits, cpus
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
