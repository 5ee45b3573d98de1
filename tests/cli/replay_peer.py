"""The other side of the replay tests: an app that verifies Bearer tokens with PyJWT's
PyJWKClient, a capture of requests whose tokens an unknown key signed, mitmproxy flows that
replay it, and an independent comparison of what the app received with the capture.

usage:
  replay_peer.py app PORT JWKS_URL LOG          serve until killed; one JSON line per request
  replay_peer.py capture FILE [LIFETIME AGE]    write the capture (JSON) with PyJWT's tokens
  replay_peer.py loop CAPTURE PORT SECONDS      send the capture to 127.0.0.1:PORT again and
                                                again for SECONDS; a JSON report of the answers
  replay_peer.py flows CAPTURE HOST PORT OUT    mitmproxy flows replaying the capture at HOST:PORT
  replay_peer.py forward CAPTURE HOST PORT PROXY_PORT   send the capture to HOST:PORT through an
                                                HTTP proxy (absolute-form, as HTTP_PROXY clients do)
  replay_peer.py echo PORT [CERT KEY]           answer every request with its head and body as
                                                JSON (over HTTPS with CERT and KEY)
  replay_peer.py goreplay CAPTURE PORT -- JWKIT ARGS   as GoReplay does: each request framed as
                                                a middleware message (gor), passed through the
                                                middleware (JWKIT resign --goreplay ARGS), and the
                                                answer sent to 127.0.0.1:PORT as raw HTTP
  replay_peer.py compare CAPTURE LOG            print a JSON report
  replay_peer.py logins FILE                    captured login responses (JSON), old secret's tokens
  replay_peer.py mock PORT FILE                 answer POST /login with them, in turn
  replay_peer.py login URL SECRET_FILE FILE     log in once per captured response, verify each
                                                access_token with the app's secret; a JSON report
"""
import base64
import gzip
import http.server
import json
import re
import sys
import threading
import time
import urllib.parse

TOKEN = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
# Headers a proxy may set or drop by the HTTP rules: lengths and hop-by-hop ones.
FRAMING = {"content-length", "connection", "keep-alive", "proxy-connection", "transfer-encoding"}


def decoded_body(headers, body):
    if dict((k.lower(), v) for k, v in headers).get("content-encoding", "").lower() == "gzip":
        return gzip.decompress(body)
    return body


def app(port, jwks_url, log):
    import jwt

    client = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=1)
    lock = threading.Lock()

    class App(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_any(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n)
            headers = self.headers.items()
            text = self.path + "\n" + "\n".join(f"{k}: {v}" for k, v in headers) + "\n"
            text += decoded_body(headers, body).decode("latin-1")
            tokens = TOKEN.findall(text)
            errors = []
            for t in tokens:
                try:
                    key = client.get_signing_key_from_jwt(t)
                    jwt.decode(t, key.key, algorithms=["ES256", "RS256"], options={"verify_aud": False})
                except Exception as e:
                    errors.append(f"{type(e).__name__}: {e}")
            ok = bool(tokens) and not errors
            record = {"method": self.command, "path": self.path, "headers": headers,
                      "body": base64.b64encode(body).decode(), "tokens": len(tokens),
                      "ok": ok, "errors": errors[:2]}
            with lock, open(log, "a") as f:
                f.write(json.dumps(record) + "\n")
            out = b'{"ok":true}' if ok else b'{"error":"invalid_token"}'
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PUT = do_DELETE = handle_any

        def log_message(self, *args):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), App).serve_forever()


def capture(out, lifetime=600, age=7200):
    """Requests as a capture holds them: expired RS256 tokens from an identity provider the app
    never trusted, in every place apps keep them."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    reqs = []
    for i in range(12):
        t = jwt.encode({"sub": f"user{i}", "iss": "https://old-idp.example", "iat": now - age,
                        "exp": now - age + lifetime, "scope": "orders"}, key, algorithm="RS256",
                       headers={"kid": "old-idp-1"})
        base = [["Host", "app.test"], ["User-Agent", "replay-test/1.0"], ["X-Seq", str(i)],
                ["Accept", "application/json"]]
        place = i % 6
        body = b""
        path = f"/api/orders/{i}"
        headers = list(base)
        if place == 0:
            headers.append(["Authorization", f"Bearer {t}"])
        elif place == 1:
            headers.append(["Cookie", f"theme=dark; session={t}; lang=en"])
        elif place == 2:
            path += f"?access_token={t}&page=2"
        elif place == 3:
            body = json.dumps({"access_token": t, "items": [1, 2, 3]}).encode()
            headers.append(["Content-Type", "application/json"])
        elif place == 4:
            body = urllib.parse.urlencode({"access_token": t, "note": "a b&c"}).encode()
            headers.append(["Content-Type", "application/x-www-form-urlencoded"])
        else:
            body = gzip.compress(json.dumps({"access_token": t, "n": i}).encode())
            headers.append(["Content-Type", "application/json"])
            headers.append(["Content-Encoding", "gzip"])
        if body:
            headers.append(["Content-Length", str(len(body))])
        reqs.append({"method": "POST" if body else "GET", "path": path, "headers": headers,
                     "body": base64.b64encode(body).decode()})
    with open(out, "w") as f:
        json.dump(reqs, f)


def flows(capture_path, host, port, out):
    from mitmproxy import connection, http, io

    reqs = json.load(open(capture_path))
    with open(out, "wb") as fh:
        w = io.FlowWriter(fh)
        for r in reqs:
            client = connection.Client(peername=("127.0.0.1", 0), sockname=("127.0.0.1", 0),
                                       timestamp_start=time.time())
            server = connection.Server(address=(host, int(port)))
            flow = http.HTTPFlow(client, server)
            flow.request = http.Request(
                host, int(port), r["method"].encode(), b"http", b"",
                r["path"].encode(), b"HTTP/1.1",
                http.Headers([(k.encode(), v.encode()) for k, v in r["headers"]]),
                base64.b64decode(r["body"]), None, time.time(), time.time())
            w.add(flow)


def forward(capture_path, host, port, proxy_port):
    import http.client

    for r in json.load(open(capture_path)):
        conn = http.client.HTTPConnection("127.0.0.1", int(proxy_port), timeout=30)
        conn.putrequest(r["method"], f"http://{host}:{port}{r['path']}", skip_host=True,
                        skip_accept_encoding=True)
        for k, v in r["headers"]:
            conn.putheader(k, v)
        conn.endheaders(base64.b64decode(r["body"]) or None)
        conn.getresponse().read()
        conn.close()


def logins(out):
    """Login responses as a mock IdP captured them: access tokens signed with the old secret,
    an ID token from the old IdP that must stay as it is, and other members; every other
    body gzip-encoded."""
    import jwt

    now = int(time.time())
    answers = []
    for i in range(8):
        access = jwt.encode({"sub": f"user{i}", "iat": now - 4000, "exp": now - 400,
                             "scope": "read write"}, "old-secret-of-the-capture", algorithm="HS256")
        ident = jwt.encode({"sub": f"user{i}", "aud": "app"}, "the-old-idps-own-key-0123456789",
                           algorithm="HS256")
        body = json.dumps({"access_token": access, "token_type": "Bearer", "expires_in": 600,
                           "refresh_token": f"opaque-refresh-{i}", "id_token": ident,
                           "scope": "read write"})
        answers.append({"body": body, "gzip": i % 2 == 1})
    with open(out, "w") as f:
        json.dump(answers, f)


def mock(port, path):
    answers = json.load(open(path))
    state = {"next": 0}
    lock = threading.Lock()

    class Mock(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                a = answers[state["next"] % len(answers)]
                state["next"] += 1
            body = a["body"].encode()
            if a["gzip"]:
                body = gzip.compress(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if a["gzip"]:
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Mock).serve_forever()


def login(url, secret_file, path):
    import jwt
    import requests

    secret = open(secret_file, "rb").read()
    answers = json.load(open(path))
    report = {"logins": 0, "verified": 0, "same_members": 0, "problems": []}
    for i, a in enumerate(answers):
        r = requests.post(url + "/login", data={"username": f"user{i}", "password": "pw"})
        got = r.json()  # requests undoes the gzip
        report["logins"] += 1
        want = json.loads(a["body"])
        try:
            claims = jwt.decode(got["access_token"], secret, algorithms=["HS256"])
            if claims["sub"] == f"user{i}" and claims["scope"] == "read write":
                report["verified"] += 1
        except Exception as e:
            report["problems"].append(f"login {i}: {type(e).__name__}: {e}")
        others = {k: v for k, v in got.items() if k != "access_token"}
        if others == {k: v for k, v in want.items() if k != "access_token"}:
            report["same_members"] += 1
        else:
            report["problems"].append(f"login {i}: other members changed")
        if r.headers.get("Content-Encoding") != ("gzip" if a["gzip"] else None):
            report["problems"].append(f"login {i}: Content-Encoding {r.headers.get('Content-Encoding')}")
    print(json.dumps(report))


def echo(port, cert=None, key=None):
    class Echo(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_any(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            out = json.dumps({"method": self.command, "path": self.path,
                              "headers": self.headers.items(),
                              "body": body.decode("latin-1")}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = handle_any

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Echo)
    if cert:
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


def loop(capture_path, port, seconds):
    import http.client

    reqs = json.load(open(capture_path))
    report = {"sent": 0, "accepted": 0, "refused": []}
    end = time.time() + seconds
    started = time.time()
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
    while time.time() < end:
        for r in reqs:
            conn.putrequest(r["method"], r["path"], skip_host=True, skip_accept_encoding=True)
            for k, v in r["headers"]:
                conn.putheader(k, v)
            conn.endheaders(base64.b64decode(r["body"]) or None)
            resp = conn.getresponse()
            resp.read()
            report["sent"] += 1
            if resp.status == 200:
                report["accepted"] += 1
            else:
                report["refused"].append(f"at {time.time() - started:.0f}s: {resp.status}")
        time.sleep(0.5)
    print(json.dumps(report))


def goreplay(capture_path, port, middleware):
    import socket
    import subprocess

    from gor.base import Gor, GorMessage, gor_hex_data

    proc = subprocess.Popen(middleware, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    parser = Gor(stderr=sys.stderr)
    for i, r in enumerate(json.load(open(capture_path))):
        head = f"{r['method']} {r['path']} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in r["headers"]) + "\r\n"
        raw = head.encode() + base64.b64decode(r["body"])
        meta = f"1 {i:040x} {time.time_ns()}"
        # gor frames text; the payload is bytes (a gzip body), so it is framed as gor_hex_data does.
        line = (meta.encode() + b"\n" + raw).hex() + "\n"
        proc.stdin.write(line.encode())
        proc.stdin.flush()
        answer = proc.stdout.readline().decode().strip()
        got = bytes.fromhex(answer)
        assert got.split(b"\n", 1)[0] == meta.encode(), "the middleware kept the header line"
        if not raw.endswith(b"\x00"):  # text payloads: gor itself parses the answer too
            try:
                msg = parser.parse_message(answer)
                assert msg is None or msg.id == f"{i:040x}"
            except UnicodeDecodeError:
                pass
        with socket.create_connection(("127.0.0.1", int(port))) as s:
            s.sendall(got.split(b"\n", 1)[1])
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
    proc.stdin.close()
    proc.wait()


def compare(capture_path, log):
    reqs = json.load(open(capture_path))
    got = [json.loads(l) for l in open(log)]
    by_seq = {}
    for g in got:
        seq = dict((k.lower(), v) for k, v in g["headers"]).get("x-seq")
        by_seq[seq] = g
    report = {"requests": len(reqs), "received": len(got), "accepted": 0, "refused": 0,
              "same": 0, "differences": []}
    for r in reqs:
        seq = dict((k.lower(), v) for k, v in r["headers"])["x-seq"]
        g = by_seq.get(seq)
        if g is None:
            report["differences"].append(f"request {seq} never arrived")
            continue
        report["accepted" if g["ok"] else "refused"] += 1
        mask = lambda s: TOKEN.sub("<token>", s)
        def head(hs):
            return [(k, mask(v)) for k, v in hs if k.lower() not in FRAMING]
        old_body = decoded_body(r["headers"], base64.b64decode(r["body"])).decode()
        new_body = decoded_body(g["headers"], base64.b64decode(g["body"])).decode()
        problems = []
        if g["method"] != r["method"]:
            problems.append("method")
        if mask(g["path"]) != mask(r["path"]) or g["path"] == r["path"] and TOKEN.search(r["path"]):
            problems.append("path")
        if head(g["headers"]) != head(r["headers"]):
            problems.append(f"headers {head(g['headers'])} != {head(r['headers'])}")
        if mask(new_body) != mask(old_body):
            problems.append("body")
        length = dict((k.lower(), v) for k, v in g["headers"]).get("content-length")
        if length is not None and int(length) != len(base64.b64decode(g["body"])):
            problems.append("Content-Length")
        if problems:
            report["differences"].append(f"request {seq}: {problems}")
        else:
            report["same"] += 1
    print(json.dumps(report))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "app":
        app(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif cmd == "capture":
        capture(sys.argv[2], *map(int, sys.argv[3:5]))
    elif cmd == "loop":
        loop(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif cmd == "flows":
        flows(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    elif cmd == "forward":
        forward(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    elif cmd == "logins":
        logins(sys.argv[2])
    elif cmd == "mock":
        mock(int(sys.argv[2]), sys.argv[3])
    elif cmd == "login":
        login(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "echo":
        echo(int(sys.argv[2]), *sys.argv[3:5])
    elif cmd == "goreplay":
        goreplay(sys.argv[2], sys.argv[3], sys.argv[sys.argv.index("--") + 1:])
    elif cmd == "compare":
        compare(sys.argv[2], sys.argv[3])
