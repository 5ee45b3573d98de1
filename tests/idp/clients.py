"""Python OAuth clients against jwkit serve --idp, each calling as it does by default:

  clients.py ISSUER CLIENT_PEM

- pyoidc (oic): the code flow of client "web" (prompt=none, login_hint=alice), the token
  request with client_secret_basic (the ID token checked by pyoidc against the JWKS), then
  do_user_info_request() with its defaults: a POST with the access token in the form body
  (RFC 6750 §2.2).
- Authlib: client "signer" authenticating with private_key_jwt (PrivateKeyJWT without a fixed
  endpoint, Authlib's default: each assertion's aud is the URL it is sent to): a
  client_credentials token, introspected, revoked, introspected again.

Prints one JSON object with what each got.
"""
import json
import sys
import urllib.parse
import warnings

warnings.filterwarnings("ignore")

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey
from oic import rndstr
from oic.oic import Client
from oic.oic.message import AuthorizationResponse, RegistrationResponse
from oic.utils.authn.client import CLIENT_AUTHN_METHOD

issuer, client_pem = sys.argv[1:3]
redirect = "http://127.0.0.1:9/cb"
out = {}

# pyoidc
c = Client(client_authn_method=CLIENT_AUTHN_METHOD)
c.provider_config(issuer)
c.store_registration_info(
    RegistrationResponse(client_id="web", client_secret="web-secret", redirect_uris=[redirect])
)
c.redirect_uris = [redirect]
state, nonce = rndstr(), rndstr()
auth = c.construct_AuthorizationRequest(request_args={
    "client_id": "web",
    "response_type": "code",
    "scope": ["openid", "email"],
    "nonce": nonce,
    "redirect_uri": redirect,
    "state": state,
    "prompt": "none",
    "login_hint": "alice",
})
answer = requests.get(auth.request(c.authorization_endpoint), allow_redirects=False, timeout=10)
query = urllib.parse.urlparse(answer.headers["location"]).query
c.parse_response(AuthorizationResponse, info=query, sformat="urlencoded")
c.do_access_token_request(state=state, authn_method="client_secret_basic")
info = c.do_user_info_request(state=state)
out["pyoidc_userinfo"] = info.to_dict()

# Authlib, private_key_jwt everywhere
discovery = requests.get(issuer + "/.well-known/openid-configuration", timeout=10).json()
with open(client_pem) as f:
    key = ECKey.import_key(f.read())
# As Authlib's documentation shows it, but without a fixed token endpoint: then each
# assertion's aud is the endpoint it goes to.
session = OAuth2Session(
    "signer",
    key,
    token_endpoint_auth_method="private_key_jwt",
    revocation_endpoint_auth_method="private_key_jwt",
)
session.register_client_auth_method(PrivateKeyJWT(alg="ES256"))
token = session.fetch_token(discovery["token_endpoint"], grant_type="client_credentials")
introspected = session.introspect_token(
    discovery["introspection_endpoint"], token=token["access_token"]
)
out["authlib_introspect"] = {"status": introspected.status_code, "body": introspected.json()}
revoked = session.revoke_token(discovery["revocation_endpoint"], token=token["access_token"])
out["authlib_revoke"] = {"status": revoked.status_code, "body": revoked.text}
again = session.introspect_token(discovery["introspection_endpoint"], token=token["access_token"])
out["authlib_after_revoke"] = {"status": again.status_code, "body": again.json()}
print(json.dumps(out))
