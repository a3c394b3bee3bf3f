#!/usr/bin/env bash
# A whole nsc-style flow with trustkit, only CLI commands: an operator, a scoped signing key for
# devices, a service shared between two accounts, creds, and a nats-server config.
#
#   bash examples/cli-flow.sh WORKDIR        (trustkit on PATH, or .venv/bin/trustkit is used)
#
# Everything goes under WORKDIR: the store and keys (TRUSTKIT_HOME), the creds and server.conf.
# Start nats-server (or trustkit-broker) with WORKDIR/server.conf, then run
# `TRUSTKIT_HOME=WORKDIR/home trustkit push --all -u nats://...` to load the accounts.
set -euo pipefail
work=${1:?usage: cli-flow.sh WORKDIR}
mkdir -p "$work"
export TRUSTKIT_HOME="$work/home"
tk=trustkit
command -v trustkit >/dev/null || tk="$(dirname "$0")/../.venv/bin/trustkit"

# the operator, its system account, and an account named after it ("acme")
$tk init -n acme >/dev/null
$tk add account -n fleet >/dev/null

# devices get their permissions from a scoped signing key: each device may publish only under
# its own name (the template is filled in per user) and call the quote service, and may not
# carry permissions of its own
$tk add signing-key -a fleet --role device \
    --allow-pub 'telemetry.{{name()}}.>' --allow-pub quote --allow-sub '_INBOX.>' >/dev/null
$tk add user -a fleet -n meter-17 -K device >/dev/null

# acme serves "billing.quote" to the fleet account, which calls it as "quote"
$tk add export -a acme --subject billing.quote --service >/dev/null
$tk add import -a fleet --src-account acme --remote-subject billing.quote --service --local-subject quote >/dev/null

# an operator of acme's own, allowed to publish anywhere but billing
$tk add user -a acme -n ops --allow-pubsub '>' --deny-pub 'billing.>' >/dev/null

# creds (0600) and a server config with a full nats-based resolver
$tk generate creds -a fleet -n meter-17 -o "$work/meter-17.creds" >/dev/null
$tk generate creds -a acme -n ops -o "$work/ops.creds" >/dev/null
$tk generate config --nats-resolver --dir "$work/jwt" --config-file "$work/server.conf" >/dev/null

$tk validate --all --json | python3 -c 'import json, sys; r = json.load(sys.stdin); print("validated:", r["jwts"], "JWTs,", r["errors"], "errors")'
echo "store: $TRUSTKIT_HOME"
echo "creds: $work/meter-17.creds $work/ops.creds"
echo "server config: $work/server.conf"
