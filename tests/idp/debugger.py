"""The debugger page of jwkit serve --idp in a real browser, as a tester uses it:

  debugger.py ISSUER USER SCREENSHOT.png

Headless Chromium (Selenium) opens ISSUER/debugger, keeps the form's defaults (client
"debugger", scope openid profile email offline_access), sends the authorization request, logs
in on the login page as USER with an extra claim, and lands on the debugger's callback page,
which shows the callback, the token response and the decoded tokens. A screenshot of that page
is saved. Prints one JSON object: the page titles, the token response and the decoded access
token claims as the page shows them.
"""
import json
import sys

import chromium
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

issuer, user, screenshot = sys.argv[1:4]
driver = chromium.start()
out = {}
try:
    driver.get(issuer.rstrip("/") + "/debugger")
    out["form_title"] = driver.title
    driver.find_element(By.ID, "start").click()
    WebDriverWait(driver, 15).until(lambda d: d.find_elements(By.ID, "username"))
    out["login_title"] = driver.title
    driver.find_element(By.ID, "username").send_keys(user)
    driver.find_element(By.ID, "claims").send_keys('{"team": "debuggers"}')
    driver.find_element(By.ID, "login").click()
    WebDriverWait(driver, 15).until(lambda d: d.find_elements(By.ID, "token-response"))
    out["tokens_title"] = driver.title
    out["url"] = driver.current_url
    out["token_response"] = json.loads(driver.find_element(By.ID, "token-response").text)
    claims = driver.find_elements(By.CSS_SELECTOR, "pre.claims")
    out["decoded_claims"] = [json.loads(c.text) for c in claims]
    out["sections"] = [h.get_attribute("id") for h in driver.find_elements(By.TAG_NAME, "h2")]
    driver.save_screenshot(screenshot)
finally:
    driver.quit()
print(json.dumps(out))
