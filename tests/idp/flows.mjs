// Drives jwkit serve --idp with panva's openid-client, as an application would:
//   node flows.mjs ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI USER
// discovery; client_credentials; authorization code with PKCE (the authorization request made
// headless with prompt=none and login_hint, its redirect read without following it); the ID
// token checked by the library (signature by the discovered JWKS, iss, aud, nonce, exp);
// PAR (RFC 9126); refresh; userinfo; introspection; token exchange (RFC 8693); revocation; every access
// token verified with panva's jose as a resource server would.
// Prints one JSON object with every token and result, for the Rust test to cross-check with
// `jwkit verify-jwt --issuer`. Any failure throws: exit 1 with the error on stderr.
import * as client from "openid-client";
import { createRemoteJWKSet, jwtVerify } from "jose";

const [issuer, clientId, clientSecret, redirectUri, user] = process.argv.slice(2);
const out = {};

const config = await client.discovery(
  new URL(issuer),
  clientId,
  undefined,
  client.ClientSecretBasic(clientSecret),
  { execute: [client.allowInsecureRequests] },
);
out.discovered = config.serverMetadata().token_endpoint;

// client_credentials
const cc = await client.clientCredentialsGrant(config, { scope: "api:read" });
out.client_credentials = { access_token: cc.access_token, scope: cc.scope, expires_in: cc.expires_in };

// authorization code with PKCE
const verifier = client.randomPKCECodeVerifier();
const challenge = await client.calculatePKCECodeChallenge(verifier);
const state = client.randomState();
const nonce = client.randomNonce();
const authUrl = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri,
  scope: "openid profile email offline_access",
  code_challenge: challenge,
  code_challenge_method: "S256",
  state,
  nonce,
  prompt: "none",
  login_hint: user,
});
const authResponse = await fetch(authUrl, { redirect: "manual" });
if (authResponse.status !== 302) {
  throw new Error(`authorize answered ${authResponse.status}: ${await authResponse.text()}`);
}
const callback = new URL(authResponse.headers.get("location"));
const tokens = await client.authorizationCodeGrant(config, callback, {
  pkceCodeVerifier: verifier,
  expectedState: state,
  expectedNonce: nonce,
  idTokenExpected: true,
});
const claims = tokens.claims();
out.authorization_code = {
  access_token: tokens.access_token,
  id_token: tokens.id_token,
  refresh_token: tokens.refresh_token,
  id_claims: claims,
};

// PAR (RFC 9126): the same flow, its parameters pushed to the server first; the
// authorization URL carries only client_id and request_uri
const parVerifier = client.randomPKCECodeVerifier();
const parUrl = await client.buildAuthorizationUrlWithPAR(config, {
  redirect_uri: redirectUri,
  scope: "openid email",
  code_challenge: await client.calculatePKCECodeChallenge(parVerifier),
  code_challenge_method: "S256",
  state: "par-state",
  prompt: "none",
  login_hint: user,
});
const parAnswer = await fetch(parUrl, { redirect: "manual" });
if (parAnswer.status !== 302) {
  throw new Error(`authorize (PAR) answered ${parAnswer.status}: ${await parAnswer.text()}`);
}
const parTokens = await client.authorizationCodeGrant(
  config,
  new URL(parAnswer.headers.get("location")),
  { pkceCodeVerifier: parVerifier, expectedState: "par-state", idTokenExpected: true },
);
out.par = {
  url_params: [...parUrl.searchParams.keys()].sort(),
  access_token: parTokens.access_token,
  sub: parTokens.claims().sub,
};

// userinfo (the library checks sub against the ID token's)
const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
out.userinfo = info;

// refresh: a new access token and a new refresh token; the old refresh token is spent (its
// reuse is tried last: a reuse revokes every token of the family)
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
out.refresh = {
  access_token: refreshed.access_token,
  refresh_token: refreshed.refresh_token,
  id_token: refreshed.id_token ?? null,
};

// introspection
out.introspection = await client.tokenIntrospection(config, refreshed.access_token);

// token exchange (RFC 8693): the user's access token for one for another audience
const exchanged = await client.genericGrantRequest(
  config,
  "urn:ietf:params:oauth:grant-type:token-exchange",
  {
    subject_token: refreshed.access_token,
    subject_token_type: "urn:ietf:params:oauth:token-type:access_token",
    audience: "https://api.example.com",
  },
);
out.token_exchange = {
  access_token: exchanged.access_token,
  issued_token_type: exchanged.issued_token_type,
};

// revocation: the refresh token, then introspection says it is no longer active
await client.tokenRevocation(config, refreshed.refresh_token);
out.revoked = await client.tokenIntrospection(config, refreshed.refresh_token);

// the first refresh token, spent by the refresh above, used again: refused (and, RFC 9700
// §4.14.2, its whole family revoked, as the revocation above did already)
try {
  await client.refreshTokenGrant(config, tokens.refresh_token);
  out.refresh.reuse = "accepted";
} catch (e) {
  out.refresh.reuse = e.error ?? e.code ?? String(e);
}

// Every access token verified as a resource server would, with panva's jose: signature by
// the discovered key set, iss, aud, exp, and typ at+jwt (RFC 9068).
const jwks = createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri));
out.jose = {};
for (const [name, token, audience] of [
  ["client_credentials", cc.access_token, clientId],
  ["authorization_code", tokens.access_token, clientId],
  ["refresh", refreshed.access_token, clientId],
  ["token_exchange", exchanged.access_token, "https://api.example.com"],
]) {
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer: config.serverMetadata().issuer,
    audience,
    typ: "at+jwt",
  });
  out.jose[name] = { sub: payload.sub, typ: protectedHeader.typ };
}

process.stdout.write(JSON.stringify(out) + "\n");
