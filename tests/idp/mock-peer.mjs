// The peer of benches/idp.sh: axa-group's oauth2-mock-server on 127.0.0.1:PORT with a key
// for ALG.   node mock-peer.mjs PORT ALG
import { OAuth2Server } from "oauth2-mock-server";

const [port, alg] = process.argv.slice(2);
const server = new OAuth2Server();
await server.issuer.keys.generate(alg);
await server.start(Number(port), "127.0.0.1");
console.log("ready", server.issuer.url);
