// The device authorization grant (RFC 8628) with panva's openid-client, as a TV app would:
//   node device.mjs ISSUER CLIENT_ID
// Prints the device authorization response as one JSON line at once (the test approves its
// user_code as a user would), then polls until the tokens come and prints them as a second
// line. Any failure throws: exit 1 with the error on stderr.
import * as client from "openid-client";

const [issuer, clientId] = process.argv.slice(2);
const config = await client.discovery(new URL(issuer), clientId, undefined, client.None(), {
  execute: [client.allowInsecureRequests],
});
const started = await client.initiateDeviceAuthorization(config, { scope: "openid offline_access" });
process.stdout.write(JSON.stringify(started) + "\n");
const tokens = await client.pollDeviceAuthorizationGrant(config, started);
process.stdout.write(
  JSON.stringify({ access_token: tokens.access_token, id_token: tokens.id_token, claims: tokens.claims(), refresh_token: tokens.refresh_token }) + "\n",
);
