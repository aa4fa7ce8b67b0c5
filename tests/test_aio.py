"""run_async: works with and without an event loop running in the calling thread."""

from __future__ import annotations

import asyncio

import pytest

from newsletter.aio import run_async


async def _double(value: int) -> int:
    await asyncio.sleep(0)
    return value * 2


async def _fail() -> None:
    raise ValueError("from the coroutine")


def test_from_plain_code() -> None:
    assert run_async(_double(21)) == 42


def test_from_inside_a_running_loop_the_result_and_errors_come_back() -> None:
    async def caller() -> int:
        # synchronous code called from async code, as a library caller may do
        with pytest.raises(ValueError, match="from the coroutine"):
            run_async(_fail())
        return run_async(_double(4))

    assert asyncio.run(caller()) == 8
