"""Python side of the Go reference checker (``tests/interop/go/src/tkcheck/main.go``).

The checker is a long-running Go process built against Debian's packaged sources of
``github.com/nats-io/jwt/v2`` (2.3.0) and ``github.com/nats-io/nkeys`` (0.3.0). It reads one JSON
request per line on stdin and writes one JSON object per line on stdout. Failures are
``{"error": "<Go error string>"}`` and never end the process. Ops:

``{"op": "encode", "kind": K, "seed": "S...", "claims": {...}, "strict": false}``
    ``K`` is operator|account|user|activation|generic. ``claims`` (a full JWT payload) is unmarshalled
    into a zero-value claims struct of that kind and ``Encode(nkeys.FromSeed(seed))`` is called.
    Go sets ``iss``, ``iat`` (now), ``jti``, ``nats.type`` and ``nats.version`` itself. Unknown keys
    are silently dropped by Go unless ``strict`` is true (then ``json: unknown field "x"``).
    -> ``{"token": "..."}``
``{"op": "decode", "kind": K|"any", "token": "..."}``
    kind-specific decoder (``jwt.DecodeUserClaims`` ..., ``jwt.DecodeGeneric``, ``jwt.Decode`` for
    "any"), then ``Validate`` -> ``{"claims": {...}, "payload_json": "<json.Marshal bytes>",
    "errors": [blocking], "warnings": [non-blocking, incl. time checks], "time_checks": [...],
    "kind": "<ClaimType()>"}``
``{"op": "nkey", "seed": "S...", "sign_b64": "<optional std base64>"}``
    -> ``{"public", "private", "seed"[, "sig_b64"]}``
``{"op": "verify", "public": "U...", "data_b64": "...", "sig_b64": "..."}`` -> ``{"ok": bool}``
``{"op": "nkey_check", "key": "..."}``
    -> ``{"valid_public", "valid_encoding", "prefix", "decode_seed_error", "seed_type"}``
``{"op": "creds", "jwt": "...", "seed": "SU..."}`` -> ``{"creds": "..."}``
``{"op": "parse_creds", "data": "..."}`` -> ``{"jwt": "...", "seed": "..."[, "seed_error"]}``
``{"op": "decorate", "jwt": "..."}`` -> ``{"text": "..."}``
``{"op": "version"}`` -> ``{"jwt": "2.3.0", "nkeys": "0.3.0"}``

A panic inside the Go libraries is reported as ``{"error": "panic: ...", "panic": true}``.

The binary is cached in ``.cache/gocheck/<sha256 of main.go>/tkcheck`` (gitignored) and only rebuilt
when the source changes. The build is GOPATH mode only: no modules, no network.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
GOPATH_OURS = Path(__file__).resolve().parent / "go"
SOURCE = GOPATH_OURS / "src" / "tkcheck" / "main.go"
CACHE_DIR = ROOT / ".cache" / "gocheck"

GO = Path("/usr/bin/go")
GOCODE = Path("/usr/share/gocode")
JWT_SRC = GOCODE / "src" / "github.com" / "nats-io" / "jwt" / "v2"
NKEYS_SRC = GOCODE / "src" / "github.com" / "nats-io" / "nkeys"

COMPONENT = "Go reference checker (Debian golang-go + golang-github-nats-io-jwt-dev)"
HOW_TO_GET = "run bash scripts/install-components.sh"


class GoCheckerError(RuntimeError):
    """The checker could not be built, started, or stopped answering."""


def available(go: Path = GO) -> bool:
    """True when the Go toolchain and the packaged nats-io sources are installed."""
    return go.exists() and JWT_SRC.is_dir() and NKEYS_SRC.is_dir()


def source_digest() -> str:
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()


def build_env(cache_dir: Path = CACHE_DIR) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "GO111MODULE": "off",
            "GOPATH": f"{GOPATH_OURS}{os.pathsep}{GOCODE}",
            "GOCACHE": str(cache_dir / "gocache"),
            "GOFLAGS": "",
            "GOPROXY": "off",
            "GOTOOLCHAIN": "local",
            "GOENV": "off",
            "CGO_ENABLED": "0",
        }
    )
    return env


def build(go: Path = GO, cache_dir: Path = CACHE_DIR, timeout: float = 300.0) -> Path:
    """Build the checker unless a binary for the current source already exists; return its path."""
    binary = cache_dir / source_digest() / "tkcheck"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    # Build to a temporary name and rename: concurrent sessions never see a half-written binary.
    fd, tmp_name = tempfile.mkstemp(prefix=".tkcheck-", dir=binary.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    cmd = [str(go), "build", "-o", str(tmp), "tkcheck"]
    try:
        try:
            proc = subprocess.run(
                cmd,
                cwd=SOURCE.parent,
                env=build_env(cache_dir),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise GoCheckerError(f"building the Go reference checker timed out after {timeout}s") from exc
        except OSError as exc:
            raise GoCheckerError(f"could not run {go}: {exc}") from exc
        if proc.returncode != 0:
            raise GoCheckerError(
                "building the Go reference checker failed "
                f"(exit {proc.returncode}): {' '.join(cmd)}\n"
                f"GOPATH={build_env(cache_dir)['GOPATH']} GO111MODULE=off\n"
                f"--- compiler output ---\n{proc.stdout}{proc.stderr}"
            )
        tmp.chmod(0o755)
        tmp.replace(binary)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return binary


class GoChecker:
    """A running Go reference checker. ``call`` sends one request and returns the response object."""

    def __init__(
        self,
        go: Path | str = GO,
        cache_dir: Path | str = CACHE_DIR,
        build_timeout: float = 300.0,
        call_timeout: float = 30.0,
    ) -> None:
        self.go = Path(go)
        self.cache_dir = Path(cache_dir)
        self.build_timeout = build_timeout
        self.call_timeout = call_timeout
        self.binary: Path | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> GoChecker:
        if self._proc is not None:
            return self
        if not available(self.go):
            raise GoCheckerError(f"{COMPONENT} is not available ({HOW_TO_GET})")
        self.binary = build(self.go, self.cache_dir, self.build_timeout)
        try:
            self._proc = subprocess.Popen(
                [str(self.binary)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                bufsize=1,
            )
        except OSError as exc:
            raise GoCheckerError(f"could not start {self.binary}: {exc}") from exc
        self._lines = queue.Queue()
        self._stderr = []
        self._threads = [
            threading.Thread(target=self._pump_stdout, name="tkcheck-stdout", daemon=True),
            threading.Thread(target=self._pump_stderr, name="tkcheck-stderr", daemon=True),
        ]
        for t in self._threads:
            t.start()
        return self

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            if proc.stdin:
                proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        for t in self._threads:
            t.join(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            with contextlib.suppress(OSError, ValueError):
                if stream:
                    stream.close()

    def __enter__(self) -> GoChecker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- requests --------------------------------------------------------------------------------

    def call(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send one request; return the decoded response (which may be ``{"error": ...}``)."""
        line = json.dumps(request, separators=(",", ":"))  # ensure_ascii: never a raw newline
        with self._lock:
            proc = self._proc
            if proc is None or proc.stdin is None:
                raise GoCheckerError("Go reference checker is not running (call start() first)")
            try:
                proc.stdin.write(line + "\n")
                proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError) as exc:
                raise GoCheckerError(f"Go reference checker died: {self._diagnostics()}") from exc
            wait = self.call_timeout if timeout is None else timeout
            try:
                answer = self._lines.get(timeout=wait)
            except queue.Empty:
                self._proc = None
                proc.kill()
                raise GoCheckerError(
                    f"Go reference checker did not answer within {wait}s to {line[:200]}"
                ) from None
            if answer is None:
                raise GoCheckerError(f"Go reference checker died: {self._diagnostics()}")
        result = json.loads(answer)
        if not isinstance(result, dict):
            raise GoCheckerError(f"Go reference checker sent a non-object: {answer[:200]}")
        return result

    def check(self, request: dict[str, Any]) -> dict[str, Any]:
        """Like :meth:`call` but raise :class:`GoCheckerError` on an ``{"error": ...}`` response."""
        result = self.call(request)
        if "error" in result:
            raise GoCheckerError(f"Go reference checker: {result['error']} (op {request.get('op')!r})")
        return result

    # Thin helpers for the common ops.

    def encode(self, kind: str, seed: str, claims: dict[str, Any], strict: bool = False) -> str:
        req = {"op": "encode", "kind": kind, "seed": seed, "claims": claims, "strict": strict}
        return str(self.check(req)["token"])

    def decode(self, token: str, kind: str = "any") -> dict[str, Any]:
        return self.check({"op": "decode", "kind": kind, "token": token})

    # -- internals -------------------------------------------------------------------------------

    def _pump_stdout(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        with contextlib.suppress(OSError, ValueError):
            for raw in proc.stdout:
                self._lines.put(raw.rstrip("\n"))
        self._lines.put(None)

    def _pump_stderr(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        with contextlib.suppress(OSError, ValueError):
            for raw in proc.stderr:
                self._stderr.append(raw)
                del self._stderr[:-200]

    def _diagnostics(self) -> str:
        proc = self._proc
        code = proc.poll() if proc is not None else None
        err = "".join(self._stderr).strip()
        return f"exit code {code}; stderr: {err or '(empty)'}"
