"""The only file-writing helpers of trustkit (STYLE rule 15).

Every write goes through a temp file in the target's own directory: write, ``fsync`` the file,
``rename`` over the target, ``fsync`` the directory. A process killed at any point leaves either
the old file or the new one, never a half-written one (at worst a hidden ``.<name>.*.tmp`` file
that nsc and trustkit both ignore: they only look at ``*.jwt``, ``*.nk``, ``*.creds`` and ``.nsc``).

Directories are created 0700 and files 0600 unless told otherwise; modes are set explicitly, so
the umask cannot widen them. Every failure is a :class:`~trustkit.errors.StoreError` whose message
names the file. Codes: ``store_not_found`` (missing file), ``store_io`` (any other OS error),
``store_corrupt`` (unreadable content: not UTF-8, not JSON).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from trustkit.errors import StoreError

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "TRASH_PREFIX",
    "atomic_create",
    "atomic_write",
    "ensure_dir",
    "fsync_dir",
    "read_bytes",
    "read_json",
    "read_text",
    "remove_file",
    "remove_tree",
    "sweep_stale",
    "try_read_bytes",
]

DIR_MODE = 0o700
FILE_MODE = 0o600
#: Prefix of the hidden directories a tree is moved into before it is deleted.
TRASH_PREFIX = ".trustkit-trash-"
#: Seconds after which a leftover trash/staging directory is assumed abandoned.
STALE_AFTER = 600.0

StrPath = str | os.PathLike[str]


def _io_error(action: str, path: StrPath, exc: OSError) -> StoreError:
    reason = exc.strerror or exc.__class__.__name__
    if isinstance(exc, FileNotFoundError):
        return StoreError(f"{path}: no such file or directory", code="store_not_found")
    return StoreError(f"cannot {action} {path}: {reason}", code="store_io")


# --- directories ----------------------------------------------------------------------------------


def ensure_dir(path: StrPath, mode: int = DIR_MODE) -> Path:
    """Create ``path`` and any missing parents with ``mode`` (default 0700); return it.

    Only directories created here get ``mode`` (existing ones are left alone, like nsc's
    ``MaybeMakeDir``). Raises :class:`StoreError` if ``path`` or a parent is not a directory.
    """
    p = Path(path)
    missing: list[Path] = []
    cur = p
    while not cur.is_dir():
        if cur.exists() or cur.is_symlink():
            raise StoreError(f"{cur} already exists and it is not a directory", code="store_io")
        missing.append(cur)
        if cur.parent == cur:
            break
        cur = cur.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, mode)
        except FileExistsError:
            if not d.is_dir():
                raise StoreError(f"{d} already exists and it is not a directory", code="store_io") from None
            continue  # created concurrently by someone else: theirs to own
        except OSError as exc:
            raise _io_error("create directory", d, exc) from None
        try:
            os.chmod(d, mode)  # mkdir's mode is filtered by the umask
        except OSError as exc:
            raise _io_error("set the mode of", d, exc) from None
    for d in reversed(missing):
        fsync_dir(d.parent)  # make each new entry durable
    return p


def fsync_dir(path: StrPath) -> None:
    """Flush a directory's entries (renames, creations, removals) to disk.

    A no-op where directories cannot be opened (Windows) or the file system refuses to sync them.
    """
    if os.name == "nt":  # pragma: no cover - directories cannot be fsynced on Windows
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise _io_error("open directory", path, exc) from None
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise _io_error("sync directory", path, exc) from None
    finally:
        os.close(fd)


# --- writing --------------------------------------------------------------------------------------


def _write_temp(target: Path, data: bytes, mode: int) -> Path:
    """A fully written and fsynced temp file next to ``target`` (caller renames or removes it)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp_path = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)  # mkstemp makes 0600; this also defeats the umask
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_path)
        raise
    return tmp_path


def atomic_write(path: StrPath, data: bytes, mode: int = FILE_MODE) -> Path:
    """Replace (or create) ``path`` with ``data`` atomically; return the path.

    Temp file in the same directory, write, fsync, rename over ``path``, fsync the directory.
    Missing parent directories are created 0700. On any failure (even ``KeyboardInterrupt``)
    the temp file is removed and the previous content of ``path`` is untouched.
    Raises :class:`StoreError` naming ``path``.
    """
    target = Path(path)
    if not isinstance(data, bytes | bytearray | memoryview):
        raise StoreError(f"cannot write {target}: data must be bytes", code="store_io")
    ensure_dir(target.parent)
    try:
        tmp = _write_temp(target, bytes(data), mode)
    except OSError as exc:
        raise _io_error("write", target, exc) from None
    try:
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _io_error("write", target, exc) from None
        raise
    fsync_dir(target.parent)
    return target


def atomic_create(path: StrPath, data: bytes, mode: int = FILE_MODE) -> bool:
    """Create ``path`` with ``data`` only if it does not exist; return whether it was created.

    Exclusive even against other processes: the fsynced temp file is hard-linked to ``path``
    (``link`` fails if the name exists). Where hard links are unsupported it falls back to an
    existence check and a rename. Raises :class:`StoreError` naming ``path``.
    """
    target = Path(path)
    ensure_dir(target.parent)
    try:
        tmp = _write_temp(target, bytes(data), mode)
    except OSError as exc:
        raise _io_error("write", target, exc) from None
    try:
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                raise _io_error("write", target, exc) from None
            if target.exists():  # no hard links here: best effort
                return False
            try:
                os.replace(tmp, target)
            except OSError as exc2:
                raise _io_error("write", target, exc2) from None
        fsync_dir(target.parent)
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


# --- removing -------------------------------------------------------------------------------------


def remove_file(path: StrPath, *, missing_ok: bool = False) -> bool:
    """Remove one file (an atomic ``unlink``) and fsync its directory; return whether it existed.

    Raises :class:`StoreError` (``store_not_found`` unless ``missing_ok``).
    """
    p = Path(path)
    try:
        os.unlink(p)
    except FileNotFoundError:
        if missing_ok:
            return False
        raise StoreError(f"{p}: no such file or directory", code="store_not_found") from None
    except OSError as exc:
        raise _io_error("remove", p, exc) from None
    fsync_dir(p.parent)
    return True


def remove_tree(path: StrPath, trash_parent: StrPath) -> None:
    """Delete the directory ``path`` atomically: one rename makes it disappear, then it is erased.

    ``path`` is first renamed into a fresh hidden ``.trustkit-trash-*`` directory under
    ``trash_parent`` (same file system), so readers never see a half-deleted tree; then the
    trash is removed. If the process dies before that, only the hidden trash directory remains
    (swept, once stale, by a later :func:`remove_tree` with the same ``trash_parent``).
    Raises :class:`StoreError` naming ``path``.
    """
    p = Path(path)
    if not p.is_dir():
        raise StoreError(f"{p}: no such directory", code="store_not_found")
    parent = Path(trash_parent)
    sweep_stale(parent, TRASH_PREFIX)
    try:
        trash = Path(tempfile.mkdtemp(prefix=TRASH_PREFIX, dir=parent))
    except OSError as exc:
        raise _io_error("create a trash directory in", parent, exc) from None
    try:
        os.rename(p, trash / p.name)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.rmdir(trash)
        raise _io_error("remove", p, exc) from None
    fsync_dir(p.parent)
    shutil.rmtree(trash, ignore_errors=True)
    fsync_dir(parent)


def sweep_stale(parent: StrPath, prefix: str, *, max_age: float = STALE_AFTER) -> None:
    """Erase ``prefix*`` directories in ``parent`` older than ``max_age`` seconds.

    They are what a process killed mid-operation leaves (trash whose content is already deleted,
    staging that was never renamed into place). Younger ones may belong to a live process.
    """
    now = time.time()
    with contextlib.suppress(OSError):
        for entry in Path(parent).iterdir():
            if not entry.name.startswith(prefix) or entry.is_symlink() or not entry.is_dir():
                continue
            with contextlib.suppress(OSError):
                if now - entry.stat().st_mtime > max_age:
                    shutil.rmtree(entry, ignore_errors=True)


# --- reading --------------------------------------------------------------------------------------


def read_bytes(path: StrPath) -> bytes:
    """The content of ``path``. Raises :class:`StoreError` naming it (``store_not_found``…)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except IsADirectoryError:
        raise StoreError(f"{path} is a directory, not a file", code="store_io") from None
    except OSError as exc:
        raise _io_error("read", path, exc) from None


def try_read_bytes(path: StrPath) -> bytes | None:
    """Like :func:`read_bytes`, but ``None`` when the file does not exist."""
    try:
        return read_bytes(path)
    except StoreError as exc:
        if exc.code == "store_not_found":
            return None
        raise


def read_text(path: StrPath) -> str:
    """The UTF-8 text of ``path``. Raises :class:`StoreError` naming it."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise StoreError(f"{path} is not UTF-8 text", code="store_corrupt") from None


def read_json(path: StrPath) -> Any:
    """The parsed JSON in ``path``. Raises :class:`StoreError` naming it."""
    text = read_text(path)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise StoreError(f"{path} is not valid JSON: {exc}", code="store_corrupt") from None
