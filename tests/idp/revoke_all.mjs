// simple-oauth2 (npm) against jwkit serve --idp: the code of client "web" (prompt=none,
// login_hint=alice), redeemed with getToken(), then accessToken.revokeAll(), which revokes the
// access token and the refresh token and parses each answer as JSON (an empty 200 made it
// throw). Then introspection says both are inactive.
//   node revoke_all.mjs ISSUER
import { AuthorizationCode } from "simple-oauth2";

const issuer = process.argv[2];
const redirect = "http://127.0.0.1:9/cb";
const config = {
  client: { id: "web", secret: "web-secret" },
  auth: {
    tokenHost: issuer,
    tokenPath: "/token",
    revokePath: "/revoke",
    authorizePath: "/authorize",
  },
};
const client = new AuthorizationCode(config);
const url = client.authorizeURL({
  redirect_uri: redirect,
  scope: "openid offline_access",
  state: "s1",
}) + "&prompt=none&login_hint=alice";
const answer = await fetch(url, { redirect: "manual" });
const code = new URL(answer.headers.get("location")).searchParams.get("code");
const token = await client.getToken({ code, redirect_uri: redirect });
const out = { had_refresh: Boolean(token.token.refresh_token) };
await token.revokeAll();
out.revoked = true;
const introspect = async (t) => {
  const r = await fetch(`${issuer}/introspect`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: "Basic " + Buffer.from("web:web-secret").toString("base64"),
    },
    body: new URLSearchParams({ token: t }),
  });
  return (await r.json()).active;
};
out.access_active = await introspect(token.token.access_token);
out.refresh_active = await introspect(token.token.refresh_token);
console.log(JSON.stringify(out));
