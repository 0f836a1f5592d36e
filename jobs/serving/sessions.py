"""The play server's live sessions and the limits that keep one server from being exhausted.

A session slot is reserved before any model work (`SessionStore.reserve`), so a full server
refuses a new session without running the models; video encodes are capped (`EncodeSlots`),
since each holds an encoder and its frames while it runs.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from models.world import Rollout

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{22}")  # secrets.token_urlsafe(16)


@dataclass(frozen=True)
class PlayLimits:
    """What one play server allows; every limit is checked before the work it bounds."""

    max_sessions: int = 8
    """Live sessions at once (each holds its models' state and its frames)."""
    idle_eviction_s: float = 300.0
    """A full server evicts its least recent session once it has been idle this long."""
    max_upload_bytes: int = 2 * 2**20
    """Bytes of an uploaded prompt image."""
    max_image_pixels: int = 4096 * 4096
    """Pixels of an uploaded prompt image, read from its header before decoding."""
    max_frames: int = 300
    """Frames a session keeps (30 s at 10 FPS), prompt included: they are kept for the download
    and the recording. At least 161, so a recorded session holds a 16 s curated clip."""
    max_encodes: int = 2
    """Video downloads encoded at once; more get 503 and try again."""


class PlayError(Exception):
    """A request the server refuses: `status` is the HTTP status, `message` says why."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


@dataclass
class PlaySession:
    """One player's game: its rollout, the frames shown so far and the codes taken between them."""

    prompt: torch.Tensor  # (1, C, H, W) in [0, 1], kept for reset
    game: Rollout
    frames: list[np.ndarray]  # RGB uint8 (H, W, 3), prompt first
    actions: list[int] = field(default_factory=list)  # actions[i] led from frames[i] to i + 1
    record_from: int | None = None  # frame index the recording started at; None: not recording
    lock: threading.Lock = field(default_factory=threading.Lock)  # one step at a time


class SessionStore:
    """Live sessions by id, least recently used first, with when each was last used.

    `on_drop(session)` runs for every session that leaves the store (removed or evicted), outside
    the store's lock: the play server saves a recording in progress there.
    """

    def __init__(
        self,
        max_sessions: int,
        idle_eviction_s: float,
        on_drop: Callable[[Any], None] = lambda session: None,
    ) -> None:
        self.max_sessions, self.idle_eviction_s = max_sessions, idle_eviction_s
        self.on_drop = on_drop
        self.sessions: OrderedDict[str, Any] = OrderedDict()
        self.last_used: dict[str, float] = {}
        self.reserved = 0  # slots taken by sessions still being started
        self.lock = threading.Lock()

    @contextmanager
    def reserve(self) -> Iterator[Callable[[Any], str]]:
        """A slot for a new session, taken before the session is built (the model work).

        Yields `add(session) -> id`; a full store raises PlayError 429 here, before the caller
        does any work. A slot not filled (the build failed) is given back.
        """
        evicted = None
        with self.lock:
            if len(self.sessions) + self.reserved >= self.max_sessions:
                evicted = self._evict_idle()
            self.reserved += 1
        if evicted is not None:
            self.on_drop(evicted)
        filled = False

        def add(session: Any) -> str:
            nonlocal filled
            with self.lock:
                self.reserved -= 1
                filled = True
                session_id = secrets.token_urlsafe(16)
                self.sessions[session_id] = session
                self.last_used[session_id] = time.monotonic()
                return session_id

        try:
            yield add
        finally:
            if not filled:
                with self.lock:
                    self.reserved -= 1

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
            session = self._drop(session_id)
        if session is not None:
            self.on_drop(session)

    def _evict_idle(self) -> Any:
        """Drop the least recently used session if it has been idle long enough, else 429."""
        if not self.sessions:
            raise PlayError(
                429,
                f"{self.max_sessions} sessions are being started, the limit: try again in a moment",
                {"Retry-After": "2"},
            )
        oldest = next(iter(self.sessions))
        idle = time.monotonic() - self.last_used[oldest]
        if idle < self.idle_eviction_s:
            wait = self.idle_eviction_s - idle
            raise PlayError(
                429,
                f"{self.max_sessions} sessions are live, the limit; one is freed when it has "
                f"been idle {self.idle_eviction_s:.0f} s: try again in {wait:.0f} s",
                {"Retry-After": str(max(1, round(wait)))},
            )
        return self._drop(oldest)

    def _drop(self, session_id: str) -> Any:
        self.last_used.pop(session_id, None)
        return self.sessions.pop(session_id, None)


class EncodeSlots:
    """At most `limit` video encodes at once; `take()` raises PlayError 503 when all are busy."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.free = threading.BoundedSemaphore(limit)

    @contextmanager
    def take(self) -> Iterator[None]:
        if not self.free.acquire(blocking=False):
            raise PlayError(
                503,
                f"{self.limit} videos are being encoded, the limit: try again in a few seconds",
                {"Retry-After": "2"},
            )
        try:
            yield
        finally:
            self.free.release()
