"""Prometheus metrics of the callout, fed by audit records, rendered as text format 0.0.4.

No client library: four metric families, counted in the event loop (no locking needed), and a
renderer that follows the exposition format (``# HELP``/``# TYPE``, escaped label values,
cumulative histogram buckets ending in ``+Inf``, ``_sum`` and ``_count``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from callout.audit import AuditRecord

__all__ = ["BACKEND_BUCKETS", "OUTCOMES", "Metrics"]

#: Backend latency buckets in seconds (an LDAP bind is ms; the server's auth timeout is 2 s).
BACKEND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
OUTCOMES = ("issued", "refused", "dropped")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


@dataclass
class _Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self.buckets, value)
        if i < len(self.counts):
            self.counts[i] += 1
        self.total += value
        self.count += 1


class Metrics:
    """Counters and the backend latency histogram. Call :meth:`observe` with every record."""

    def __init__(self, buckets: Iterable[float] = BACKEND_BUCKETS) -> None:
        self.buckets = tuple(sorted(buckets))
        self.requests: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.denied: dict[str, int] = {}
        self.backend: dict[str, _Histogram] = {}

    def observe(self, record: AuditRecord) -> None:
        self.requests[record.outcome] = self.requests.get(record.outcome, 0) + 1
        if record.outcome != "issued":
            self.denied[record.reason_code] = self.denied.get(record.reason_code, 0) + 1
        if record.backend_seconds is not None:
            label = record.backend or "backend"
            hist = self.backend.get(label)
            if hist is None:
                hist = self.backend[label] = _Histogram(self.buckets)
            hist.observe(record.backend_seconds)

    __call__ = observe

    def render(self, gauges: Mapping[str, tuple[str, float]] | None = None) -> str:
        """The exposition text. ``gauges``: extra ``name → (help, value)`` (connection state...)."""
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")

        family(
            "trustkit_callout_requests_total",
            "counter",
            "Authorization requests handled, by outcome (issued, refused, dropped).",
        )
        for outcome, n in sorted(self.requests.items()):
            out.append(f'trustkit_callout_requests_total{{outcome="{_escape(outcome)}"}} {n}')
        family(
            "trustkit_callout_allowed_total", "counter", "Authorization requests answered with a user JWT."
        )
        out.append(f"trustkit_callout_allowed_total {self.requests.get('issued', 0)}")
        family(
            "trustkit_callout_denied_total",
            "counter",
            "Authorization requests refused or dropped, by reason code.",
        )
        for reason, n in sorted(self.denied.items()):
            out.append(f'trustkit_callout_denied_total{{reason="{_escape(reason)}"}} {n}')
        family(
            "trustkit_callout_backend_seconds",
            "histogram",
            "Time the identity backend took to answer, by backend.",
        )
        for label, hist in sorted(self.backend.items()):
            lab = f'backend="{_escape(label)}"'
            cumulative = 0
            for le, n in zip(hist.buckets, hist.counts, strict=True):
                cumulative += n
                out.append(f'trustkit_callout_backend_seconds_bucket{{{lab},le="{_num(le)}"}} {cumulative}')
            out.append(f'trustkit_callout_backend_seconds_bucket{{{lab},le="+Inf"}} {hist.count}')
            out.append(f"trustkit_callout_backend_seconds_sum{{{lab}}} {_num(hist.total)}")
            out.append(f"trustkit_callout_backend_seconds_count{{{lab}}} {hist.count}")
        for name, (help_text, value) in sorted((gauges or {}).items()):
            family(name, "gauge", help_text)
            out.append(f"{name} {_num(value)}")
        return "\n".join(out) + "\n"
