"""Logs in to jwkit serve --idp through its login page in a real browser, as a tester would:

  browser.py ISSUER CLIENT_ID CLIENT_SECRET USER CLAIMS_JSON SCREENSHOT.png CALLBACK_PORT

Authlib (the OAuth client) builds the authorization URL with PKCE; headless Chromium, driven
by Selenium, opens it, types the user name and the claims JSON into the form and submits; the
redirect lands on this script's own HTTP server on 127.0.0.1, which takes the code; Authlib
exchanges it, and the ID token is verified with Authlib's JOSE against the discovered JWKS.
A screenshot of the filled-in page is saved. Prints one JSON object with the ID token's claims,
the tokens and the page's title.
"""
import http.server
import json
import sys
import threading
import urllib.parse
import warnings

# Authlib 1.x says its JOSE module moves to joserfc; it still verifies as before.
warnings.filterwarnings("ignore", message=".*authlib.jose module is deprecated.*")

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.common.security import generate_token
import chromium
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

issuer, client_id, client_secret, user, claims_json, screenshot, port = sys.argv[1:8]
discovery = requests.get(issuer.rstrip("/") + "/.well-known/openid-configuration", timeout=10).json()

received = {}


class Callback(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/callback"):
            received["url"] = self.path
        body = b"<!doctype html><title>callback</title><p id=done>signed in</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", int(port)), Callback)
threading.Thread(target=server.serve_forever, daemon=True).start()
redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/callback"

session = OAuth2Session(
    client_id,
    client_secret,
    scope="openid profile email",
    redirect_uri=redirect_uri,
    code_challenge_method="S256",
    token_endpoint_auth_method="client_secret_post",
)
verifier = generate_token(48)
nonce = generate_token(20)
url, state = session.create_authorization_url(
    discovery["authorization_endpoint"], code_verifier=verifier, nonce=nonce
)

driver = chromium.start()
try:
    driver.get(url)
    title = driver.title
    driver.find_element(By.ID, "username").send_keys(user)
    driver.find_element(By.ID, "claims").send_keys(claims_json)
    driver.save_screenshot(screenshot)
    driver.find_element(By.ID, "login").click()
    WebDriverWait(driver, 15).until(lambda d: "url" in received)
    # The code is redeemed at once, as an app does, before the browser is taken down (which
    # can take long on a loaded machine, and the code lives a minute).
    callback = urllib.parse.urlparse(received["url"])
    query = dict(urllib.parse.parse_qsl(callback.query))
    assert query.get("state") == state, f"state {query.get('state')!r} is not {state!r}"
    token = session.fetch_token(
        discovery["token_endpoint"],
        authorization_response=redirect_uri + "?" + callback.query,
        code_verifier=verifier,
    )
finally:
    driver.quit()
    server.shutdown()

jwks = JsonWebKey.import_key_set(requests.get(discovery["jwks_uri"], timeout=10).json())
claims = jwt.decode(
    token["id_token"],
    jwks,
    claims_options={
        "iss": {"essential": True, "value": discovery["issuer"]},
        "aud": {"essential": True, "value": client_id},
        "nonce": {"essential": True, "value": nonce},
    },
)
claims.validate()
print(json.dumps({
    "title": title,
    "id_claims": dict(claims),
    "access_token": token["access_token"],
    "id_token": token["id_token"],
}))
