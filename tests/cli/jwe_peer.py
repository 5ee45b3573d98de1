"""JWE with jwcrypto, an independent implementation, for tests/cli/jwe.rs.

Reads one JSON array of jobs on stdin and prints one JSON array of results, in order:
  {"op": "keys"}: {"ok": true, "keys": {name: private JWK}} (RSA 2048, P-256/384/521, X25519,
      and oct keys of 16, 24, 32, 48 and 64 bytes), made here, not by jwkit;
  {"op": "open", "token", "key": private JWK, "sig": public JWK}: decrypts, then verifies the
      inner JWS with "sig": {"ok": true, "claims": {...}};
  {"op": "nest", "claims", "sig": private JWK, "key": public JWK, "alg", "enc"}: signs (ES256),
      then encrypts with cty JWT: {"ok": true, "token": "..."} ("json": true: the JSON
      serialization, on one line);
  {"op": "seal", "claims", "key": public JWK, "alg", "enc"}: encrypts the claims, unsigned;
  {"op": "thumbprint", "key": JWK}: its RFC 7638 SHA-256 thumbprint.
A job jwcrypto cannot do gives {"ok": false, "error": "..."}.
"""
import json
import sys

from jwcrypto import jwe, jwk, jws


def make_keys():
    keys = {
        "rsa": jwk.JWK.generate(kty="RSA", size=2048),
        "P-256": jwk.JWK.generate(kty="EC", crv="P-256"),
        "P-384": jwk.JWK.generate(kty="EC", crv="P-384"),
        "P-521": jwk.JWK.generate(kty="EC", crv="P-521"),
        "X25519": jwk.JWK.generate(kty="OKP", crv="X25519"),
    }
    for n in (16, 24, 32, 48, 64):
        keys[f"oct{n}"] = jwk.JWK.generate(kty="oct", size=n * 8)
    return {name: json.loads(k.export(private_key=True)) for name, k in keys.items()}


def run(job):
    op = job["op"]
    if op == "keys":
        return {"ok": True, "keys": make_keys()}
    if op == "thumbprint":
        return {"ok": True, "thumbprint": jwk.JWK(**job["key"]).thumbprint()}
    if op == "open":
        token = jwe.JWE()
        token.deserialize(job["token"], key=jwk.JWK(**job["key"]))
        inner = jws.JWS()
        inner.deserialize(token.payload.decode())
        inner.verify(jwk.JWK(**job["sig"]))
        return {"ok": True, "claims": json.loads(inner.payload)}
    if op in ("nest", "seal"):
        payload = json.dumps(job["claims"])
        header = {"alg": job["alg"], "enc": job["enc"]}
        if op == "nest":
            signed = jws.JWS(payload.encode())
            signed.add_signature(jwk.JWK(**job["sig"]), alg="ES256", protected={"alg": "ES256", "typ": "JWT"})
            payload = signed.serialize(compact=True)
            header["cty"] = "JWT"
        token = jwe.JWE(payload.encode(), protected=json.dumps(header))
        token.add_recipient(jwk.JWK(**job["key"]))
        # "json": true gives the (flattened) JSON serialization on one line.
        return {"ok": True, "token": token.serialize(compact=not job.get("json"))}
    raise ValueError(f"unknown op {op}")


results = []
for job in json.load(sys.stdin):
    try:
        results.append(run(job))
    except Exception as e:  # every failure goes back to the Rust test
        results.append({"ok": False, "error": f"{type(e).__name__}: {e}"})
json.dump(results, sys.stdout)
