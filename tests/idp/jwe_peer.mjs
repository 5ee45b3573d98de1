// JWE with panva's jose, an independent implementation, for tests/cli/jwe.rs. The same jobs
// as tests/cli/jwe_peer.py (a JSON array on stdin, a JSON array of results on stdout):
// "open" decrypts and verifies the inner JWS; "nest" signs (ES256) then encrypts (cty JWT);
// "seal" encrypts the claims unsigned.
import * as jose from 'jose';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const jobs = JSON.parse(Buffer.concat(chunks).toString('utf8'));
const te = new TextEncoder();
const td = new TextDecoder();

async function run(job) {
  switch (job.op) {
    case 'open': {
      const key = await jose.importJWK(job.key, jobAlg(job.token));
      const { plaintext } = await jose.compactDecrypt(job.token, key);
      const sig = await jose.importJWK(job.sig, 'ES256');
      const { payload } = await jose.compactVerify(td.decode(plaintext), sig);
      return { ok: true, claims: JSON.parse(td.decode(payload)) };
    }
    case 'nest':
    case 'seal': {
      let payload = JSON.stringify(job.claims);
      const header = { alg: job.alg, enc: job.enc };
      if (job.op === 'nest') {
        const sig = await jose.importJWK(job.sig, 'ES256');
        payload = await new jose.CompactSign(te.encode(payload))
          .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
          .sign(sig);
        header.cty = 'JWT';
      }
      const key = await jose.importJWK(job.key, job.alg);
      const token = await new jose.CompactEncrypt(te.encode(payload))
        .setProtectedHeader(header)
        .encrypt(key);
      return { ok: true, token };
    }
    default:
      throw new Error(`unknown op ${job.op}`);
  }
}

function jobAlg(token) {
  return JSON.parse(td.decode(jose.base64url.decode(token.split('.')[0]))).alg;
}

const results = [];
for (const job of jobs) {
  try {
    results.push(await run(job));
  } catch (e) {
    results.push({ ok: false, error: `${e.name}: ${e.message}` });
  }
}
process.stdout.write(JSON.stringify(results));
