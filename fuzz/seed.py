#!/usr/bin/env python3
"""Writes the seed corpora (fuzz/corpus/<target>/) from the test vectors under tests/vectors
and tests/fixtures, so every target starts from real tokens, keys, key sets and captures.
Run from anywhere: python3 fuzz/seed.py. File names are the SHA-1 of the content, as
libFuzzer names them, so re-running adds nothing twice."""
import base64, hashlib, json, os, re, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
TOKEN = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def files(*dirs):
    for d in dirs:
        for base, _, names in os.walk(os.path.join(ROOT, d)):
            for n in sorted(names):
                yield os.path.join(base, n)


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


tokens, key_sets = set(), []
for path in files("tests/vectors", "tests/fixtures"):
    data = open(path, "rb").read()
    if "/keys/" in path or "/weak/" in path:
        put("keys", data)
    text = data.decode("utf-8", "replace")
    tokens.update(TOKEN.findall(text))
    if path.endswith(".json"):
        try:
            doc = json.loads(text)
        except ValueError:
            continue
        stack = [doc]
        while stack:
            v = stack.pop()
            if isinstance(v, dict):
                if isinstance(v.get("keys"), list):
                    s = json.dumps(v)
                    key_sets.append(s)
                    put("keys", s)
                stack.extend(v.values())
            elif isinstance(v, list):
                stack.extend(v)

# Wycheproof JWS cases carry a lot of tokens; a few hundred are plenty for a seed.
tokens = sorted(tokens)[:300]
for t in tokens:
    put("jws", t)
    put("verify", t)
    put("scan", t)
    h, p, _ = t.split(".")
    try:
        put("verify_structured", b64d(h) + b"\xff" + b64d(p))
    except ValueError:
        pass
for t in tokens[:20]:
    put("jws", f'"Bearer {t}",')
    put("jws", f"Authorization: Bearer {t[:40]}\n  {t[40:]}")

claims = [
    b'{"iss":"https://issuer.example","sub":"alice","aud":["api","x"],"exp":1764003600,"iat":1764000000,"nbf":1764000000,"jti":"1"}',
    b'{"exp":"1764003600","nbf":1.5,"iat":-1}',
    b'{"exp":9223372036854775807,"nbf":-9223372036854775808}',
    b'{"aud":"api","exp":1e400}',
    b'{"a":1,"a":2}',
]
headers = [b'{"alg":"HS256","kid":"fuzz-hmac","typ":"JWT"}', b'{"alg":"HS256","crit":["exp"]}', b'{"alg":"none"}', b'{"alg":"HS256","b64":false}']
for h in headers:
    for c in claims:
        put("verify_structured", h + b"\xff" + c)

for w in ["30s", "-5m", "1h30m", "7d", "2w", "2026-11-20T10:00:00Z", "2026-11-20", "@0", "@-1",
          "9223372036854775807s", "-9223372036854775808d", "+1h", "1h-", "", "1y", "2026-11-20T10:00:00+01:00"]:
    put("when", w)

for i, s in enumerate(key_sets[:10]):
    put("jwks_response", f"Cache-Control: max-age=300\nETag: \"v{i}\"\n\n{s}")
    put("jwks_response", f"cache-control: no-cache, max-age=99999999999999999999\n\n{s}")
put("jwks_response", "Cache-Control: max-age=-5\n\n{\"keys\":[]}")

t = tokens[0] if tokens else "eyJhbGciOiJIUzI1NiJ9.e30.c2ln"
inner = json.dumps({"access_token": t, "n": 1}).encode()
har = {"log": {"version": "1.2", "creator": {"name": "seed", "version": "1"}, "entries": [{
    "request": {"method": "POST", "url": "https://app.test/x?token=" + t, "headers": [{"name": "Authorization", "value": "Bearer " + t}],
                "bodySize": len(inner), "postData": {"mimeType": "application/json", "text": inner.decode()}},
    "response": {"status": 200, "bodySize": -1, "headers": [{"name": "Set-Cookie", "value": "s=" + t}],
                 "content": {"size": len(inner), "mimeType": "application/json", "encoding": "base64", "text": base64.b64encode(inner).decode()}}}]}}
put("scan", json.dumps(har, indent=2))
put("scan", f"POST /login HTTP/1.1\r\nHost: app.test\r\nAuthorization: Bearer {t}\r\nContent-Length: {len(inner)}\r\n\r\n".encode() + inner
    + f"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{t[:5]}\r\n0\r\n\r\n".encode())
put("scan", json.dumps({"bodyBase64": base64.b64encode(inner).decode(), "cookie": "a=" + t}) + "\n")
put("scan", f"token={t}&x=1 {base64.urlsafe_b64encode(inner).decode().rstrip('=')}")
# Repeated, listed and conflicting Content-Length (RFC 9110 section 8.6), and long lines
# that cross the fuzz build's small streaming cut: a token glued to a base64 run by "/",
# and one glued to its letters.
n = len(inner)
put("scan", f"POST /a HTTP/1.1\r\nContent-Length: {n}\r\nContent-Length: {n}\r\n\r\n".encode() + inner
    + f"HTTP/1.1 200 OK\r\nContent-Length: {n}, {n}\r\n\r\n".encode() + inner
    + f"POST /c HTTP/1.1\r\nContent-Length: {n}\r\nContent-Length: {n + 1}\r\n\r\n".encode() + inner)
put("scan", '{"blob":"' + "QUFB" * 40 + "/" + t + '"}\n')
put("scan", '{"blob":"' + "QUFB" * 40 + t + '"}\n')
put("scan", '{"log":"Authorization: Bearer ' + t + '\\n","stream":"stdout","time":"2026-12-05T10:00:00Z"}\n')

for pick, query, body in [
    (0, b"", b'{"sub":"bob","aud":["api"],"scope":"read","n":{"x":[1,2]}}'),
    (4, b"ttl=5m&expired=no", b"sub=bob&aud=api&scope=read+write"),
    (1, b"expired=true", b'{"sub":5}'),
    (0, b"ttl=99999999999999d", b'{"exp":1,"iss":"x"}'),
    (2, b"expires_in=1h", open(os.path.join(ROOT, "tests/vectors/keys/rfc7515-A.3.public.jwk.json"), "rb").read()),
    (2, b"expires_in=-1s", open(os.path.join(ROOT, "tests/vectors/keys/rfc7515-A.2.public.jwk.json"), "rb").read()),
    (2, b"", key_sets[0].encode() if key_sets else b"{}"),
    (3, b"", b"some-kid"),
]:
    put("server", bytes([pick]) + query + b"\xff" + body)

# The identity provider (the pick's high bit; pick % 8 the endpoint, (pick // 4) % 3 == 1 a
# form body; an even pick sends Basic client authentication to /token, /introspect, /revoke).
def idp_pick(endpoint, basic=None):
    return next(p for p in range(128, 256)
                if p % 8 == endpoint and (p // 4) % 3 == 1 and basic in (None, p % 2 == 0))

cb = b"redirect_uri=https%3A%2F%2Fapp.example%2Fcb"
for endpoint, basic, query, body in [
    (0, True, b"", b"grant_type=client_credentials&scope=api"),
    (1, False, b"", b"grant_type=password&username=alice&password=pw&client_id=web&client_secret=web-secret&scope=openid+email"),
    (0, True, b"", b"grant_type=authorization_code&code=abc&" + cb + b"&code_verifier=" + b"v" * 43),
    (0, True, b"", b"grant_type=refresh_token&refresh_token=abc&scope=openid"),
    (0, True, b"", b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=a.b.c"
     b"&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token&audience=api"),
    (1, False, b"", b"grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3A"
     b"client-assertion-type%3Ajwt-bearer&client_assertion=" + t.encode()),
    (2, None, b"client_id=web&" + cb + b"&response_type=code&scope=openid+email&state=s&nonce=n&prompt=none"
     b"&login_hint=alice&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256", b""),
    (3, None, b"", b"client_id=web&" + cb + b"&response_type=code&scope=openid&username=alice&password=pw"
     b"&claims=%7B%22roles%22%3A%5B%22a%22%5D%7D"),
    (4, True, b"", b"token=abc&token_type_hint=access_token"),
    (5, None, b"", b"token=abc&token_type_hint=refresh_token&client_id=web&client_secret=web-secret"),
    (6, None, b"", t.encode()),
    (7, None, b"client_id=web&post_logout_redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=z", b""),
]:
    put("server", bytes([idp_pick(endpoint, basic)]) + query + b"\xff" + body)

print("seeded:", {d: len(os.listdir(os.path.join(CORPUS, d))) for d in sorted(os.listdir(CORPUS))})
