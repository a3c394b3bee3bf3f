"""Core speed: nkeys and JWT operations beside raw pynacl, measured in the same run.

    .venv/bin/python bench/core.py [--seconds 1.0] [--json out.json]

Prints ops/s for each operation and the ratio of user-JWT decode+verify+validate to the raw
pynacl verify rate (goal: >= 0.80 — the signature must dominate, not the Python around it).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import nacl.signing

from trustkit import jwt, nkeys
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.resolver import MemoryResolver
from trustkit.trust import TrustedOperators, authorize_user, sign_nonce


def rate(fn: Callable[[], object], seconds: float, repeats: int = 3) -> float:
    """Best ops/s over ``repeats`` runs of about ``seconds`` each."""
    best = 0.0
    batch = 64
    for _ in range(repeats):
        n = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            for _ in range(batch):
                fn()
            n += batch
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, n / (now - start))
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    now = int(time.time())
    op = KeyPair.generate(PrefixByte.OPERATOR)
    acct = KeyPair.generate(PrefixByte.ACCOUNT)
    user = KeyPair.generate(PrefixByte.USER)
    seed = user.seed
    op_jwt = jwt.OperatorClaims(sub=op.public_key, name="op").encode(op, iat=now)
    acct_jwt = jwt.AccountClaims(sub=acct.public_key, name="A").encode(op, iat=now)
    claims = jwt.UserClaims(
        sub=user.public_key,
        name="bench-user",
        pub=jwt.Permission(allow=["orders.>", "_INBOX.>"], deny=["orders.secret.>"]),
        sub_perms=jwt.Permission(allow=["orders.*.status", "_INBOX.>"]),
        resp=jwt.ResponsePermission(max=1, ttl=5_000_000_000),
        tags=["region:eu"],
    )
    token = claims.encode(acct, iat=now)
    signing_input = token.rpartition(".")[0]
    msg = signing_input.encode()
    ops = TrustedOperators.from_jwts([op_jwt])
    resolver = MemoryResolver(ops, [acct_jwt])
    nonce = "Zm9vYmFyYmF6cXV4"
    conn_sig = sign_nonce(user, nonce)

    raw_sk = nacl.signing.SigningKey(bytes(range(32)))
    raw_vk = raw_sk.verify_key
    raw_sig = raw_sk.sign(msg).signature
    tk_sig = acct.sign(msg)

    def decode_verify_validate() -> None:
        c = jwt.decode(token, jwt.UserClaims)
        vr = c.validate(now=now)
        if vr.is_blocking(include_time_checks=True):
            raise SystemExit("bench token unexpectedly invalid")

    def chain() -> None:
        authorize_user(token, nonce=nonce, signature=conn_sig, resolver=resolver, operators=ops, now=now)

    def fresh_encode() -> None:
        claims.encode(acct, iat=now)

    s = args.seconds
    results = {
        "pynacl_sign": rate(lambda: raw_sk.sign(msg), s),
        "pynacl_verify": rate(lambda: raw_vk.verify(msg, raw_sig), s),
        "seed_to_keypair": rate(lambda: KeyPair.from_seed(seed), s),
        "sign": rate(lambda: acct.sign(msg), s),
        "verify": rate(lambda: nkeys.verify(acct.public_key, msg, tk_sig), s),
        "user_jwt_encode": rate(fresh_encode, s),
        "user_jwt_decode_verify_validate": rate(decode_verify_validate, s),
        "chain_of_trust": rate(chain, s),
    }
    ratio = results["user_jwt_decode_verify_validate"] / results["pynacl_verify"]
    chain_ratio = results["chain_of_trust"] / (results["pynacl_verify"] / 2)
    print(f"# trustkit core benchmark — Python {platform.python_version()}, {platform.machine()}")
    print(f"# token: {len(token)} bytes; each figure is the best of 3 runs of {s}s")
    print(f"{'operation':34} {'ops/s':>10}")
    for name, value in results.items():
        print(f"{name:34} {value:10,.0f}")
    print(f"decode+verify+validate / raw pynacl verify: {ratio:.2f} (goal >= 0.80)")
    print(f"chain of trust / (raw verify / 2 signatures): {chain_ratio:.2f}")
    if args.json:
        out = {"results": results, "ratio_decode_vs_verify": ratio, "ratio_chain_vs_2verify": chain_ratio}
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
