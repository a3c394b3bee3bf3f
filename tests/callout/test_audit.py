"""The audit trail: JSON-lines log and issued-key index (0600, append-only), read back for revoke."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from callout.audit import (
    AuditLog,
    AuditRecord,
    DecisionRing,
    IssuedKey,
    default_index_path,
    issued_to,
    read_index,
)
from callout.service import AuditRecord as ServiceAuditRecord
from trustkit.errors import CalloutError

NOW = 1_800_000_000


def issued(user_nkey: str, identity: str, iat: int = NOW, exp: int = NOW + 600) -> AuditRecord:
    return AuditRecord(
        at=iat,
        outcome="issued",
        reason_code="allowed",
        user_nkey=user_nkey,
        identity=identity,
        source="ldap",
        account="APP",
        account_key="AAPP",
        issued_at=iat,
        expires_at=exp,
    )


def test_audit_record_is_still_importable_from_the_service() -> None:
    assert ServiceAuditRecord is AuditRecord


def test_log_and_index(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    log = AuditLog(path)
    log.write(issued("UA1", "alice"))
    log.write(AuditRecord(at=NOW, outcome="refused", reason_code="invalid_credentials", username="alice"))
    log.write(issued("UB1", "bob"))
    log.close()
    log.write(issued("UZ", "late"))  # after close: ignored, no error
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["reason_code"] for x in lines] == ["allowed", "invalid_credentials", "allowed"]
    index = path.with_name("audit.jsonl.index")
    assert [e.user_nkey for e in read_index(index)] == ["UA1", "UB1"]
    for f in (path, index):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_an_existing_loose_file_is_tightened_and_appended(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"old": 1}\n')
    os.chmod(path, 0o644)
    log = AuditLog(path, tmp_path / "idx")
    log.write(issued("UA1", "alice"))
    log.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().splitlines()[0] == '{"old": 1}'
    assert len(path.read_text().splitlines()) == 2
    assert [e.identity for e in read_index(tmp_path / "idx")] == ["alice"]


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(CalloutError) as info:
        AuditLog(tmp_path / "file" / "audit.jsonl")
    assert info.value.code == "callout_audit" and "cannot open the audit file" in info.value.message


def test_issued_to_skips_expired_torn_and_foreign_lines(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    good = [
        IssuedKey("UA1", "alice", "ldap", "APP", "AAPP", NOW - 100, NOW + 500),
        IssuedKey("UA2", "alice", "ldap", "APP", "AAPP", NOW - 900, NOW - 300),  # expired
        IssuedKey("UB1", "bob", "ldap", "APP", "AAPP", NOW, NOW + 10),
        IssuedKey("UA3", "alice", "ldap", "OPS", "AOPS", NOW, 0),  # never expires
        IssuedKey("UA1", "alice", "ldap", "APP", "AAPP", NOW - 100, NOW + 500),  # duplicate line
    ]
    text = "".join(json.dumps(e.to_json()) + "\n" for e in good)
    text += '{"user_nkey": "UX", "identity": "alice"\n'  # torn last write
    text += '{"something": "else"}\n[1, 2]\nnot json\n'
    index.write_text(text)
    assert [e.user_nkey for e in read_index(index)] == ["UA1", "UA2", "UB1", "UA3", "UA1"]
    assert sorted(e.user_nkey for e in issued_to(index, "alice", now=NOW)) == ["UA1", "UA3"]
    assert issued_to(index, "Alice", now=NOW) == []  # exact subject match
    assert issued_to(index, "bob", now=NOW + 10) == []
    with pytest.raises(CalloutError, match="no audit index"):
        read_index(tmp_path / "missing")


def test_decision_ring() -> None:
    ring = DecisionRing(2)
    for i in range(3):
        ring.add(AuditRecord(at=i, outcome="issued", reason_code="allowed"))
    assert [r.at for r in ring.recent()] == [2, 1]
    assert [r.at for r in ring.recent(1)] == [2]
    assert ring.recent(0) == []


def test_records_reach_the_file_without_close_in_order_and_whole(tmp_path: Path) -> None:
    """The writer thread gathers a burst and writes it in one go: every line arrives, in order,
    whole, shortly after the decision (no close needed), in the same format as to_json()."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, linger=0.05)
    try:
        records = [
            AuditRecord(at=NOW, outcome="refused", reason_code="invalid_credentials", username=f"u{i}\n\"é")
            if i % 3
            else issued(f"U{i}", f"id{i}")
            for i in range(600)
        ]
        for record in records:
            log.write(record)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(path.read_bytes().splitlines()) < 600:
            time.sleep(0.01)
        lines = path.read_bytes().splitlines()
        assert [json.loads(x) for x in lines] == [r.to_json() for r in records]
        index = read_index(default_index_path(path))
        assert [e.user_nkey for e in index] == [f"U{i}" for i in range(0, 600, 3)]
        log.write(issued("ULAST", "last"))  # a lone record after the burst: written on its own
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and b"ULAST" not in path.read_bytes():
            time.sleep(0.01)
        assert json.loads(path.read_bytes().splitlines()[-1])["user_nkey"] == "ULAST"
    finally:
        log.close()
    assert len(path.read_bytes().splitlines()) == 601
