// An encrypted ID token (OIDC Core §10.2) taken by panva's openid-client, as a relying party
// registered with id_token_encrypted_response_alg would:
//   node encrypted_id_token.mjs ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI USER KEY_FILE
// KEY_FILE is the client's private encryption JWK. The library decrypts the ID token
// (enableDecryptingResponses), then checks it as always (signature by the discovered JWKS,
// iss, aud, nonce, exp). Prints {"id_token", "claims"}; any failure throws (exit 1).
import * as client from "openid-client";
import { importJWK } from "jose";
import { readFileSync } from "node:fs";

const [issuer, clientId, clientSecret, redirectUri, user, keyFile] = process.argv.slice(2);
const jwk = JSON.parse(readFileSync(keyFile, "utf8"));
const config = await client.discovery(
  new URL(issuer),
  clientId,
  undefined,
  client.ClientSecretBasic(clientSecret),
  { execute: [client.allowInsecureRequests] },
);
const key = await importJWK(jwk, jwk.alg ?? "RSA-OAEP-256");
client.enableDecryptingResponses(config, ["A128CBC-HS256", "A256GCM"], { key, kid: jwk.kid });
const verifier = client.randomPKCECodeVerifier();
const nonce = client.randomNonce();
const state = client.randomState();
const authUrl = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri,
  scope: "openid profile email",
  code_challenge: await client.calculatePKCECodeChallenge(verifier),
  code_challenge_method: "S256",
  state,
  nonce,
  prompt: "none",
  login_hint: user,
});
const answer = await fetch(authUrl, { redirect: "manual" });
if (answer.status !== 302) {
  throw new Error(`authorize answered ${answer.status}: ${await answer.text()}`);
}
const tokens = await client.authorizationCodeGrant(config, new URL(answer.headers.get("location")), {
  pkceCodeVerifier: verifier,
  expectedState: state,
  expectedNonce: nonce,
  idTokenExpected: true,
});
process.stdout.write(JSON.stringify({ id_token: tokens.id_token, claims: tokens.claims() }));
