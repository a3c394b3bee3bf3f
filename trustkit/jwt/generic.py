"""Generic claims (Go ``genericlaims.go``): a free-form ``nats`` map, e.g. the resolver delete request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trustkit.jwt.claims import LIB_VERSION, Claims
from trustkit.jwt.codec import normalize_floats, sort_map

__all__ = ["GenericClaims"]


@dataclass(slots=True, kw_only=True)
class GenericClaims(Claims):
    """``data`` is the ``nats`` object; Go writes it as a map (sorted keys) with ``version: 2``."""

    data: dict[str, Any] = field(default_factory=dict)

    CLAIM_TYPE = ""  # not registered: generic is what unknown types decode to

    def nats_json(self) -> dict[str, Any]:
        out = dict(normalize_floats(self.data))
        if self.tags:
            out["tags"] = list(self.tags)
        out["version"] = LIB_VERSION
        return sort_map(out)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> GenericClaims:
        """Standard claims and tags as for every type; ``data`` is the rest of ``nats``."""
        obj: GenericClaims = cls._reader()(cls, payload)
        nats = payload.get("nats") or {}
        obj.data = {k: v for k, v in nats.items() if k not in ("tags", "version")}
        obj.nats_extra = {}
        return obj

    @property
    def claim_type(self) -> str:
        t = self.data.get("type")
        return t if isinstance(t, str) else ""
