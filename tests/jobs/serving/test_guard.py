"""The play server's request guard as a plain ASGI app: Host check and body caps, before any
route runs. The same checks through the real Serve app are in tests/jobs/test_play.py."""

from __future__ import annotations

import asyncio
import json

import pytest

from jobs.serving.guard import RequestGuard, host_name

LIMIT = 100


class Route:
    """The app behind the guard: records the body it was given."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope, receive, send) -> None:
        message = await receive()
        self.bodies.append(message["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def request(
    guard: RequestGuard, headers: dict[str, str], chunks: list[bytes] = (), path: str = "/step"
):
    """(status, JSON or None, chunks the guard read) of one request through `guard`."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    pending = list(chunks)
    read = []

    async def receive():
        chunk = pending.pop(0)
        read.append(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], (json.loads(body) if body != b"ok" else None), len(read)


def guarded(allowed=frozenset()) -> tuple[RequestGuard, Route]:
    route = Route()
    limits = {"/step": LIMIT, "/info": 0}
    return RequestGuard(route, allowed, lambda method, path, kind: limits[path]), route


@pytest.mark.parametrize(
    ("header", "name"),
    [("127.0.0.1:8000", "127.0.0.1"), ("LocalHost", "localhost"), ("[::1]:80", "[::1]"),
     ("attacker.example:8000", "attacker.example"), ("", "")],
)  # fmt: skip
def test_host_name_drops_the_port(header, name):
    assert host_name(header) == name


def test_only_loopback_or_allowed_hosts_reach_a_route():
    guard, route = guarded()
    for host in ("127.0.0.1:8000", "localhost:9999", "[::1]:8000"):
        assert request(guard, {"host": host, "content-length": "2"}, [b"{}"])[0] == 200
    for host in ("attacker.example", "attacker.example:8000", "127.0.0.1.attacker.example", ""):
        status, body, _ = request(guard, {"host": host, "content-length": "2"}, [b"{}"])
        assert status == 403 and "is not served here" in body["error"], host
    assert len(route.bodies) == 3

    guard, route = guarded(frozenset({"Play.Example.Com"}))
    assert request(guard, {"host": "play.example.com:8000"}, [])[0] == 200


def test_a_body_over_its_routes_cap_is_refused_before_the_route_reads_it():
    guard, route = guarded()
    host = {"host": "127.0.0.1:8000"}
    # Declared too long: refused without reading a byte.
    status, body, read = request(guard, host | {"content-length": str(64 * 2**20)}, [b"x"])
    assert (status, read) == (413, 0)
    assert f"{64 * 2**20:,} bytes" in body["error"] and f"{LIMIT:,}" in body["error"]
    # Chunked (no length): refused as soon as it passes the cap, the rest never read.
    chunks = [b"x" * 60] * 1000
    status, body, read = request(guard, host | {"transfer-encoding": "chunked"}, chunks)
    assert (status, read) == (413, 2) and "over the limit" in body["error"]
    # A route that takes no body refuses any.
    status, body, _ = request(guard, host | {"content-length": "1"}, [b"x"], path="/info")
    assert status == 413 and "takes no body" in body["error"]
    assert route.bodies == []

    # Within the cap, the route gets the whole body, chunked or not.
    assert request(guard, host | {"content-length": "100"}, [b"a" * 50, b"b" * 50])[0] == 200
    assert request(guard, host | {"transfer-encoding": "chunked"}, [b"c" * 10, b"d"])[0] == 200
    assert route.bodies == [b"a" * 50 + b"b" * 50, b"c" * 10 + b"d"]
