"""broker.verifier: CONNECT signature checks in a worker process, with an in-process fail-over."""

from __future__ import annotations

import asyncio
import io
import os
import signal

import pytest

from broker.verifier import _HEAD, Verifier, _worker, wanted
from trustkit.nkeys import KeyPair, PrefixByte, SignatureChecks, decode_public


def _checks(*good: bool) -> SignatureChecks:
    """One check per flag: a true signature for True, a signature over other data for False."""
    checks = SignatureChecks()
    for i, ok in enumerate(good):
        key = KeyPair.generate(PrefixByte.USER)
        raw = decode_public(key.public_key)[1]
        data = f"nonce-{i}".encode()
        checks.add(raw, data, key.sign(data if ok else data + b"!"))
    return checks


def test_wanted() -> None:
    assert wanted({"TRUSTKIT_BROKER_VERIFIER": "0"}) is False
    assert wanted({"TRUSTKIT_BROKER_VERIFIER": "1"}) is True
    assert wanted({}) is (len(os.sched_getaffinity(0)) > 1)


def test_worker_answers_each_batch_in_order() -> None:
    checks = _checks(True, False, True)
    checks.add(b"", b"x", b"short")  # recorded to fail
    logs: list[str] = []

    async def run() -> list[list[bool]]:
        v = Verifier(logs.append)
        v.start()
        try:
            got: list[list[bool]] = []
            done = asyncio.Event()
            batches = [checks, _checks(False), _checks(True, True), SignatureChecks()]

            def collect(results: list[bool]) -> None:
                got.append(results)
                if len(got) == len(batches):
                    done.set()

            for c in batches:
                v.submit(c, collect)
            await asyncio.wait_for(done.wait(), 5)
            assert v.batches == 1  # submitted in one event-loop turn: one batch each way
            return got
        finally:
            v.close()

    assert asyncio.run(run()) == [[True, False, True, False], [False], [True, True], []]
    assert logs == []


def test_a_dead_worker_fails_over_to_the_event_loop() -> None:
    logs: list[str] = []

    async def run() -> list[list[bool]]:
        v = Verifier(logs.append)
        v.start()
        assert v.proc is not None
        got: list[list[bool]] = []
        first = asyncio.get_running_loop().create_future()
        v.submit(_checks(True), first.set_result)
        assert await asyncio.wait_for(first, 5) == [True]
        os.kill(v.proc.pid, signal.SIGKILL)
        v.proc.wait()
        # in flight when it died, and after: all answered, correctly
        futures = [asyncio.get_running_loop().create_future() for _ in range(3)]
        v.submit(_checks(True, False), futures[0].set_result)
        await asyncio.sleep(0.2)
        v.submit(_checks(False), futures[1].set_result)
        v.submit(_checks(True), futures[2].set_result)
        for f in futures:
            got.append(await asyncio.wait_for(f, 5))
        assert not v.running
        v.close()
        return got

    assert asyncio.run(run()) == [[True, False], [False], [True]]
    assert len(logs) == 1 and "signature worker stopped" in logs[0]


def test_close_answers_what_is_in_flight() -> None:
    got: list[list[bool]] = []

    async def run() -> None:
        v = Verifier(lambda m: None)
        v.start()
        v.submit(_checks(True, False), got.append)
        v._flush()  # sent, not answered yet
        v.close()

    asyncio.run(run())
    assert got == [[True, False]]


@pytest.mark.parametrize("cut", [0, 3, 8, 20])
def test_worker_stops_at_a_truncated_frame(cut: int) -> None:
    checks = _checks(True)
    pk, signed = checks.items[0]
    body = len(signed).to_bytes(4, "little") + pk + signed
    frame = _HEAD.pack(7, len(body)) + body
    out = io.BytesIO()
    _worker(io.BytesIO(frame + frame[:cut]), out)
    assert out.getvalue() == _HEAD.pack(7, 1) + b"\x01"
