
use builtin;
use str;

set edit:completion:arg-completer[jwkit] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'jwkit'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'jwkit'= {
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand -v 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand --verbose 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand generate-key 'Generate a key pair or HMAC secret as PEM, JWK or JWKS'
            cand genkey 'Generate a key pair or HMAC secret as PEM, JWK or JWKS'
            cand generate-jwt 'Sign a JWT: claims from flags, JSON or stdin; the compact token on stdout'
            cand verify-jwt 'Verify a token: signature, algorithm and claims, against a key, a key set, a JWKS URL, an OIDC issuer or a jwkit server'
            cand resign 'Give a token a new signature from a new key, claims kept byte for byte unless asked otherwise; with --scan, every token in any text (HAR files, logs, HTTP dumps)'
            cand proxy 'Re-sign tokens live: an HTTP proxy that re-signs every token in the requests and responses passing through it, by the rules of `resign --scan`'
            cand decode 'Show a token''s header and claims, with readable times. Never verifies the signature'
            cand key 'Inspect, convert and publish keys'
            cand serve 'Run a JWKS server: publish keys, take authenticated uploads, issue test tokens'
            cand completions 'Print a shell completion script to stdout'
            cand man 'Print the man page, or write one page per command into a directory'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'jwkit;generate-key'= {
            cand -t 'Key type'
            cand --type 'Key type'
            cand --bits 'RSA modulus size (2048, 3072, 4096; default 2048), or HMAC secret size in bits (default: the hash size of --alg, 256 for HS256)'
            cand --curve 'EC curve (default P-256)'
            cand --alg 'Algorithm to record in the JWK, restricting the key to it (default: none recorded; the key type''s default RS256, ES256, ES384, ES512, ES256K, EdDSA or HS256 applies). A JWE key-management algorithm (RSA-OAEP-256, ECDH-ES+A256KW, A128KW, dir, ...) makes an encryption key (use: enc); for --type hmac it sets the key''s size'
            cand --kid 'Key ID (default: the RFC 7638 SHA-256 thumbprint)'
            cand --use 'Public key use recorded in the JWK'
            cand -f 'Output format of the private key (and of --public-out)'
            cand --format 'Output format of the private key (and of --public-out)'
            cand -o 'Write the private key to FILE (mode 0600) instead of stdout'
            cand --out 'Write the private key to FILE (mode 0600) instead of stdout'
            cand --public-out 'Also write the public key to FILE'
            cand --upload 'Upload the public key to this jwkit server ({URL}/jwks) and print the kid; with no URL, $JWKIT_SERVER'
            cand --upload-token-file 'The upload token (else $JWKIT_UPLOAD_TOKEN)'
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand --save 'Keep the key in the key store ($JWKIT_HOME/keys) and print its kid'
            cand --force 'Overwrite existing files (and a stored key with the same kid)'
            cand --insecure 'Allow HMAC secrets shorter than the hash size (warns). RSA keys under 2048 bits are never generated: jwkit refuses to load them'
            cand -v 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand --verbose 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'jwkit;genkey'= {
            cand -t 'Key type'
            cand --type 'Key type'
            cand --bits 'RSA modulus size (2048, 3072, 4096; default 2048), or HMAC secret size in bits (default: the hash size of --alg, 256 for HS256)'
            cand --curve 'EC curve (default P-256)'
            cand --alg 'Algorithm to record in the JWK, restricting the key to it (default: none recorded; the key type''s default RS256, ES256, ES384, ES512, ES256K, EdDSA or HS256 applies). A JWE key-management algorithm (RSA-OAEP-256, ECDH-ES+A256KW, A128KW, dir, ...) makes an encryption key (use: enc); for --type hmac it sets the key''s size'
            cand --kid 'Key ID (default: the RFC 7638 SHA-256 thumbprint)'
            cand --use 'Public key use recorded in the JWK'
            cand -f 'Output format of the private key (and of --public-out)'
            cand --format 'Output format of the private key (and of --public-out)'
            cand -o 'Write the private key to FILE (mode 0600) instead of stdout'
            cand --out 'Write the private key to FILE (mode 0600) instead of stdout'
            cand --public-out 'Also write the public key to FILE'
            cand --upload 'Upload the public key to this jwkit server ({URL}/jwks) and print the kid; with no URL, $JWKIT_SERVER'
            cand --upload-token-file 'The upload token (else $JWKIT_UPLOAD_TOKEN)'
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand --save 'Keep the key in the key store ($JWKIT_HOME/keys) and print its kid'
            cand --force 'Overwrite existing files (and a stored key with the same kid)'
            cand --insecure 'Allow HMAC secrets shorter than the hash size (warns). RSA keys under 2048 bits are never generated: jwkit refuses to load them'
            cand -v 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand --verbose 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'jwkit;generate-jwt'= {
            cand --key-file 'Signing key file: PEM, DER, JWK or JWKS (pick with --kid), recognised by content; `-` reads stdin'
            cand --key 'Sign with the stored key with this kid (see `jwkit key list`)'
            cand --secret-file 'HMAC secret: the raw bytes of FILE (`-` for stdin)'
            cand --secret-env 'HMAC secret: the value of the environment variable VAR (secrets never go in argv)'
            cand --kid 'Header kid (default: the key''s kid, else its RFC 7638 thumbprint). With a JWKS key file, also picks the key'
            cand --alg 'Signature algorithm (default: from the key: RS256, ES256, ES384, ES512, ES256K, EdDSA or HS256, or the key''s JWK alg)'
            cand --typ 'Header typ; an empty value leaves typ out'
            cand --header 'Extra header member (VALUE is JSON when it parses as JSON, else a string). alg, crit and b64 are refused; use --kid and --typ for those'
            cand -c 'A claim; VALUE is JSON when it parses as JSON (admin=true, n=5, roles=["a"]), else a string'
            cand --claim 'A claim; VALUE is JSON when it parses as JSON (admin=true, n=5, roles=["a"]), else a string'
            cand --claim-str 'A claim whose VALUE is always a string'
            cand --claims 'Claims as a JSON object: inline, @FILE, or - for stdin. Flags win over its members'
            cand --iss 'Issuer (iss)'
            cand --sub 'Subject (sub)'
            cand --aud 'Audience (aud); repeat for an array'
            cand --jti 'Token ID (jti); with no value, a random 128-bit ID'
            cand --exp 'Expiry (exp), as WHEN (default: 1h from now, so the token passes verify-jwt, which requires exp)'
            cand --nbf 'Not before (nbf), as WHEN'
            cand --iat 'Issued at (iat), as WHEN (default: now)'
            cand --encrypt-key-file 'Sign, then encrypt the token to this key (a nested JWT, cty JWT): a public or private RSA, EC or X25519 key, or a symmetric key (PEM, JWK, or a JWK set: the first key that can encrypt)'
            cand --encrypt-key 'Sign, then encrypt the token to this encryption key in the key store (by kid or thumbprint; made with generate-key --use enc --save)'
            cand --jwe-alg 'The JWE key management algorithm (default: the key''s JWK alg, else RSA-OAEP-256 for RSA, ECDH-ES+A256KW for EC and X25519, A128KW/A192KW/A256KW by a symmetric key''s size)'
            cand --jwe-enc 'The JWE content encryption (default A256GCM)'
            cand --htm 'The HTTP method of the request a DPoP proof is for (GET, POST, ...)'
            cand --htu 'The URI of the request a DPoP proof is for (its query and fragment are left out)'
            cand --ath 'The access token the request presents: the proof gets its hash (ath)'
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand --insecure 'Accept an HMAC secret shorter than RFC 7518 §3.2 asks (32 bytes for HS256), such as an app''s existing secret, with a warning (verify-jwt: also decrypt RSA1_5 JWEs)'
            cand --secret-base64 'The --secret-file or --secret-env value is base64 (standard or URL-safe, padded or not, as `kubectl get secret -o yaml` shows it); the decoded bytes are the secret'
            cand --no-kid 'Leave kid out of the header'
            cand --no-exp 'Leave exp out (a token that never expires; verify-jwt then needs --ignore-exp)'
            cand --no-iat 'Leave iat out'
            cand --expired 'A token that expired an hour ago (iat two hours ago), for testing rejections'
            cand --dpop-proof 'Make a DPoP proof (RFC 9449) for one request instead of a token: typ dpop+jwt, the key''s public JWK in the header, claims jti, htm, htu, iat (--iat dates it), ath with --ath, and what --claim adds (a server''s nonce=...). Needs --htm, --htu and an asymmetric key'
            cand -v 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand --verbose 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'jwkit;verify-jwt'= {
            cand --token 'The token, as a flag'
            cand --key-file 'A key file (PEM, DER, JWK; a private key''s public half is used) or a JWKS file'
            cand --key 'The stored key with this kid'
            cand --jwks-file 'A JWKS file'
            cand --jwks-url 'A JWKS URL [env: JWKIT_JWKS_URL]'
            cand --issuer 'An OIDC issuer: its discovery document names the JWKS, and the token''s iss must match'
            cand --server 'A jwkit server: its /.well-known/jwks.json [env: JWKIT_SERVER]'
            cand --secret-file 'An HMAC secret: the raw bytes of FILE (`-` for stdin)'
            cand --secret-env 'An HMAC secret: the value of the environment variable VAR'
            cand --alg 'Allowed algorithm (repeatable); default: whatever the selected key supports'
            cand --iss 'Required issuer (iss)'
            cand --aud 'Accepted audience (repeatable); the token''s aud must hold one of them. A token that has aud is rejected unless --aud names one of its values or --any-aud is given (RFC 7519 §4.1.3)'
            cand --sub 'Required subject (sub)'
            cand --typ 'Required header typ (compared without case, with or without "application/")'
            cand --leeway 'Clock skew tolerated for exp and nbf'
            cand --require 'A claim that must be present (repeatable)'
            cand --at 'Judge exp, nbf and iat as of WHEN instead of now (a capture''s time, for example)'
            cand --threads 'Threads for --batch (default: all cores)'
            cand --decrypt-key-file 'Decrypt JWEs with this private or symmetric key (PEM, JWK or JWK set; the JWE''s kid picks from a set). `-` reads stdin'
            cand --decrypt-key 'Decrypt JWEs with this encryption key from the key store (by kid or thumbprint)'
            cand --password-file 'Decrypt PBES2 JWEs with the password in this file (one trailing newline is dropped). A PBES2 token re-signed is encrypted again to --encrypt-key-file or --encrypt-key'
            cand --dpop 'Also check the DPoP proof the token was presented with (RFC 9449): its signature by its own jwk, typ, htm, htu, iat within 5 minutes (of --at), ath the token''s hash, and the token bound to its key (cnf.jkt its thumbprint)'
            cand --htm 'The method of the request the token and its DPoP proof came with'
            cand --htu 'The URI of the request the token and its DPoP proof came with'
            cand --timeout 'The whole of each HTTP fetch (name resolution, connecting, TLS, headers and body) must finish within this'
            cand --cacert 'Extra trusted CA certificates (PEM) for HTTPS, besides the system roots'
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand --insecure 'Accept an HMAC secret shorter than RFC 7518 §3.2 asks (32 bytes for HS256), such as an app''s existing secret, with a warning (verify-jwt: also decrypt RSA1_5 JWEs)'
            cand --secret-base64 'The --secret-file or --secret-env value is base64 (standard or URL-safe, padded or not, as `kubectl get secret -o yaml` shows it); the decoded bytes are the secret'
            cand --any-aud 'Accept a token whatever its aud says (the caller does not identify itself by audience)'
            cand --ignore-exp 'Accept tokens that have expired or have no exp (warns)'
            cand --raw 'Verify the signature only: the payload need not be JWT claims (it is printed as is), and no claim is checked'
            cand --batch 'Tokens one per line; one result per line, in input order'
            cand --json 'JSON on stdout: {"valid":true,"kid":..,"alg":..,"claims":{..}} or {"valid":false,"error":{"kind":..,"message":..}}; one object per line with --batch'
            cand --allow-unsigned 'Accept an encrypted-only JWT (no signature inside) under a public-key algorithm (RSA-OAEP, ECDH-ES), which anyone with the public key can make (warns)'
            cand --no-cache 'Neither read nor write the JWKS cache'
            cand --allow-http 'Allow plain-HTTP key sets off loopback (warns)'
            cand -v 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand --verbose 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'jwkit;resign'= {
            cand --scan 'Re-sign every token in a text (a file, or `-`/nothing for stdin) and write the text back'
            cand -o 'Write the result to FILE (atomically) instead of stdout'
            cand --out 'Write the result to FILE (atomically) instead of stdout'
            cand --threads 'Threads for --scan (default: all cores)'
            cand --format 'What --scan reads: auto (recognised by content), text, http (a stream of raw HTTP messages: Content-Length is fixed) or har (HAR 1.2: bodySize and content.size are fixed)'
            cand --key-file 'Signing key file: PEM, DER, JWK or JWKS (pick with --kid), recognised by content; `-` reads stdin'
            cand --key 'Sign with the stored key with this kid (see `jwkit key list`)'
            cand --secret-file 'HMAC secret: the raw bytes of FILE (`-` for stdin)'
            cand --secret-env 'HMAC secret: the value of the environment variable VAR (secrets never go in argv)'
            cand --decrypt-key-file 'Decrypt JWEs with this private or symmetric key (PEM, JWK or JWK set; the JWE''s kid picks from a set). `-` reads stdin'
            cand --decrypt-key 'Decrypt JWEs with this encryption key from the key store (by kid or thumbprint)'
            cand --password-file 'Decrypt PBES2 JWEs with the password in this file (one trailing newline is dropped). A PBES2 token re-signed is encrypted again to --encrypt-key-file or --encrypt-key'
            cand --encrypt-key-file 'Encrypt the re-signed nested token to this key instead of the one it was encrypted to'
            cand --encrypt-key 'Encrypt the re-signed nested token to this stored encryption key (by kid) instead'
            cand --kid 'The new header kid (default: the new key''s kid, else its thumbprint). With a JWKS key file, also picks the key'
            cand --alg 'The new algorithm (default: from the new key)'
            cand --lifetime 'For --refresh of a token with exp but neither iat nor nbf (its lifetime unknown): exp becomes now + DUR'
            cand --exp 'Set exp, as WHEN (after --refresh)'
            cand --set 'Set a claim; VALUE is JSON when it parses as JSON, else a string (repeatable)'
            cand --unset 'Remove a claim (repeatable)'
            cand --verify-with 'The old signature must verify first, against a key or JWKS file, or a JWKS URL'
            cand --key-for 'Re-sign old tokens matching MATCH with KEY (repeatable): MATCH is alg:ALG, kid:KID or iss:ISS (of the old token); KEY is file:PATH, secret-file:PATH, secret-env:VAR or store:KID. A token no rule matches is left as it is, unless a default key is given'
            cand --only 'With --scan or --goreplay: re-sign only tokens in this place (repeatable): json:NAME (a JSON member, at any depth, also in JSON held in strings and in base64 bodies), header:NAME, cookie:NAME, param:NAME (query string or form field)'
            cand --match-alg 'Re-sign only tokens whose header alg is ALG (repeatable)'
            cand --match-kid 'Re-sign only tokens whose header kid is KID (repeatable)'
            cand --match-iss 'Re-sign only tokens whose iss claim is ISS (repeatable)'
            cand --timeout 'The whole of each HTTP fetch (name resolution, connecting, TLS, headers and body) must finish within this'
            cand --cacert 'Extra trusted CA certificates (PEM) for HTTPS, besides the system roots'
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand --force 'Overwrite --out if it exists'
            cand --goreplay 'Speak GoReplay''s middleware protocol on stdin and stdout (`gor --middleware "jwkit resign --goreplay --key-file K"`): one hex-encoded message per line; requests come back with their tokens re-signed and Content-Length fixed, each flushed as it is done; other messages come back unchanged'
            cand --insecure 'Accept an HMAC secret shorter than RFC 7518 §3.2 asks (32 bytes for HS256), such as an app''s existing secret, with a warning (verify-jwt: also decrypt RSA1_5 JWEs)'
            cand --secret-base64 'The --secret-file or --secret-env value is base64 (standard or URL-safe, padded or not, as `kubectl get secret -o yaml` shows it); the decoded bytes are the secret'
            cand --keep-kid 'Keep the token''s own kid'
            cand --refresh 'Make the token current: iat becomes now, and nbf and exp move by as much, so the lifetime is kept'
            cand --no-cache 'Neither read nor write the JWKS cache'
            cand --allow-http 'Allow plain-HTTP key sets off loopback (warns)'
            cand -v 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand --verbose 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'jwkit;proxy'= {
            cand --listen 'Where to listen (host:port; loopback unless told otherwise)'
            cand --upstream 'Be a reverse proxy for this origin (http:// or https://): every request goes there. Without it, a forward proxy'
            cand --side 'Re-sign the tokens of requests, of responses, or of both'
            cand --intercept-ca 'Forward proxy: terminate CONNECT tunnels with certificates signed by this CA (PEM), so HTTPS traffic is re-signed too (with --intercept-key)'
            cand --intercept-key 'The private key (PEM) of --intercept-ca'
            cand --intercept-ca-out 'Where --intercept-self-signed writes its CA certificate'
            cand --max-body 'Bodies larger than this (and server-sent event streams, WebSocket connections) pass through untouched; also the cap on a decoded (gzip, deflate, br) body'
            cand --upstream-timeout 'An upstream must connect and send its answer''s head within this (else 504)'
            cand --header-timeout 'A request''s head must arrive within this; an idle kept-alive connection closes after it'
            cand --body-timeout 'A request''s body must arrive within this (else 408)'
            cand --max-connections 'At most this many open connections; when full, the one making the least progress is closed to make room'
            cand --key-file 'Signing key file: PEM, DER, JWK or JWKS (pick with --kid), recognised by content; `-` reads stdin'
            cand --key 'Sign with the stored key with this kid (see `jwkit key list`)'
            cand --secret-file 'HMAC secret: the raw bytes of FILE (`-` for stdin)'
            cand --secret-env 'HMAC secret: the value of the environment variable VAR (secrets never go in argv)'
            cand --decrypt-key-file 'Decrypt JWEs with this private or symmetric key (PEM, JWK or JWK set; the JWE''s kid picks from a set). `-` reads stdin'
            cand --decrypt-key 'Decrypt JWEs with this encryption key from the key store (by kid or thumbprint)'
            cand --password-file 'Decrypt PBES2 JWEs with the password in this file (one trailing newline is dropped). A PBES2 token re-signed is encrypted again to --encrypt-key-file or --encrypt-key'
            cand --encrypt-key-file 'Encrypt the re-signed nested token to this key instead of the one it was encrypted to'
            cand --encrypt-key 'Encrypt the re-signed nested token to this stored encryption key (by kid) instead'
            cand --kid 'The new header kid (default: the new key''s kid, else its thumbprint). With a JWKS key file, also picks the key'
            cand --alg 'The new algorithm (default: from the new key)'
            cand --lifetime 'For --refresh of a token with exp but neither iat nor nbf (its lifetime unknown): exp becomes now + DUR'
            cand --exp 'Set exp, as WHEN (after --refresh)'
            cand --set 'Set a claim; VALUE is JSON when it parses as JSON, else a string (repeatable)'
            cand --unset 'Remove a claim (repeatable)'
            cand --verify-with 'The old signature must verify first, against a key or JWKS file, or a JWKS URL'
            cand --key-for 'Re-sign old tokens matching MATCH with KEY (repeatable): MATCH is alg:ALG, kid:KID or iss:ISS (of the old token); KEY is file:PATH, secret-file:PATH, secret-env:VAR or store:KID. A token no rule matches is left as it is, unless a default key is given'
            cand --only 'With --scan or --goreplay: re-sign only tokens in this place (repeatable): json:NAME (a JSON member, at any depth, also in JSON held in strings and in base64 bodies), header:NAME, cookie:NAME, param:NAME (query string or form field)'
            cand --match-alg 'Re-sign only tokens whose header alg is ALG (repeatable)'
            cand --match-kid 'Re-sign only tokens whose header kid is KID (repeatable)'
            cand --match-iss 'Re-sign only tokens whose iss claim is ISS (repeatable)'
            cand --timeout 'The whole of each HTTP fetch (name resolution, connecting, TLS, headers and body) must finish within this'
            cand --cacert 'Extra trusted CA certificates (PEM) for HTTPS, besides the system roots'
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand --intercept-self-signed 'Forward proxy: terminate CONNECT tunnels with a throwaway CA made at start, written to --intercept-ca-out for clients to trust'
            cand --insecure-upstream 'Do not verify the upstream''s TLS certificate (warns)'
            cand --forwarded 'Add Forwarded and X-Forwarded-For headers (by default no header is added)'
            cand --insecure 'Accept an HMAC secret shorter than RFC 7518 §3.2 asks (32 bytes for HS256), such as an app''s existing secret, with a warning (verify-jwt: also decrypt RSA1_5 JWEs)'
            cand --secret-base64 'The --secret-file or --secret-env value is base64 (standard or URL-safe, padded or not, as `kubectl get secret -o yaml` shows it); the decoded bytes are the secret'
            cand --keep-kid 'Keep the token''s own kid'
            cand --refresh 'Make the token current: iat becomes now, and nbf and exp move by as much, so the lifetime is kept'
            cand --no-cache 'Neither read nor write the JWKS cache'
            cand --allow-http 'Allow plain-HTTP key sets off loopback (warns)'
            cand -v 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand --verbose 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'jwkit;decode'= {
            cand --decrypt-key-file 'Decrypt JWEs with this private or symmetric key (PEM, JWK or JWK set; the JWE''s kid picks from a set). `-` reads stdin'
            cand --decrypt-key 'Decrypt JWEs with this encryption key from the key store (by kid or thumbprint)'
            cand --password-file 'Decrypt PBES2 JWEs with the password in this file (one trailing newline is dropped). A PBES2 token re-signed is encrypted again to --encrypt-key-file or --encrypt-key'
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand --json 'One JSON document: {header, claims, signature, times}; for a JWE also jwe_header'
            cand --plaintext 'Write a JWE''s decrypted plaintext to stdout, byte for byte (for scripts)'
            cand --insecure 'Also decrypt RSA1_5 (PKCS#1 v1.5 key transport, open to padding-oracle attacks)'
            cand -v 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand --verbose 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'jwkit;key'= {
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand -v 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand --verbose 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List the keys in the key store: kid, type, alg, created'
            cand show 'Show one stored key: metadata and its public JWK (--private for the private JWK)'
            cand public 'Print the public half of a key'
            cand thumbprint 'Print a key''s RFC 7638 thumbprint'
            cand convert 'Convert a key between PEM, JWK and JWKS'
            cand jwks 'Merge keys and files into one public JWKS (a duplicate kid is an error)'
            cand upload 'Upload a stored key''s public half to a jwkit server'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'jwkit;key;list'= {
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand --json 'One JSON document instead of a table'
            cand -v 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand --verbose 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'jwkit;key;show'= {
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand --private 'Include the private JWK'
            cand -v 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand --verbose 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'jwkit;key;public'= {
            cand --key 'Use the stored key with this kid (see `jwkit key list`)'
            cand --kid 'Pick the key with this kid when the file is a JWKS'
            cand -f 'Output format'
            cand --format 'Output format'
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand -v 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand --verbose 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'jwkit;key;thumbprint'= {
            cand --key 'Use the stored key with this kid (see `jwkit key list`)'
            cand --kid 'Pick the key with this kid when the file is a JWKS'
            cand --hash 'Hash function'
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand --uri 'Print as an RFC 9278 URI (urn:ietf:params:oauth:jwk-thumbprint:sha-256:...)'
            cand -v 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand --verbose 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'jwkit;key;convert'= {
            cand --key 'Use the stored key with this kid (see `jwkit key list`)'
            cand --kid 'Pick the key with this kid when the file is a JWKS'
            cand -f 'Output format'
            cand --format 'Output format'
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand --public 'Output only the public half'
            cand -v 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand --verbose 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'jwkit;key;jwks'= {
            cand --key 'Stored keys to add, by kid (repeatable)'
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand -v 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand --verbose 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'jwkit;key;upload'= {
            cand --server 'The server (default: $JWKIT_SERVER)'
            cand --upload-token-file 'The upload token (else $JWKIT_UPLOAD_TOKEN)'
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand -v 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand --verbose 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'jwkit;key;help'= {
            cand list 'List the keys in the key store: kid, type, alg, created'
            cand show 'Show one stored key: metadata and its public JWK (--private for the private JWK)'
            cand public 'Print the public half of a key'
            cand thumbprint 'Print a key''s RFC 7638 thumbprint'
            cand convert 'Convert a key between PEM, JWK and JWKS'
            cand jwks 'Merge keys and files into one public JWKS (a duplicate kid is an error)'
            cand upload 'Upload a stored key''s public half to a jwkit server'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'jwkit;key;help;list'= {
        }
        &'jwkit;key;help;show'= {
        }
        &'jwkit;key;help;public'= {
        }
        &'jwkit;key;help;thumbprint'= {
        }
        &'jwkit;key;help;convert'= {
        }
        &'jwkit;key;help;jwks'= {
        }
        &'jwkit;key;help;upload'= {
        }
        &'jwkit;key;help;help'= {
        }
        &'jwkit;serve'= {
            cand --addr 'Address to listen on (port 0 picks a free one; the URL is printed on stderr)'
            cand --data-dir 'Where keys are kept (default: server/ under the key store root)'
            cand --store 'Keep the keys in PostgreSQL instead (else $JWKIT_STORE), shared by every replica started with the same URL: postgres://USER:PASSWORD@HOST:PORT/DB. The schema is created on first use. TLS: ?sslmode=require (verified; ?sslrootcert=FILE for a private CA), required by default but on loopback'
            cand --store-key-file 'The key that seals the server''s signing keys in the database (AES-256-GCM; at least 32 bytes, e.g. from `openssl rand -base64 32`; else $JWKIT_STORE_KEY). Every replica needs the same one; --issue-tokens with --store needs it'
            cand --upload-token-file 'The bearer token uploads and deletes need (else $JWKIT_UPLOAD_TOKEN; with neither, uploads answer 403)'
            cand --alg 'The algorithm of the server''s own signing key (with --issue-tokens; default RS256 with an RSA-2048 key, as most identity providers sign). Any signature alg but HS*'
            cand --rotate-every 'Roll the server''s signing key this often (with --issue-tokens). The next key is published one period before it starts signing, so the period must be at least --max-age'
            cand --grace 'How long a rotated-out signing key stays published (with --rotate-every; default and minimum: --token-ttl, so every token it signed verifies until it expires)'
            cand --token-ttl 'Lifetime of /auth tokens (with --issue-tokens) [default: 15m]'
            cand --token-claims 'Server-side claims for /auth tokens (with --issue-tokens): a JSON object, or @FILE holding one, e.g. ''{"iss":"jwks-server","aud":"test-client","sub":"fake-user"}''. Any claim but iat, exp and nbf; iss may be any string. A request''s own claims override them only with --allow-claim-override'
            cand --idp-config 'The identity provider''s clients, users, claim templates, scopes, lifetimes and failure injection (TOML, or JSON; see docs/idp.md)'
            cand --cors-origin 'An origin (scheme://host[:port]) whose browser apps may call discovery, the key set, /token, /par, /userinfo, /introspect and /revoke (CORS); repeatable. Without it any origin may (a test IdP''s default; said on stderr at start)'
            cand --registration-token 'Dynamic client registration (RFC 7591, POST /register) needs this initial access token (the file''s first line) as a Bearer token. Without it registration is open'
            cand --max-age 'Cache-Control max-age of the JWKS'
            cand --issuer 'The issuer, used exactly as given (a trailing slash kept) in tokens and discovery; its path is honoured: discovery at {issuer}/.well-known/openid-configuration and the key set under the same prefix (default: http://ADDR as bound)'
            cand --jwks-path 'Also serve the key set at PATH (repeatable), where a real provider keeps it: /oauth2/v1/keys, /realms/NAME/protocol/openid-connect/certs, ...'
            cand --tls-cert 'Serve HTTPS with this certificate chain (PEM), read again on SIGHUP'
            cand --tls-key 'The private key (PEM) of --tls-cert'
            cand --tls-ca-out 'Where --tls-self-signed writes the CA certificate'
            cand --header-timeout 'A request''s head must arrive within this, and a kept-alive connection that stays idle this long is closed'
            cand --request-timeout 'A whole request (its body included) must be read and answered within this (else 408)'
            cand --body-timeout 'A request body sent without the upload token must arrive whole within this (else 408); requests bearing the upload token have --request-timeout'
            cand --max-connections 'At most this many open connections; when full, the one making the least progress (fewest bytes per second, inside a request or not; connections under a second old are spared) is closed to make room'
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand --issue-tokens 'Keep a signing key of the server''s own and answer POST /auth with tokens'
            cand --allow-claim-override 'Let /auth requests set iss, iat, exp and nbf (and the --token-claims) themselves (with --issue-tokens)'
            cand --idp 'Also be a test OpenID Connect provider: discovery, /authorize with a login page, /token (client_credentials, authorization_code with PKCE, refresh_token, token exchange), /userinfo, /introspect, /revoke, /logout; tokens signed by the server''s key (implies --issue-tokens). Without --idp-config any client id and secret are accepted'
            cand --opaque-access-tokens 'Issue opaque access tokens (random strings, checked by /userinfo and /introspect) instead of JWTs (RFC 9068)'
            cand --tls-self-signed 'Serve HTTPS with a certificate from a throwaway CA made at start, for the server''s host names; the CA certificate is written to --tls-ca-out (default: tls-ca.pem in the data directory), for clients to trust (verify-jwt --cacert)'
            cand -v 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand --verbose 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'jwkit;completions'= {
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand -v 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand --verbose 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'jwkit;man'= {
            cand --out 'Write jwkit.1 and one page per command into DIR instead of printing jwkit.1'
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand --force 'Replace pages that already exist in --out DIR'
            cand -v 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand --verbose 'Errors keep every layer of their cause (network errors are otherwise one line)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'jwkit;help'= {
            cand generate-key 'Generate a key pair or HMAC secret as PEM, JWK or JWKS'
            cand generate-jwt 'Sign a JWT: claims from flags, JSON or stdin; the compact token on stdout'
            cand verify-jwt 'Verify a token: signature, algorithm and claims, against a key, a key set, a JWKS URL, an OIDC issuer or a jwkit server'
            cand resign 'Give a token a new signature from a new key, claims kept byte for byte unless asked otherwise; with --scan, every token in any text (HAR files, logs, HTTP dumps)'
            cand proxy 'Re-sign tokens live: an HTTP proxy that re-signs every token in the requests and responses passing through it, by the rules of `resign --scan`'
            cand decode 'Show a token''s header and claims, with readable times. Never verifies the signature'
            cand key 'Inspect, convert and publish keys'
            cand serve 'Run a JWKS server: publish keys, take authenticated uploads, issue test tokens'
            cand completions 'Print a shell completion script to stdout'
            cand man 'Print the man page, or write one page per command into a directory'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'jwkit;help;generate-key'= {
        }
        &'jwkit;help;generate-jwt'= {
        }
        &'jwkit;help;verify-jwt'= {
        }
        &'jwkit;help;resign'= {
        }
        &'jwkit;help;proxy'= {
        }
        &'jwkit;help;decode'= {
        }
        &'jwkit;help;key'= {
            cand list 'List the keys in the key store: kid, type, alg, created'
            cand show 'Show one stored key: metadata and its public JWK (--private for the private JWK)'
            cand public 'Print the public half of a key'
            cand thumbprint 'Print a key''s RFC 7638 thumbprint'
            cand convert 'Convert a key between PEM, JWK and JWKS'
            cand jwks 'Merge keys and files into one public JWKS (a duplicate kid is an error)'
            cand upload 'Upload a stored key''s public half to a jwkit server'
        }
        &'jwkit;help;key;list'= {
        }
        &'jwkit;help;key;show'= {
        }
        &'jwkit;help;key;public'= {
        }
        &'jwkit;help;key;thumbprint'= {
        }
        &'jwkit;help;key;convert'= {
        }
        &'jwkit;help;key;jwks'= {
        }
        &'jwkit;help;key;upload'= {
        }
        &'jwkit;help;serve'= {
        }
        &'jwkit;help;completions'= {
        }
        &'jwkit;help;man'= {
        }
        &'jwkit;help;help'= {
        }
    ]
    $completions[$command]
}
