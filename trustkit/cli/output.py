"""Rendering results: JSON for scripts, rich tables for people. Secrets never reach here unasked."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

__all__ = ["emit", "fail", "wants_json"]


def wants_json(json_flag: bool) -> bool:
    """JSON when asked, or when stdout is not a terminal (pipes and scripts)."""
    return json_flag or not sys.stdout.isatty()


def emit(result: Mapping[str, Any] | Sequence[Mapping[str, Any]], *, as_json: bool, title: str = "") -> None:
    """Print a result: one JSON document (stdout), or a table / key-value list for a terminal."""
    if wants_json(as_json):
        sys.stdout.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        return
    from rich.console import Console  # imported only for terminals: keeps scripted calls fast
    from rich.table import Table

    console = Console()
    if isinstance(result, Mapping):
        table = Table(title=title or None, show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value")
        for key, value in result.items():
            table.add_row(str(key), _cell(value))
    else:
        rows = list(result)
        table = Table(title=title or None)
        columns = list(rows[0]) if rows else []
        for col in columns:
            table.add_column(col)
        for row in rows:
            table.add_row(*(_cell(row.get(c)) for c in columns))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def fail(message: str, status: int) -> NoReturn:
    """One line on stderr, then exit with ``status``."""
    sys.stderr.write(f"trustkit: error: {message}\n")
    raise SystemExit(status)
