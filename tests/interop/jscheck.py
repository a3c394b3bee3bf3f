"""Driver for the JS reference checker (tests/js/check.mjs).

The checker is a long-running node process built on the official NATS JS libraries
(@nats-io/jwt, @nats-io/nkeys). It reads one JSON request per line on stdin and writes one JSON
response per line on stdout; a failed request answers ``{"error": "..."}`` and the process keeps
serving. See the header of tests/js/check.mjs for the ops.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
JS_DIR = ROOT / "tests" / "js"
SCRIPT = JS_DIR / "check.mjs"


class JsCheckError(RuntimeError):
    """The checker answered ``{"error": ...}`` (from :meth:`JsChecker.ok`) or died."""


def node_binary() -> str | None:
    found = shutil.which("node")
    if found:
        return found
    return "/usr/bin/node" if Path("/usr/bin/node").exists() else None


def available() -> tuple[bool, str]:
    """Whether node and the npm packages the checker needs are installed."""
    if node_binary() is None:
        return False, "node not found"
    for pkg in ("@nats-io/jwt", "@nats-io/nkeys"):
        if not (JS_DIR / "node_modules" / pkg / "package.json").exists():
            return False, f"tests/js/node_modules/{pkg} missing"
    if not SCRIPT.exists():
        return False, "tests/js/check.mjs missing"
    return True, ""


class JsChecker:
    """One ``node tests/js/check.mjs`` process; requests are served strictly in order."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> JsChecker:
        if self._proc is not None:
            return self
        node = node_binary()
        if node is None:
            raise JsCheckError("node not found")
        self._proc = subprocess.Popen(
            [node, "check.mjs"],
            cwd=JS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self._lines = queue.Queue()
        threading.Thread(target=self._pump_stdout, args=(self._proc, self._lines), daemon=True).start()
        threading.Thread(target=self._pump_stderr, args=(self._proc,), daemon=True).start()
        pong = self.call({"op": "ping"})
        if pong.get("ok") is not True:
            self.close()
            raise JsCheckError(f"checker did not answer ping: {pong!r}")
        return self

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(timeout=5)
        finally:
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()

    def __enter__(self) -> JsChecker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _pump_stdout(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                lines.put(line)
        except (OSError, ValueError):
            pass
        lines.put(None)

    def _pump_stderr(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        try:
            for line in proc.stderr:
                self._stderr.append(line)
                del self._stderr[:-200]
        except (OSError, ValueError):
            pass

    # -- requests --------------------------------------------------------------------------
    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one request; return the response object (which may be ``{"error": ...}``)."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.stdin is None:
                raise JsCheckError("checker not started")
            try:
                proc.stdin.write(json.dumps(request) + "\n")
                proc.stdin.flush()
            except OSError as e:
                raise JsCheckError(f"checker stdin closed: {e}; stderr: {self.stderr_tail()}") from e
            try:
                line = self._lines.get(timeout=self.timeout)
            except queue.Empty as e:
                raise JsCheckError(f"checker timed out after {self.timeout}s on {request.get('op')!r}") from e
            if line is None:
                self._lines.put(None)
                raise JsCheckError(f"checker exited; stderr: {self.stderr_tail()}")
            response = json.loads(line)
            if not isinstance(response, dict):
                raise JsCheckError(f"checker answered a non-object: {line!r}")
            return response

    def ok(self, request: dict[str, Any]) -> dict[str, Any]:
        """Like :meth:`call` but raise :class:`JsCheckError` on an ``{"error": ...}`` answer."""
        response = self.call(request)
        if "error" in response:
            raise JsCheckError(response["error"])
        return response

    def stderr_tail(self) -> str:
        return "".join(self._stderr[-20:])
