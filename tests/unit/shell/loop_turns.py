"""How often the event loop got a turn while a coroutine ran: whether other work could go on."""
from __future__ import annotations

import asyncio
from typing import Awaitable, TypeVar

T = TypeVar("T")


async def turns_while(work: Awaitable[T]) -> tuple[T, int]:
    """`work`'s result, and the turns another task got while it ran (0: it held the loop)."""
    turns = 0

    async def meanwhile() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(meanwhile())
    await asyncio.sleep(0)
    before = turns
    try:
        result = await work
    finally:
        other.cancel()
    return result, turns - before
