"""Fixtures for the interop tests (reference implementations driven from pytest)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import realcomp
from tests.interop import gocheck, jscheck


@pytest.fixture(scope="session")
def go_checker() -> Iterator[gocheck.GoChecker]:
    """The Go reference checker (nats-io/jwt v2.3.0 + nkeys 0.3.0), built once per source change.

    Skips on a laptop without Go and the Debian nats-io sources; fails under CI=true.
    """
    realcomp.require(gocheck.available(), gocheck.COMPONENT, gocheck.HOW_TO_GET)
    checker = gocheck.GoChecker().start()
    try:
        yield checker
    finally:
        checker.close()


@pytest.fixture(scope="session")
def js_checker() -> Iterator[jscheck.JsChecker]:
    """The JS reference checker (node + npm @nats-io/jwt 0.0.11, @nats-io/nkeys 2.0.3).

    Skips on a laptop without node or tests/js/node_modules; fails under CI=true.
    """
    ok, _why = jscheck.available()
    realcomp.require(ok, "node + npm @nats-io/jwt", "run bash scripts/install-components.sh")
    checker = jscheck.JsChecker().start()
    try:
        yield checker
    finally:
        checker.close()
