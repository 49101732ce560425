"""The share of the hub's time background requests take (hub/pace.py): after a request that
took t, the next waits t × (1 - share) / share, whoever makes it; one at a time, the bulk
mints ahead of pages."""

from __future__ import annotations

import asyncio
import time

import pytest

from hubkeeper.hub.pace import FIRST_IN_A_ROW, MAX_GAP, HubPace, note_request

TAKES = 0.01  # seconds one stand-in request takes


async def _request(pace: HubPace, log: list[tuple[str, float, float]], who: str) -> None:
    async with pace.turn():
        began = time.monotonic()
        await asyncio.sleep(TAKES)
        log.append((who, began, time.monotonic()))


async def test_requests_of_every_kind_share_one_pace():
    pace = HubPace(share=0.2)  # each request then waits 4 × what the last took
    log: list[tuple[str, float, float]] = []

    async def work(who: str) -> None:
        for _ in range(3):
            await _request(pace, log, who)

    await asyncio.gather(work("mints"), work("walk"), work("sweep"))
    assert len(log) == 9 and pace.requests == 9
    assert [who for who, *_ in log[:3]] == ["mints", "walk", "sweep"]  # first come, first served
    for (_w0, _b0, ended), (_w1, began, _e1) in zip(log, log[1:], strict=False):
        assert began - ended >= 4 * TAKES * 0.9  # never two at once, and the gap is kept
    busy = sum(e - b for _w, b, e in log)
    assert busy / (log[-1][2] - log[0][1]) < 0.2 * 1.2


async def test_a_slow_answer_waits_longer_before_the_next():
    clock = [0.0]
    pace = HubPace(share=0.5, clock=lambda: clock[0])
    async with pace.turn():
        clock[0] += 2.0  # the hub took 2 s
    assert pace.last_gap == 2.0 and pace.busy == 2.0


async def test_an_answer_held_up_by_the_hub_s_own_work_stalls_nobody_for_long():
    """A request caught behind the hub's own 10-s update_last_activity took 10 s, not the
    hub's 10 s for us: the next still comes within MAX_GAP."""
    clock = [0.0]
    pace = HubPace(share=0.03, clock=lambda: clock[0])
    async with pace.turn():
        clock[0] += 10.0
    assert pace.last_gap == MAX_GAP


async def test_a_failed_request_counts_too():
    pace = HubPace(share=0.5)
    with pytest.raises(RuntimeError):
        async with pace.turn():
            raise RuntimeError("the hub answered 503")
    assert pace.requests == 1


def test_a_share_outside_zero_to_one_is_refused():
    for share in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="share"):
            HubPace(share=share)


async def test_only_the_hub_s_answer_counts_not_a_wait_inside_hubkeeper():
    """The turn's gap follows the HTTP requests made in it (note_request, as HubClient._send
    reports them), not a wait for a request slot or a retry's pause."""
    clock = [0.0]
    pace = HubPace(share=0.5, clock=lambda: clock[0])
    async with pace.turn():
        clock[0] += 5.0  # waiting for a free slot, a retry's pause
        note_request(0.25)  # the two attempts the hub answered
        note_request(0.25)
    assert pace.last_gap == 0.5 and pace.busy == 0.5
    note_request(9.0)  # outside any turn: not background work, counted nowhere
    assert pace.busy == 0.5


async def test_a_turn_ended_by_cancelling_frees_the_next():
    pace = HubPace(share=0.5)
    holder = asyncio.Event()

    async def stuck() -> None:
        async with pace.turn():
            holder.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(stuck())
    await holder.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with asyncio.timeout(5):  # the gap it earned is short: it took next to nothing
        async with pace.turn():
            pass


async def test_mints_go_ahead_of_pages_yet_pages_still_get_turns():
    """The bulk mints (`first`) pause between their turns, as ServerTokens._work does: the
    next holder is chosen when the gap ends, so they still go ahead of the pages waiting
    then; and a page goes after FIRST_IN_A_ROW mints, so the walk never starves."""
    pace = HubPace(share=0.2)  # a gap of 4 × TAKES after each turn
    order: list[str] = []
    done = asyncio.Event()

    async def mints() -> None:
        while not done.is_set():
            async with pace.turn(first=True):
                await asyncio.sleep(TAKES)
                order.append("mint")
                if len(order) >= 40:
                    done.set()
            await asyncio.sleep(TAKES)  # BATCH_PAUSE, shorter than the gap

    async def pages(kind: str) -> None:
        while not done.is_set():
            async with pace.turn():
                await asyncio.sleep(TAKES)
                order.append(kind)
                if len(order) >= 40:
                    done.set()

    workers = [asyncio.create_task(w) for w in (mints(), pages("walk"), pages("sweep"))]
    await done.wait()
    await asyncio.gather(*workers)
    steady = order[:40]
    assert steady.count("mint") >= len(steady) * FIRST_IN_A_ROW / (FIRST_IN_A_ROW + 1) - 2
    assert "walk" in steady and "sweep" in steady  # neither starves
    run = 0
    for kind in steady:
        run = run + 1 if kind == "mint" else 0
        assert run <= FIRST_IN_A_ROW


async def _hold(pace: HubPace, held: asyncio.Event, release: asyncio.Event) -> None:
    async with pace.turn():
        held.set()
        await release.wait()


async def _take(pace: HubPace) -> None:
    async with pace.turn():
        pass


async def _waiter_at_a_gap_s_end() -> tuple[HubPace, asyncio.Task[None]]:
    """A pace whose holder's turn has just ended, and a waiter queued behind it: the holder
    earned a gap of MAX_GAP, so its own hand-over comes too late for the test, which calls
    `_hand_over` itself, as the gap's end would."""
    clock = [0.0]
    pace = HubPace(share=0.01, clock=lambda: clock[0])
    held, release = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(_hold(pace, held, release))
    await held.wait()
    waiter = asyncio.create_task(_take(pace))
    await asyncio.sleep(0)
    clock[0] += 1.0
    release.set()
    await holder
    return pace, waiter


async def test_a_waiter_cancelled_as_it_is_handed_the_turn_passes_it_on():
    pace, waiter = await _waiter_at_a_gap_s_end()
    pace._hand_over()  # handed to the waiter, which has not run yet
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not pace._held and not pace._rest  # passed on: nobody holds it
    async with asyncio.timeout(5):
        async with pace.turn():
            pass


async def test_a_waiter_cancelled_as_the_turn_ends_stays_cancelled():
    """Cancelled in the same pass of the loop as the holder's gap ends: `_hand_over` drops
    it before it runs, and it still ends with CancelledError (a sweep loop being stopped must
    not see another error)."""
    pace, waiter = await _waiter_at_a_gap_s_end()
    waiter.cancel()
    pace._hand_over()  # the cancelled waiter is dropped
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not pace._held and not pace._rest


async def test_an_app_started_again_on_a_new_loop_is_not_held_by_the_old_one():
    pace = HubPace(share=0.01)
    pace._held = True  # as a loop that ended mid-gap leaves it
    pace._loop = object()  # type: ignore[assignment]
    async with asyncio.timeout(5):
        async with pace.turn():
            pass
