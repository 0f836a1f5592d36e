"""Session slots and encode slots of the play server: refused before the work they bound."""

from __future__ import annotations

import pytest

from jobs.serving.sessions import EncodeSlots, PlayError, SessionStore


def test_full_store_refuses_then_evicts_the_least_recently_used_idle_session():
    dropped = []
    busy = SessionStore(max_sessions=2, idle_eviction_s=3600, on_drop=dropped.append)
    ids = {}
    for name in ("first", "second"):
        with busy.reserve() as add:
            ids[name] = add(name)
    with pytest.raises(PlayError) as refused, busy.reserve():
        pass
    assert refused.value.status == 429 and "Retry-After" in refused.value.headers
    assert busy.get(ids["first"]) == "first" and dropped == []

    idle = SessionStore(max_sessions=2, idle_eviction_s=0, on_drop=dropped.append)
    for name in ("first", "second"):
        with idle.reserve() as add:
            ids[name] = add(name)
    idle.get(ids["first"])  # `second` is now the least recently used
    with idle.reserve() as add:
        add("third")
    assert dropped == ["second"]
    with pytest.raises(PlayError) as evicted:
        idle.get(ids["second"])
    assert evicted.value.status == 404
    idle.remove(ids["first"])
    assert dropped == ["second", "first"]


def test_a_full_store_refuses_before_the_session_is_built():
    """Issue 18 row 17: the slot is taken before the model work, so a refused session costs
    nothing, and sessions still being built count against the limit."""
    store = SessionStore(max_sessions=2, idle_eviction_s=3600)
    built = []
    # Two sessions being built at once fill it.
    with store.reserve(), store.reserve(), pytest.raises(PlayError) as refused, store.reserve():
        built.append("model work")
    assert refused.value.status == 429 and "being started" in refused.value.message
    assert built == []

    with pytest.raises(RuntimeError), store.reserve():
        raise RuntimeError("the model failed")  # its slot is given back
    with store.reserve() as add, store.reserve() as add_too:
        add("a"), add_too("b")
    with pytest.raises(PlayError) as full, store.reserve():
        built.append("model work")
    assert full.value.status == 429 and "sessions are live" in full.value.message
    assert built == []


def test_encode_slots_refuse_past_the_limit_and_free_on_exit():
    slots = EncodeSlots(2)
    with slots.take(), slots.take():
        with pytest.raises(PlayError) as busy, slots.take():
            pass
        assert busy.value.status == 503 and "2 videos are being encoded" in busy.value.message
    with slots.take(), slots.take():  # both free again, errors included
        pass
