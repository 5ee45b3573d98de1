"""Verifies tokens as an application using PyJWT's PyJWKClient would: the key set fetched from
a URL, the key picked by the token's kid.

  jwks_peer.py JWKS_URL [ISSUER [CAFILE]] < tokens (one per line)
Prints one JSON line per token: {"ok": true, "claims": {...}} or {"ok": false, "error": "..."}.
"""
import json
import ssl
import sys

import jwt

url = sys.argv[1]
issuer = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
context = ssl.create_default_context(cafile=sys.argv[3]) if len(sys.argv) > 3 else None
client = jwt.PyJWKClient(url, cache_keys=False, cache_jwk_set=False, ssl_context=context)
for line in sys.stdin:
    token = line.strip()
    if not token:
        continue
    try:
        key = client.get_signing_key_from_jwt(token)
        options = {"verify_aud": False}
        kwargs = {"issuer": issuer} if issuer else {}
        claims = jwt.decode(token, key.key, algorithms=["RS256", "ES256", "EdDSA", "PS256"], options=options, **kwargs)
        print(json.dumps({"ok": True, "claims": claims}))
    except Exception as e:  # every failure is reported to the Rust test
        print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))
    sys.stdout.flush()
