"""Verifies jwkit tokens with PyJWT, an independent implementation.

Reads JSON lines {"token", "key": JWK, "alg"} on stdin; prints one JSON line per token:
{"ok": true, "header": {...}, "claims": {...}} or {"ok": false, "error": "..."}.
"""
import json
import sys

import jwt

for line in sys.stdin:
    case = json.loads(line)
    try:
        key = jwt.PyJWK(case["key"], algorithm=case["alg"])
        claims = jwt.decode(
            case["token"],
            key.key,
            algorithms=[case["alg"]],
            options={"verify_aud": False},
        )
        header = jwt.get_unverified_header(case["token"])
        print(json.dumps({"ok": True, "header": header, "claims": claims}))
    except Exception as e:  # report every failure to the Rust test
        print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))
    sys.stdout.flush()
