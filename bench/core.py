"""Core speed: nkeys and JWT operations beside raw pynacl, measured in the same run.

    .venv/bin/python bench/core.py [--seconds 1.0] [--json out.json]

Prints ops/s for each operation and the ratio of user-JWT decode+verify+validate to the raw
pynacl verify rate (goal: >= 0.80 — the signature must dominate, not the Python around it).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import nacl.signing

from trustkit import jwt, nkeys
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.resolver import MemoryResolver
from trustkit.trust import TrustedOperators, authorize_user, sign_nonce


def rate(fn: Callable[[], object], seconds: float) -> float:
    """ops/s of ``fn`` over about ``seconds``."""
    batch = 32
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            fn()
        n += batch
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def measure(ops: dict[str, Callable[[], object]], seconds: float, rounds: int) -> dict[str, list[float]]:
    """Interleave every operation in short windows, ``rounds`` times.

    A shared VM's speed drifts by tens of percent within seconds; measuring the operations side
    by side in each round and comparing within the round makes the ratios stable.
    """
    out: dict[str, list[float]] = {name: [] for name in ops}
    window = seconds / rounds
    for _ in range(rounds):
        for name, fn in ops.items():
            out[name].append(rate(fn, window))
    return out


def paired_ratio(
    fn: Callable[[], object], base: Callable[[], object], rounds: int = 60, n: int = 150
) -> float:
    """Median over ``rounds`` of rate(fn) / rate(base), each pair timed back to back.

    Adjacent short batches see the same machine speed, so the ratio is stable even when a
    shared VM's absolute speed drifts (the rates above vary by ±20% from run to run here).
    """
    ratios = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            base()
        t1 = time.perf_counter()
        for _ in range(n):
            fn()
        t2 = time.perf_counter()
        ratios.append((t1 - t0) / (t2 - t1))
    return statistics.median(ratios)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0, help="total time per operation")
    ap.add_argument("--rounds", type=int, default=15)
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

    samples = measure(
        {
            "pynacl_sign": lambda: raw_sk.sign(msg),
            "pynacl_verify": lambda: raw_vk.verify(msg, raw_sig),
            "seed_to_keypair": lambda: KeyPair.from_seed(seed),
            "sign": lambda: acct.sign(msg),
            "verify": lambda: nkeys.verify(acct.public_key, msg, tk_sig),
            "user_jwt_encode": fresh_encode,
            "user_jwt_decode_verify_validate": decode_verify_validate,
            "chain_of_trust": chain,
        },
        args.seconds,
        args.rounds,
    )
    results = {name: statistics.median(v) for name, v in samples.items()}
    # the ratios come from back-to-back batches: rates measured in separate windows drift apart
    # by ±10% on a shared VM, which swamps a difference of a few microseconds
    pynacl_verify = lambda: raw_vk.verify(msg, raw_sig)  # noqa: E731
    ratio = paired_ratio(decode_verify_validate, pynacl_verify)
    chain_ratio = paired_ratio(chain, pynacl_verify) * 2
    print(f"# trustkit core benchmark — Python {platform.python_version()}, {platform.machine()}")
    print(
        f"# token: {len(token)} bytes; rates: medians of {args.rounds} interleaved rounds,"
        f" {args.seconds:.1f}s per operation in all"
    )
    print(f"{'operation':34} {'ops/s':>10}")
    for name, value in results.items():
        print(f"{name:34} {value:10,.0f}")
    print(
        f"decode+verify+validate / raw pynacl verify: {ratio:.2f} (goal >= 0.80; paired batches)"
    )
    print(f"chain of trust / (raw verify / 2 signatures): {chain_ratio:.2f}")
    if args.json:
        out = {"results": results, "ratio_decode_vs_verify": ratio, "ratio_chain_vs_2verify": chain_ratio}
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
