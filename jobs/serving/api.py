"""The play server's HTTP layer: its routes and error replies (`build_api`), the JSON bodies the
routes accept (`parse_json`), and how frames and videos go out (`png_data_url`, `file_chunks`).

`PlayServer` (app.py) holds the models and sessions and handles each route; this module maps
the routes onto it, behind the Host check and body caps of guard.py. Every error a route raises
(`PlayError`, or Starlette's own, such as 404 or 405) goes out as JSON `{"error": ...}`.
"""

# No `from __future__ import annotations`, as in app.py: FastAPI reads real types.

import base64
import json
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

import cv2
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException

from jobs.serving.guard import RequestGuard
from jobs.serving.sessions import PlayError

if TYPE_CHECKING:
    from jobs.serving.app import PlayServer

CHUNK_BYTES = 256 * 1024


class StepRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    action: int


class RecordRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    on: bool


def png_data_url(frame: np.ndarray) -> str:
    """An RGB uint8 (H, W, 3) frame as a data: URL the page can show directly."""
    ok, png = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding of a frame failed")
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode()


def parse_json(body: bytes, model: type[BaseModel], example: str) -> BaseModel:
    """A request body checked against `model`: 400 when it is not JSON, 422 naming each field."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise PlayError(400, f"body is not JSON: send {example}") from None
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = [
            f"{'.'.join(str(part) for part in e['loc']) or 'body'}: {e['msg']}"
            for e in error.errors()
        ]
        raise PlayError(422, "; ".join(problems)) from None


def file_chunks(handle: IO[bytes]) -> Iterator[bytes]:
    """`handle` read to its end in chunks of CHUNK_BYTES, then closed (also when not read out)."""
    try:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk
    finally:
        handle.close()


def build_api(server: "PlayServer") -> FastAPI:
    """The HTTP routes of `server`, behind the Host check and body caps (guard.py)."""
    api = FastAPI(title="genie play", docs_url=None, redoc_url=None, openapi_url=None)
    api.add_middleware(
        RequestGuard,
        allowed_hosts=frozenset(server.config.allowed_hosts),
        body_limit=server.body_limit,
    )

    @api.exception_handler(PlayError)
    async def play_error(_: Request, error: PlayError) -> JSONResponse:
        return JSONResponse({"error": error.message}, error.status, headers=error.headers)

    @api.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    routes = [
        ("GET", "/", server.page),
        ("GET", "/info", server.info),
        ("GET", "/prompts/{name}.png", server.prompt_image),
        ("POST", "/sessions", server.create),
        ("POST", "/sessions/{session_id}/step", server.step_route),
        ("POST", "/sessions/{session_id}/reset", server.reset),
        ("POST", "/sessions/{session_id}/record", server.record_route),
        ("GET", "/sessions/{session_id}/video.mp4", server.video),
        ("DELETE", "/sessions/{session_id}", server.delete),
    ]
    for method, path, handler in routes:
        api.add_api_route(path, handler, methods=[method])
    return api
