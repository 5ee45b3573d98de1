"""Captured traffic for the `resign --scan` workflow test, made and checked with PyJWT (an
implementation independent of jwkit).

  capture_peer.py make DIR OLD_RSA_PEM
      Writes DIR/capture.har (HAR 1.2), DIR/capture.jsonl (request/response pairs as a
      traffic-replay tool records them, bodies also as base64) and DIR/capture.http (raw HTTP
      messages), holding expired HS256 and RS256 tokens signed by PyJWT with old keys, in every
      place captures keep them, plus things that are not JWS (an opaque refresh token, a JWE,
      dotted strings). Prints the old HS256 secret's file name.

  capture_peer.py check OLD NEW NEW_HS_SECRET_FILE NEW_RSA_PUBLIC_PEM
      Prints one JSON report: each token pair (old, new) in order with PyJWT's verdict on the
      new token under the new key of its family, whether the lifetime was kept; whether every
      byte outside tokens (base64 bodies compared decoded) is the same; and whether the declared
      sizes (HAR bodySize / content.size, HTTP Content-Length) match the bodies.
"""
import base64
import json
import re
import sys
import time

import jwt

RUN = re.compile(rb"[A-Za-z0-9_.\-]+")
B64_STRING = re.compile(rb'"([A-Za-z0-9+/=_\-]{32,})\\?"')


def tokens_in(text):
    """JWS-looking runs (start 'ey', exactly two dots), in order, with their spans."""
    out = []
    for m in RUN.finditer(text):
        run = m.group(0)
        if run.endswith(b".") and run.count(b".") == 3:
            run = run[:-1]
        if run.startswith(b"ey") and run.count(b".") == 2:
            out.append((m.start(), m.start() + len(run), run.decode()))
    return out


def decode_b64(s):
    try:
        raw = s.decode()
        alt = "-" in raw or "_" in raw
        padded = raw + "=" * (-len(raw.rstrip("=")) % 4) if "=" not in raw else raw
        data = (base64.urlsafe_b64decode if alt else base64.b64decode)(padded)
        return data.decode("utf-8")
    except Exception:
        return None


def normalise(text):
    """The text with every token replaced by <T> and every base64 document by its decoded
    (and likewise normalised) content, so two captures compare equal exactly when they differ
    only in token text."""

    def doc(m):
        decoded = decode_b64(m.group(1))
        if decoded is None or not tokens_in(decoded.encode()):
            return m.group(0)
        return b'"<B64:' + normalise(decoded.encode()) + b'>"'

    text = B64_STRING.sub(doc, text)
    out, at = b"", 0
    for s, e, _ in tokens_in(text):
        out += text[at:s] + b"<T>"
        at = e
    return out + text[at:]


def all_tokens(text):
    """Tokens in order, those inside base64 documents included (at the document's place)."""
    events = []
    for s, e, t in tokens_in(text):
        events.append((s, t, False))
    for m in B64_STRING.finditer(text):
        decoded = decode_b64(m.group(1))
        if decoded:
            for _, _, t in tokens_in(decoded.encode()):
                events.append((m.start(), t, True))
    events.sort(key=lambda x: x[0])
    return [(t, nested) for _, t, nested in events]


def make(d, old_rsa_pem):
    now = int(time.time())
    old_secret = b"old-app-secret-0123456789-abcdef"
    open(f"{d}/old-hs.secret", "wb").write(old_secret)
    rsa_key = open(old_rsa_pem, "rb").read()
    n = [0]

    def tok(alg, iss="https://old-idp.example", kid=None, lifetime=3600, age=7200, **extra):
        n[0] += 1
        iat = now - age
        claims = {"iss": iss, "sub": f"user-{n[0]}", "iat": iat, "exp": iat + lifetime, **extra}
        headers = {"kid": kid} if kid else None
        key = old_secret if alg.startswith("HS") else rsa_key
        return jwt.encode(claims, key, algorithm=alg, headers=headers)

    jwe = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a2V5.aXY.Y2lwaGVy.dGFn"
    opaque = "8xLOxBtZp8"  # an opaque refresh token
    hs_login = {"access_token": tok("HS256", kid="app-hs"), "id_token": tok("RS256", kid="old-rs"),
                "refresh_token": opaque, "token_type": "Bearer", "version": "v1.2.3"}
    rs_login = {"access_token": tok("RS256", kid="old-rs"), "id_token": tok("RS256", kid="old-rs",
                iss="https://other-idp.example"), "refresh_token": opaque}
    bearer_hs = tok("HS256")
    bearer_rs = tok("RS256", kid="old-rs", lifetime=900)
    cookie_tok = tok("HS256", kid="app-hs")
    query_tok = tok("RS256", kid="old-rs")
    form_tok = tok("HS256")
    body_text = json.dumps(hs_login)
    body_b64 = base64.b64encode(json.dumps(rs_login).encode()).decode()

    def header(name, value):
        return {"name": name, "value": value}

    har = {"log": {"version": "1.2", "creator": {"name": "test", "version": "1"}, "entries": [
        {"startedDateTime": "2026-11-20T10:00:00.000Z", "time": 12,
         "request": {"method": "POST", "url": "https://app.example/login?next=a.b.c", "httpVersion": "HTTP/1.1",
                     "headers": [header("Content-Type", "application/x-www-form-urlencoded"),
                                 header("Authorization", f"Bearer {bearer_hs}")],
                     "cookies": [{"name": "session", "value": cookie_tok}],
                     "queryString": [{"name": "next", "value": "a.b.c"}],
                     "postData": {"mimeType": "application/x-www-form-urlencoded",
                                  "text": f"grant_type=jwt-bearer&assertion={form_tok}",
                                  "params": [{"name": "grant_type", "value": "jwt-bearer"},
                                             {"name": "assertion", "value": form_tok}]},
                     "headersSize": -1, "bodySize": len(f"grant_type=jwt-bearer&assertion={form_tok}")},
         "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
                      "headers": [header("Set-Cookie", f"session={cookie_tok}; Path=/; HttpOnly")],
                      "cookies": [{"name": "session", "value": cookie_tok}],
                      "content": {"size": len(body_text.encode()), "mimeType": "application/json",
                                  "text": body_text},
                      "redirectURL": "", "headersSize": -1, "bodySize": len(body_text.encode())},
         "cache": {}, "timings": {"send": 1, "wait": 10, "receive": 1}},
        {"startedDateTime": "2026-11-20T10:00:01.000Z", "time": 9,
         "request": {"method": "GET", "url": f"https://app.example/api/items?access_token={query_tok}&jwe={jwe}",
                     "httpVersion": "HTTP/1.1", "headers": [header("Authorization", f"Bearer {bearer_rs}")],
                     "cookies": [], "queryString": [{"name": "access_token", "value": query_tok},
                                                   {"name": "jwe", "value": jwe}],
                     "headersSize": -1, "bodySize": 0},
         "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "headers": [],
                      "cookies": [], "content": {"size": len(json.dumps(rs_login).encode()),
                                                 "mimeType": "application/json", "encoding": "base64",
                                                 "text": body_b64},
                      "redirectURL": "", "headersSize": -1, "bodySize": -1},
         "cache": {}, "timings": {"send": 1, "wait": 7, "receive": 1}}]}}
    with open(f"{d}/capture.har", "w") as f:
        json.dump(har, f, indent=2)

    pairs = [
        {"request": {"method": "POST", "path": "/oauth/token", "headers": {"Content-Type": "application/json"},
                     "body": json.dumps({"grant_type": "client_credentials"})},
         "response": {"status": 200, "headers": {"Content-Type": "application/json"},
                      "bodyBase64": base64.b64encode(json.dumps(hs_login).encode()).decode()}},
        {"request": {"method": "GET", "path": f"/api/me?access_token={query_tok}",
                     "headers": {"Authorization": f"Bearer {bearer_rs}", "Cookie": f"theme=dark; session={cookie_tok}"}},
         "response": {"status": 200, "headers": {"Set-Cookie": f"session={cookie_tok}; Path=/"},
                      "body": json.dumps({"ok": True, "build": "1.2.3", "refresh_token": opaque, "jwe": jwe})}},
    ]
    with open(f"{d}/capture.jsonl", "w") as f:
        for p in pairs:
            f.write(json.dumps(p) + "\n")

    form = f"assertion={form_tok}&scope=read"
    resp_body = json.dumps(hs_login)
    http = (
        f"POST /login?next=x.y.z HTTP/1.1\r\nHost: app.example\r\nAuthorization: Bearer {bearer_hs}\r\n"
        f"Cookie: theme=dark; session={cookie_tok}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(form)}\r\n\r\n{form}"
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: session={cookie_tok}; Path=/\r\n"
        f"Content-Length: {len(resp_body)}\r\n\r\n{resp_body}"
        f"GET /api/items?access_token={query_tok} HTTP/1.1\r\nHost: app.example\r\n\r\n"
        f"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
    )
    open(f"{d}/capture.http", "w", newline="").write(http)
    # Each kind of place has tokens of its own, so a test can tell which a selector chose.
    manifest = {
        "header:Authorization": [bearer_hs, bearer_rs],
        "cookie:session": [cookie_tok],
        "param:access_token": [query_tok],
        "param:assertion": [form_tok],
        "json:access_token": [hs_login["access_token"], rs_login["access_token"]],
        "json:id_token": [hs_login["id_token"], rs_login["id_token"]],
    }
    json.dump(manifest, open(f"{d}/manifest.json", "w"))


def http_sizes_ok(data):
    """Every message's Content-Length equals its body, and the stream frames to its end."""
    pos, messages = 0, 0
    while pos < len(data):
        head_end = data.find(b"\r\n\r\n", pos)
        if head_end < 0:
            return False
        head = data[pos:head_end].decode()
        m = re.search(r"(?im)^content-length:\s*(\d+)\s*$", head)
        length = int(m.group(1)) if m else 0
        body = data[head_end + 4: head_end + 4 + length]
        if len(body) != length:
            return False
        if length and not (body.startswith(b"{") or b"=" in body):
            return False
        pos = head_end + 4 + length
        messages += 1
    return messages == 4


def har_sizes_ok(old, new):
    old, new = json.loads(old), json.loads(new)
    for eo, en in zip(old["log"]["entries"], new["log"]["entries"]):
        for side in ("request", "response"):
            so, sn = eo[side], en[side]
            if side == "request":
                text_o = so.get("postData", {}).get("text")
                text_n = sn.get("postData", {}).get("text")
                lo = len(text_o.encode()) if text_o is not None else None
                ln = len(text_n.encode()) if text_n is not None else None
                if lo is not None and so["bodySize"] == lo and sn["bodySize"] != ln:
                    return False
            else:
                c_o, c_n = so["content"], sn["content"]
                dec = (lambda c: len(base64.b64decode(c["text"]))) if c_o.get("encoding") == "base64" \
                    else (lambda c: len(c["text"].encode()))
                lo, ln = dec(c_o), dec(c_n)
                if c_o["size"] == lo and c_n["size"] != ln:
                    return False
                if so["bodySize"] == lo and sn["bodySize"] != ln:
                    return False
                if so["bodySize"] != lo and sn["bodySize"] != so["bodySize"]:
                    return False
    return True


def check(old_path, new_path, secret_file, rsa_pub):
    old, new = open(old_path, "rb").read(), open(new_path, "rb").read()
    secret = open(secret_file, "rb").read()
    pub = open(rsa_pub, "rb").read()
    now = int(time.time())
    # Declared sizes are checked on their own (sizes_ok); everything else must be identical.
    sizes = re.compile(rb'("bodySize": |"size": |Content-Length: )-?\d+')
    mask = lambda t: sizes.sub(rb"\1<N>", normalise(t))
    report = {"pairs": [], "same_outside_tokens": mask(old) == mask(new)}
    if old_path.endswith(".har"):
        report["sizes_ok"] = har_sizes_ok(old, new)
    elif old_path.endswith(".http"):
        report["sizes_ok"] = http_sizes_ok(new)
    olds, news = all_tokens(old), all_tokens(new)
    report["counts"] = [len(olds), len(news)]
    for (o, nested), (t, _) in zip(olds, news):
        oh = jwt.get_unverified_header(o)
        oc = jwt.decode(o, options={"verify_signature": False})
        nh = jwt.get_unverified_header(t)
        entry = {"old": o, "old_alg": oh["alg"], "new_alg": nh["alg"], "nested": nested, "changed": o != t,
                 "old_kid": oh.get("kid"), "new_kid": nh.get("kid")}
        try:
            key = secret if nh["alg"].startswith("HS") else pub
            c = jwt.decode(t, key, algorithms=[nh["alg"]], options={"verify_aud": False})
            entry["ok"] = True
            entry["lifetime_kept"] = c["exp"] - c["iat"] == oc["exp"] - oc["iat"]
            entry["current"] = abs(c["iat"] - now) < 120 and c["exp"] > now
            entry["claims_kept"] = {k: v for k, v in c.items() if k not in ("iat", "exp")} == \
                {k: v for k, v in oc.items() if k not in ("iat", "exp")}
        except Exception as e:
            entry["ok"] = False
            entry["error"] = f"{type(e).__name__}: {e}"
        report["pairs"].append(entry)
    print(json.dumps(report))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
    else:
        check(*sys.argv[2:6])
