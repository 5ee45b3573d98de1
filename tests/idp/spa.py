"""A single-page app on another origin logs in to jwkit serve --idp with oidc-client-ts:

  spa.py ISSUER CLIENT_ID APP_PORT USER

This script serves the app on http://127.0.0.1:APP_PORT (another origin than the issuer's):
an index page and a callback page that load oidc-client-ts's browser build from
node_modules. Headless Chromium, driven by Selenium, opens the app, which calls
signinRedirect() (discovery by fetch across origins, the code flow with PKCE); the user name is
typed into jwkit's login page; the callback page completes the sign-in (the token request by
fetch across origins), reads /userinfo (loadUserInfo: a preflighted fetch with a bearer token)
and renews with the refresh token (signinSilent), then shows what it got as JSON. Prints that
JSON, with the browser's console errors.
"""
import http.server
import json
import os
import sys
import threading

import chromium
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

issuer, client_id, port, user = sys.argv[1:5]
here = os.path.dirname(os.path.abspath(__file__))
library = os.path.join(here, "node_modules", "oidc-client-ts", "dist", "browser", "oidc-client-ts.min.js")
app = f"http://127.0.0.1:{port}"

SETTINGS = json.dumps({
    "authority": issuer,
    "client_id": client_id,
    "redirect_uri": f"{app}/callback.html",
    "response_type": "code",
    "scope": "openid email offline_access",
    "loadUserInfo": True,
    "automaticSilentRenew": False,
})

INDEX = f"""<!doctype html><html><head><meta charset="utf-8"><title>app</title>
<script src="/oidc-client-ts.min.js"></script></head><body><p id="status">starting</p>
<script>
const mgr = new oidc.UserManager({SETTINGS});
mgr.signinRedirect({{ state: {{ from: "index" }} }}).catch(e => {{
  document.getElementById("status").textContent = "error: " + e;
}});
</script></body></html>"""

CALLBACK = f"""<!doctype html><html><head><meta charset="utf-8"><title>callback</title>
<script src="/oidc-client-ts.min.js"></script></head><body><pre id="result"></pre>
<script>
const mgr = new oidc.UserManager({SETTINGS});
(async () => {{
  const out = {{}};
  try {{
    const user = await mgr.signinRedirectCallback();
    out.first = {{ access_token: user.access_token, refresh_token: user.refresh_token,
                  id_token: user.id_token, profile: user.profile, state: user.state }};
    const renewed = await mgr.signinSilent();
    out.renewed = {{ access_token: renewed.access_token, refresh_token: renewed.refresh_token,
                    profile: renewed.profile }};
  }} catch (e) {{
    out.error = String(e && (e.message || e));
  }}
  document.getElementById("result").textContent = JSON.stringify(out);
}})();
</script></body></html>"""


class App(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/oidc-client-ts.min.js":
            with open(library, "rb") as f:
                body, kind = f.read(), "text/javascript"
        elif path == "/callback.html":
            body, kind = CALLBACK.encode(), "text/html"
        elif path == "/favicon.ico":
            self.send_response(204)
            self.end_headers()
            return
        elif path in ("/", "/index.html"):
            body, kind = INDEX.encode(), "text/html"
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), App)
threading.Thread(target=server.serve_forever, daemon=True).start()

driver = chromium.start(console_log=True)
try:
    driver.get(app + "/")
    WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.ID, "username"))
    login_title = driver.title
    driver.find_element(By.ID, "username").send_keys(user)
    driver.find_element(By.ID, "login").click()
    WebDriverWait(driver, 30).until(
        lambda d: d.find_elements(By.ID, "result") and d.find_element(By.ID, "result").text
    )
    result = json.loads(driver.find_element(By.ID, "result").text)
    # Errors of the page's scripts and fetches (a CORS refusal shows here); a missing favicon
    # of the IdP's pages is not one.
    console = [
        e["message"] for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]
    ]
finally:
    driver.quit()
    server.shutdown()
result["login_title"] = login_title
result["console_errors"] = console
print(json.dumps(result))
