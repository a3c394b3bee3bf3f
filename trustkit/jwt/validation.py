"""Validation results that collect problems instead of failing on the first (Go ``ValidationResults``).

An issue is *blocking* (an error) or not (a warning); *time checks* (expired, not yet valid) are
kept apart so a caller can accept an expired account JWT for storage but not for a connection —
the server does exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ValidationIssue", "ValidationResults"]


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    description: str
    blocking: bool
    time_check: bool = False

    def __str__(self) -> str:
        return self.description


@dataclass(slots=True)
class ValidationResults:
    issues: list[ValidationIssue] = field(default_factory=list)

    def add_error(self, message: str) -> None:
        self.issues.append(ValidationIssue(message, True))

    def add_warning(self, message: str) -> None:
        self.issues.append(ValidationIssue(message, False))

    def add_time_check(self, message: str) -> None:
        self.issues.append(ValidationIssue(message, False, True))

    @property
    def errors(self) -> list[str]:
        return [i.description for i in self.issues if i.blocking]

    @property
    def warnings(self) -> list[str]:
        return [i.description for i in self.issues if not i.blocking and not i.time_check]

    @property
    def time_checks(self) -> list[str]:
        return [i.description for i in self.issues if i.time_check]

    def is_empty(self) -> bool:
        return not self.issues

    def is_blocking(self, *, include_time_checks: bool) -> bool:
        """True if any error exists, or a time check when ``include_time_checks``."""
        if not self.issues:  # the common case, on every connect
            return False
        return any(i.blocking or (include_time_checks and i.time_check) for i in self.issues)

    def blocking_messages(self, *, include_time_checks: bool) -> list[str]:
        return [i.description for i in self.issues if i.blocking or (include_time_checks and i.time_check)]
