// The MCP TypeScript SDK's client-side OAuth against `jwkit serve --idp`, as an MCP client
// (an IDE, an agent) meets a protected MCP server:
//   node mcp.mjs ISSUER USER
// An MCP server (the SDK's McpServer over Streamable HTTP, on 127.0.0.1) answers 401 with
// its protected resource metadata (RFC 9728) naming ISSUER; its access check verifies the
// Bearer token with panva's jose against the issuer's key set, aud being the server's URL.
// The SDK's client then discovers the metadata, registers itself (RFC 7591), sends the user
// to the authorization endpoint with PKCE and a resource indicator (RFC 8707) (the "browser"
// here adds prompt=none and login_hint: the user has a session), redeems the code, and calls
// a tool. Prints one JSON object: the client id, the access token, the tool's answer.
import http from "node:http";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const [issuer, user] = process.argv.slice(2);
const discovered = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
const jwks = createRemoteJWKSet(new URL(discovered.jwks_uri));

// The MCP server.
const server = http.createServer();
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const origin = `http://127.0.0.1:${server.address().port}`;
const resource = `${origin}/mcp`;
const prmUrl = `${origin}/.well-known/oauth-protected-resource/mcp`;
let seen = null;
server.on("request", async (req, res) => {
  if (req.url === "/.well-known/oauth-protected-resource/mcp" || req.url === "/.well-known/oauth-protected-resource") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ resource, authorization_servers: [issuer], bearer_methods_supported: ["header"] }));
    return;
  }
  const token = (req.headers.authorization || "").replace(/^Bearer /i, "");
  try {
    const { payload } = await jwtVerify(token, jwks, { issuer, audience: resource });
    seen = payload;
  } catch {
    res.writeHead(401, { "www-authenticate": `Bearer resource_metadata="${prmUrl}"` });
    res.end();
    return;
  }
  const mcp = new McpServer({ name: "jwkit-test", version: "1.0.0" });
  mcp.tool("whoami", async () => ({ content: [{ type: "text", text: `hello ${seen.sub}` }] }));
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
  res.on("close", () => transport.close());
  await mcp.connect(transport);
  let body = "";
  for await (const chunk of req) body += chunk;
  await transport.handleRequest(req, res, body ? JSON.parse(body) : undefined);
});

// The client's OAuth state, kept in memory.
let clientInformation;
let tokens;
let verifier;
let authorizationUrl;
const provider = {
  get redirectUrl() {
    return "http://127.0.0.1:9/mcp-callback";
  },
  get clientMetadata() {
    return {
      client_name: "MCP SDK test client",
      redirect_uris: ["http://127.0.0.1:9/mcp-callback"],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  },
  clientInformation: () => clientInformation,
  saveClientInformation: (info) => {
    clientInformation = info;
  },
  tokens: () => tokens,
  saveTokens: (t) => {
    tokens = t;
  },
  redirectToAuthorization: (url) => {
    authorizationUrl = url;
  },
  saveCodeVerifier: (v) => {
    verifier = v;
  },
  codeVerifier: () => verifier,
};

const client = new Client({ name: "jwkit-mcp-test", version: "1.0.0" });
let transport = new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider });
try {
  await client.connect(transport);
  throw new Error("the MCP server let an unauthenticated client in");
} catch (e) {
  if (!(e instanceof UnauthorizedError)) throw e;
}
if (!authorizationUrl) throw new Error("the SDK did not start an authorization");
const out = {
  client_id: clientInformation.client_id,
  resource_param: authorizationUrl.searchParams.get("resource"),
  code_challenge_method: authorizationUrl.searchParams.get("code_challenge_method"),
};
// The user's browser: already logged in at the IdP.
authorizationUrl.searchParams.set("prompt", "none");
authorizationUrl.searchParams.set("login_hint", user);
const answer = await fetch(authorizationUrl, { redirect: "manual" });
if (answer.status !== 302) throw new Error(`authorize answered ${answer.status}: ${await answer.text()}`);
const code = new URL(answer.headers.get("location")).searchParams.get("code");
await transport.finishAuth(code);
transport = new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider });
await client.connect(transport);
const result = await client.callTool({ name: "whoami", arguments: {} });
out.tool = result.content[0].text;
out.access_token = tokens.access_token;
await client.close();
server.close();
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(0);
