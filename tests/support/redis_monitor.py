"""What clients sent a real Redis while an action ran, read with MONITOR (round trips counted by Redis itself).

A command a script runs is listed as the script's (`lua`) and left out, so the commands a client sent are
exactly its round trips when it uses no pipeline.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import redis

END = "round-trips-counted"


def sent_commands(redis_url: str, action: Callable[[], Any]) -> tuple[Any, list[str]]:
    """What `action` returns, and the commands clients sent Redis meanwhile (scripts' own left out)."""
    seen: list[dict[str, Any]] = []
    ready = threading.Event()

    def listen() -> None:
        with redis.Redis.from_url(redis_url, decode_responses=True).monitor() as monitor:
            ready.set()
            for command in monitor.listen():
                if END in command["command"]:
                    return
                seen.append(command)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert ready.wait(5)
    try:
        result = action()
    finally:
        redis.Redis.from_url(redis_url).echo(END)
        listener.join(5)
    assert not listener.is_alive()
    return result, [c["command"].split()[0].upper() for c in seen if c.get("client_type") != "lua"]
