"""A service account getting tokens with a JWT bearer grant (RFC 7523 §2.1), as Authlib's
AssertionSession does it: it signs an assertion (iss the client, sub the account, aud the token
endpoint, exp, jti) with the client's private key and posts it, without client authentication.

    python service_account.py TOKEN_ENDPOINT CLIENT_ID SUBJECT PRIVATE_KEY_PEM ALG

Prints the token response as JSON; a refused grant exits 1 with the error on stderr.
"""
import json
import sys

from authlib.integrations.requests_client import AssertionSession

token_endpoint, client_id, subject, key_file, alg = sys.argv[1:6]
with open(key_file) as f:
    key = f.read()
session = AssertionSession(
    token_endpoint=token_endpoint,
    issuer=client_id,
    subject=subject,
    audience=token_endpoint,
    grant_type=AssertionSession.JWT_BEARER_GRANT_TYPE,
    key=key,
    header={"alg": alg},
)
token = session.refresh_token()
json.dump(dict(token), sys.stdout)
