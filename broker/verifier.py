"""The Ed25519 checks of CONNECTs, run in a worker process while the event loop serves everyone else.

Every operator-mode CONNECT costs two Ed25519 verifications (the user JWT's signature and the
nonce signature), about 110 µs of the ~300 µs a connect costs the broker. nats-server spreads its
connects over every core; a Python event loop has one. So the broker judges a CONNECT with
:func:`trustkit.trust.begin_authorization` (every check but the signatures), hands the recorded
checks to a worker process (``python -m broker.verifier``), and finishes the judgement when the
answers come back. Checks queued in one event-loop turn travel as one batch, one write each way.

The worker only runs :func:`trustkit.nkeys.check_signed` on what it is sent: it holds no keys and
no state. If it dies, the broker logs it and runs the checks in the event loop from then on
(nothing in flight is lost: those batches are checked in-process). ``TRUSTKIT_BROKER_VERIFIER=0``
keeps the checks in the event loop from the start; by default the worker runs when the broker
may use more than one CPU.

Frames (little-endian): request ``id u32, length u32, length bytes of: (size u32, key 32 bytes,
signature + data: size bytes)*``; answer ``id u32, count u32, count bytes of 1 (good) / 0``.
"""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from typing import BinaryIO

from trustkit.nkeys import SignatureChecks, check_signed

__all__ = ["Verifier", "wanted"]

_HEAD = struct.Struct("<II")
_ITEM = struct.Struct("<I")
#: a batch is cut at this many checks (the worker answers each batch as one write)
MAX_BATCH = 512

Done = Callable[[list[bool]], None]


def wanted(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Whether to run the worker: ``TRUSTKIT_BROKER_VERIFIER`` (0/1), else if the broker may use
    more than one CPU (a single CPU gains nothing from a second process)."""
    setting = environ.get("TRUSTKIT_BROKER_VERIFIER", "")
    if setting in ("0", "1"):
        return setting == "1"
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return cpus > 1


class Verifier:
    """The broker's side of the worker: :meth:`submit` checks, get the results in a callback."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._rfd = self._wfd = -1
        self._next = 0
        # the batch being gathered in this event-loop turn: frame parts, (count, callback) pairs
        self._parts: list[bytes] = []
        self._waiting: list[tuple[int, Done]] = []
        self._batch_items: list[tuple[bytes, bytes]] = []
        self._count = 0
        self._scheduled = False
        self._sent: dict[int, list[tuple[int, Done]]] = {}  # batch id -> its callbacks
        self._batches: dict[int, list[tuple[bytes, bytes]]] = {}  # batch id -> its checks
        self._out = bytearray()  # frames the pipe did not take yet
        self._in = bytearray()
        self.batches = 0  # batches answered by the worker (for tests and /varz-like reporting)

    @property
    def running(self) -> bool:
        return self.proc is not None

    def start(self) -> None:
        """Start the worker (call from the event loop)."""
        self.loop = asyncio.get_running_loop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "broker.verifier"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._wfd = self.proc.stdin.fileno()
        self._rfd = self.proc.stdout.fileno()
        os.set_blocking(self._wfd, False)
        os.set_blocking(self._rfd, False)
        self.loop.add_reader(self._rfd, self._on_readable)

    def submit(self, checks: SignatureChecks, done: Done) -> None:
        """Run ``checks``; ``done(results)`` is called later from the event loop, in check order."""
        if self.proc is None or self.loop is None:
            results = checks.run()
            if self.loop is not None:
                self.loop.call_soon(done, results)
            else:
                done(results)
            return
        items = checks.items
        parts = self._parts
        for public32, signed in items:
            if len(public32) != 32:  # a check recorded to fail (SignatureChecks.add): it does
                public32, signed = bytes(32), b""
            parts.append(_ITEM.pack(len(signed)))
            parts.append(public32)
            parts.append(signed)
        self._waiting.append((len(items), done))
        self._batch_items.extend(items)
        self._count += len(items)
        if self._count >= MAX_BATCH:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if not self._waiting:
            return
        self._next += 1
        bid = self._next
        body = b"".join(self._parts)
        self._sent[bid] = self._waiting
        self._batches[bid] = self._batch_items
        self._parts, self._waiting, self._batch_items, self._count = [], [], [], 0
        self._out += _HEAD.pack(bid, len(body))
        self._out += body
        self._write()

    def _write(self) -> None:
        if self.proc is None or not self._out:
            return
        try:
            n = os.write(self._wfd, self._out)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            self._died(f"cannot write to it: {exc}")
            return
        del self._out[:n]
        assert self.loop is not None
        if self._out:
            self.loop.add_writer(self._wfd, self._write)
        else:
            self.loop.remove_writer(self._wfd)

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self._rfd, 1 << 16)
        except BlockingIOError:
            return
        except OSError as exc:
            self._died(f"cannot read from it: {exc}")
            return
        if not chunk:
            self._died("it exited")
            return
        self._in += chunk
        while len(self._in) >= _HEAD.size:
            bid, count = _HEAD.unpack_from(self._in)
            if len(self._in) < _HEAD.size + count:
                return
            answer = bytes(self._in[_HEAD.size : _HEAD.size + count])
            del self._in[: _HEAD.size + count]
            waiting = self._sent.pop(bid, None)
            checks = self._batches.pop(bid, None)
            if waiting is None or checks is None or count != len(checks):
                self._died(f"it answered batch {bid} with {count} results")
                return
            self.batches += 1
            _hand_out([b == 1 for b in answer], waiting, _call_now)

    def _died(self, why: str) -> None:
        """Fail over to in-process checks; what was in flight is checked here."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        self.log(f"signature worker stopped ({why}): checking signatures in the event loop from now on")
        self._detach(proc)
        assert self.loop is not None
        self._check_here(self.loop.call_soon)

    def _check_here(self, call: Handout) -> None:
        """Run every check not answered yet (sent, or still being gathered) in this process and
        hand the results out through ``call(done, results)``; the queues are left empty."""
        pending = [(self._batches[bid], self._sent[bid]) for bid in sorted(self._sent)]
        if self._waiting:
            pending.append((self._batch_items, self._waiting))
        self._sent.clear()
        self._batches.clear()
        self._parts, self._waiting, self._batch_items, self._count = [], [], [], 0
        for checks, waiting in pending:
            _hand_out([check_signed(pk, signed) for pk, signed in checks], waiting, call)

    def _detach(self, proc: subprocess.Popen[bytes]) -> None:
        if self.loop is not None:
            self.loop.remove_reader(self._rfd)
            self.loop.remove_writer(self._wfd)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        """Stop the worker (its stdin closes: it exits). Checks not answered yet are run here
        first, their callbacks called at once."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        self._detach(proc)
        self._check_here(_call_now)


def _call_now(done: Done, results: list[bool]) -> None:
    done(results)


Handout = Callable[[Done, list[bool]], object]


def _hand_out(results: list[bool], waiting: list[tuple[int, Done]], call: Handout) -> None:
    """Give each submitter of a batch its share of ``results``, in submission order."""
    at = 0
    for n, done in waiting:
        call(done, results[at : at + n])
        at += n


def _worker(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The worker process: answer every batch until stdin closes."""
    read = stdin.read
    item = _ITEM.unpack_from
    while True:
        head = read(_HEAD.size)
        if len(head) < _HEAD.size:
            return
        bid, length = _HEAD.unpack(head)
        body = read(length)
        if len(body) < length:
            return
        answer = bytearray()
        at = 0
        while at < length:
            (size,) = item(body, at)
            key = body[at + 4 : at + 36]
            signed = body[at + 36 : at + 36 + size]
            at += 36 + size
            answer.append(1 if check_signed(key, signed) else 0)
        stdout.write(_HEAD.pack(bid, len(answer)) + bytes(answer))
        stdout.flush()


if __name__ == "__main__":
    _worker(sys.stdin.buffer, sys.stdout.buffer)
