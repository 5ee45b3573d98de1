// Today's OAuth client features with panva's openid-client against `jwkit serve --idp`, with
// nothing configured on the server beyond --idp:
//   node modern.mjs ISSUER USER
// 1. dynamic client registration (RFC 7591): a public client (none + PKCE);
// 2. PAR (RFC 9126) with code + PKCE, the tokens DPoP-bound (RFC 9449): the authorization
//    request pushed with a DPoP proof, the code redeemed with one, userinfo and a refresh with
//    proofs of the same key;
// 3. the device authorization grant (RFC 8628): the first line printed is the device
//    authorization response (the test approves its user_code as a user would), then polled;
// 4. a second issuer under a path (`ISSUER/tenant-b`), discovered, client credentials;
// 5. a client registered with its own key (jwks, private_key_jwt) sends its authorization
//    request as a signed request object (RFC 9101 JAR).
// The last line is one JSON object with every token, for the Rust test to verify with
// `jwkit verify-jwt --issuer` and to check the binding. Any failure throws: exit 1.
import * as client from "openid-client";
import { exportJWK, generateKeyPair } from "jose";

const [issuer, user] = process.argv.slice(2);
const options = { execute: [client.allowInsecureRequests] };
const out = {};

// 1. Registration.
const redirectUri = "http://127.0.0.1:9/callback";
const config = await client.dynamicClientRegistration(
  new URL(issuer),
  {
    client_name: "openid-client, registered dynamically",
    redirect_uris: [redirectUri],
    token_endpoint_auth_method: "none",
    grant_types: ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
    response_types: ["code"],
  },
  client.None(),
  options,
);
out.client_id = config.clientMetadata().client_id;

// 2. PAR + PKCE, DPoP-bound.
const keyPair = await client.randomDPoPKeyPair("ES256");
out.dpop_jwk = await crypto.subtle.exportKey("jwk", keyPair.publicKey);
const DPoP = client.getDPoPHandle(config, keyPair);
const verifier = client.randomPKCECodeVerifier();
const state = client.randomState();
const nonce = client.randomNonce();
const authUrl = await client.buildAuthorizationUrlWithPAR(
  config,
  {
    redirect_uri: redirectUri,
    scope: "openid profile offline_access",
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state,
    nonce,
    prompt: "none",
    login_hint: user,
  },
  { DPoP },
);
out.par_request_uri = authUrl.searchParams.get("request_uri");
const authResponse = await fetch(authUrl, { redirect: "manual" });
if (authResponse.status !== 302) {
  throw new Error(`authorize answered ${authResponse.status}: ${await authResponse.text()}`);
}
const tokens = await client.authorizationCodeGrant(
  config,
  new URL(authResponse.headers.get("location")),
  { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true },
  undefined,
  { DPoP },
);
out.code = {
  access_token: tokens.access_token,
  token_type: tokens.token_type,
  sub: tokens.claims().sub,
};
const userinfo = await client.fetchUserInfo(config, tokens.access_token, tokens.claims().sub, { DPoP });
out.userinfo = userinfo;
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP });
out.refreshed = { access_token: refreshed.access_token, token_type: refreshed.token_type };

// 3. Device grant.
const started = await client.initiateDeviceAuthorization(config, { scope: "openid" });
process.stdout.write(JSON.stringify(started) + "\n");
const device = await client.pollDeviceAuthorizationGrant(config, started, undefined, { DPoP });
out.device = { access_token: device.access_token, token_type: device.token_type, sub: device.claims().sub };

// 4. A second issuer under a path.
const second = await client.discovery(
  new URL(`${issuer}/tenant-b`),
  "service-b",
  undefined,
  client.ClientSecretPost("any secret in open mode"),
  options,
);
const cc = await client.clientCredentialsGrant(second, { scope: "api" });
out.second = { issuer: second.serverMetadata().issuer, access_token: cc.access_token };

// 5. A request object, signed by a key the client registered.
const { publicKey, privateKey } = await generateKeyPair("ES256");
const jarConfig = await client.dynamicClientRegistration(
  new URL(issuer),
  {
    client_name: "openid-client with its own key",
    redirect_uris: [redirectUri],
    token_endpoint_auth_method: "private_key_jwt",
    token_endpoint_auth_signing_alg: "ES256",
    request_object_signing_alg: "ES256",
    jwks: { keys: [{ ...(await exportJWK(publicKey)), alg: "ES256", use: "sig" }] },
    grant_types: ["authorization_code"],
    response_types: ["code"],
  },
  client.PrivateKeyJwt(privateKey),
  options,
);
const jarVerifier = client.randomPKCECodeVerifier();
const jarState = client.randomState();
const jarUrl = await client.buildAuthorizationUrlWithJAR(
  jarConfig,
  {
    redirect_uri: redirectUri,
    scope: "openid",
    code_challenge: await client.calculatePKCECodeChallenge(jarVerifier),
    code_challenge_method: "S256",
    state: jarState,
    prompt: "none",
    login_hint: user,
  },
  privateKey,
);
const jarAnswer = await fetch(jarUrl, { redirect: "manual" });
if (jarAnswer.status !== 302) {
  throw new Error(`authorize (JAR) answered ${jarAnswer.status}: ${await jarAnswer.text()}`);
}
const jarTokens = await client.authorizationCodeGrant(
  jarConfig,
  new URL(jarAnswer.headers.get("location")),
  { pkceCodeVerifier: jarVerifier, expectedState: jarState, idTokenExpected: true },
);
out.jar = {
  client_id: jarConfig.clientMetadata().client_id,
  request_in_url: jarUrl.searchParams.has("request"),
  url_params: [...jarUrl.searchParams.keys()].sort(),
  access_token: jarTokens.access_token,
};
process.stdout.write(JSON.stringify(out) + "\n");
