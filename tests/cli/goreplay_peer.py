"""Drives `jwkit resign --goreplay` as GoReplay's middleware pipe does, with the `gor` package
(PyPI) as an independent implementation of the protocol: each message is framed with
gor_hex_data, written, and its answer read before the next is sent; answers are parsed with
Gor.parse_message. Old tokens are signed by PyJWT (HS256, expired); new ones must verify
under the new public key with PyJWT.

usage: goreplay_peer.py JWKIT NEW_PUBLIC_PEM COUNT -- JWKIT_ARGS...
Prints one JSON report on stdout.
"""
import json
import re
import subprocess
import sys
import time

import jwt
from gor.base import Gor, GorMessage, gor_hex_data

jwkit, new_public, count = sys.argv[1], open(sys.argv[2]).read(), int(sys.argv[3])
extra = sys.argv[sys.argv.index("--") + 1:]
TOKEN = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
SECRET = "old-app-secret"
now = int(time.time())
# A pool of sessions: tokens repeat, as in real traffic.
pool = [
    jwt.encode({"sub": f"user{i}", "iat": now - 3600, "exp": now - 600, "scope": "read"},
               SECRET, algorithm="HS256", headers={"kid": "old"})
    for i in range(50)
]


def message(i):
    t = pool[i % len(pool)]
    kind = i % 7
    if kind == 5:
        return "2", f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{{\"ok\":true}}"
    if kind == 6:
        return "3", f"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"
    if kind == 0:
        return "1", f"GET /api/items/{i}?page=2 HTTP/1.1\r\nHost: app.test\r\nAuthorization: Bearer {t}\r\nAccept: */*\r\n\r\n"
    if kind == 1:
        body = json.dumps({"access_token": t, "n": i})
        return "1", f"POST /api/orders HTTP/1.1\r\nHost: app.test\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    if kind == 2:
        body = f"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={t}&x={i}"
        return "1", f"POST /token HTTP/1.1\r\nHost: app.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    if kind == 3:
        return "1", f"GET /me HTTP/1.1\r\nHost: app.test\r\nCookie: theme=dark; session={t}\r\n\r\n"
    return "1", f"GET /cb?access_token={t}&state={i} HTTP/1.1\r\nHost: app.test\r\n\r\n"


proc = subprocess.Popen([jwkit, "resign", "--goreplay", *extra], stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
parser = Gor(stderr=sys.stderr)
report = {"messages": 0, "requests": 0, "tokens": 0, "problems": [], "consistent": True}
seen = {}
started = time.time()
for i in range(count):
    kind, http = message(i)
    meta = f"{kind} {i:040x} {1439818823587396305 + i}" + (" 2782013" if kind != "1" else "")
    line = gor_hex_data(GorMessage(f"{i:040x}", kind, meta.split(" "), meta, http))
    proc.stdin.write(line.encode())
    proc.stdin.flush()
    answer = proc.stdout.readline().decode()
    report["messages"] += 1
    got = parser.parse_message(answer)
    problem = None
    if got is None:
        problem = "the answer does not parse"
    elif got.raw_meta != meta or got.id != f"{i:040x}" or got.type != kind:
        problem = f"framing changed: {got.raw_meta!r}"
    elif kind != "1":
        if answer != line:
            problem = "a response message changed"
    else:
        report["requests"] += 1
        old_tokens = TOKEN.findall(http)
        new_tokens = TOKEN.findall(got.http)
        if len(old_tokens) != len(new_tokens) or not old_tokens:
            problem = "tokens missing"
        else:
            for old, new in zip(old_tokens, new_tokens):
                report["tokens"] += 1
                try:
                    claims = jwt.decode(new, new_public, algorithms=["ES256"])
                    if claims["sub"] != jwt.decode(old, options={"verify_signature": False})["sub"]:
                        problem = "claims changed"
                except Exception as e:
                    problem = f"PyJWT: {type(e).__name__}: {e}"
                if seen.setdefault(old, new) != new:
                    report["consistent"] = False
            if TOKEN.sub("T", http).split("Content-Length:")[0] != TOKEN.sub("T", got.http).split("Content-Length:")[0]:
                problem = "bytes outside tokens changed"
            head, _, body = got.http.partition("\r\n\r\n")
            m = re.search(r"Content-Length: (\d+)", head)
            if m and int(m.group(1)) != len(body.encode()):
                problem = "Content-Length is wrong"
            if TOKEN.sub("T", body) != TOKEN.sub("T", http.partition("\r\n\r\n")[2]):
                problem = "the body changed outside tokens"
    if problem:
        report["problems"].append(f"message {i}: {problem}")
        if len(report["problems"]) > 20:
            break
report["seconds"] = round(time.time() - started, 2)
proc.stdin.close()
report["exit"] = proc.wait()
report["stderr"] = proc.stderr.read().decode()[-2000:]
report["stdout_rest"] = proc.stdout.read().decode()
print(json.dumps(report))
