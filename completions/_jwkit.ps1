
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'jwkit' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'jwkit'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'jwkit' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('generate-key', 'generate-key', [CompletionResultType]::ParameterValue, 'Generate a key pair or HMAC secret as PEM, JWK or JWKS')
            [CompletionResult]::new('genkey', 'genkey', [CompletionResultType]::ParameterValue, 'Generate a key pair or HMAC secret as PEM, JWK or JWKS')
            [CompletionResult]::new('generate-jwt', 'generate-jwt', [CompletionResultType]::ParameterValue, 'Sign a JWT: claims from flags, JSON or stdin; the compact token on stdout')
            [CompletionResult]::new('verify-jwt', 'verify-jwt', [CompletionResultType]::ParameterValue, 'Verify a token: signature, algorithm and claims, against a key, a key set, a JWKS URL, an OIDC issuer or a jwkit server')
            [CompletionResult]::new('resign', 'resign', [CompletionResultType]::ParameterValue, 'Give a token a new signature from a new key, claims kept byte for byte unless asked otherwise; with --scan, every token in any text (HAR files, logs, HTTP dumps)')
            [CompletionResult]::new('proxy', 'proxy', [CompletionResultType]::ParameterValue, 'Re-sign tokens live: an HTTP proxy that re-signs every token in the requests and responses passing through it, by the rules of `resign --scan`')
            [CompletionResult]::new('decode', 'decode', [CompletionResultType]::ParameterValue, 'Show a token''s header and claims, with readable times. Never verifies the signature')
            [CompletionResult]::new('key', 'key', [CompletionResultType]::ParameterValue, 'Inspect, convert and publish keys')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run a JWKS server: publish keys, take authenticated uploads, issue test tokens')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script to stdout')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print the man page, or write one page per command into a directory')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'jwkit;generate-key' {
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Key type')
            [CompletionResult]::new('--type', '--type', [CompletionResultType]::ParameterName, 'Key type')
            [CompletionResult]::new('--bits', '--bits', [CompletionResultType]::ParameterName, 'RSA modulus size (2048, 3072, 4096; default 2048), or HMAC secret size in bits (default: the hash size of --alg, 256 for HS256)')
            [CompletionResult]::new('--curve', '--curve', [CompletionResultType]::ParameterName, 'EC curve (default P-256)')
            [CompletionResult]::new('--alg', '--alg', [CompletionResultType]::ParameterName, 'Algorithm to record in the JWK, restricting the key to it (default: none recorded; the key type''s default RS256, ES256, ES384, ES512, ES256K, EdDSA or HS256 applies). A JWE key-management algorithm (RSA-OAEP-256, ECDH-ES+A256KW, A128KW, dir, ...) makes an encryption key (use: enc); for --type hmac it sets the key''s size')
            [CompletionResult]::new('--kid', '--kid', [CompletionResultType]::ParameterName, 'Key ID (default: the RFC 7638 SHA-256 thumbprint)')
            [CompletionResult]::new('--use', '--use', [CompletionResultType]::ParameterName, 'Public key use recorded in the JWK')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Output format of the private key (and of --public-out)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format of the private key (and of --public-out)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Write the private key to FILE (mode 0600) instead of stdout')
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'Write the private key to FILE (mode 0600) instead of stdout')
            [CompletionResult]::new('--public-out', '--public-out', [CompletionResultType]::ParameterName, 'Also write the public key to FILE')
            [CompletionResult]::new('--upload', '--upload', [CompletionResultType]::ParameterName, 'Upload the public key to this jwkit server ({URL}/jwks) and print the kid; with no URL, $JWKIT_SERVER')
            [CompletionResult]::new('--upload-token-file', '--upload-token-file', [CompletionResultType]::ParameterName, 'The upload token (else $JWKIT_UPLOAD_TOKEN)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('--save', '--save', [CompletionResultType]::ParameterName, 'Keep the key in the key store ($JWKIT_HOME/keys) and print its kid')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Overwrite existing files (and a stored key with the same kid)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Allow HMAC secrets shorter than the hash size (warns). RSA keys under 2048 bits are never generated: jwkit refuses to load them')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'jwkit;genkey' {
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Key type')
            [CompletionResult]::new('--type', '--type', [CompletionResultType]::ParameterName, 'Key type')
            [CompletionResult]::new('--bits', '--bits', [CompletionResultType]::ParameterName, 'RSA modulus size (2048, 3072, 4096; default 2048), or HMAC secret size in bits (default: the hash size of --alg, 256 for HS256)')
            [CompletionResult]::new('--curve', '--curve', [CompletionResultType]::ParameterName, 'EC curve (default P-256)')
            [CompletionResult]::new('--alg', '--alg', [CompletionResultType]::ParameterName, 'Algorithm to record in the JWK, restricting the key to it (default: none recorded; the key type''s default RS256, ES256, ES384, ES512, ES256K, EdDSA or HS256 applies). A JWE key-management algorithm (RSA-OAEP-256, ECDH-ES+A256KW, A128KW, dir, ...) makes an encryption key (use: enc); for --type hmac it sets the key''s size')
            [CompletionResult]::new('--kid', '--kid', [CompletionResultType]::ParameterName, 'Key ID (default: the RFC 7638 SHA-256 thumbprint)')
            [CompletionResult]::new('--use', '--use', [CompletionResultType]::ParameterName, 'Public key use recorded in the JWK')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Output format of the private key (and of --public-out)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format of the private key (and of --public-out)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Write the private key to FILE (mode 0600) instead of stdout')
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'Write the private key to FILE (mode 0600) instead of stdout')
            [CompletionResult]::new('--public-out', '--public-out', [CompletionResultType]::ParameterName, 'Also write the public key to FILE')
            [CompletionResult]::new('--upload', '--upload', [CompletionResultType]::ParameterName, 'Upload the public key to this jwkit server ({URL}/jwks) and print the kid; with no URL, $JWKIT_SERVER')
            [CompletionResult]::new('--upload-token-file', '--upload-token-file', [CompletionResultType]::ParameterName, 'The upload token (else $JWKIT_UPLOAD_TOKEN)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('--save', '--save', [CompletionResultType]::ParameterName, 'Keep the key in the key store ($JWKIT_HOME/keys) and print its kid')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Overwrite existing files (and a stored key with the same kid)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Allow HMAC secrets shorter than the hash size (warns). RSA keys under 2048 bits are never generated: jwkit refuses to load them')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'jwkit;generate-jwt' {
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'Signing key file: PEM, DER, JWK or JWKS (pick with --kid), recognised by content; `-` reads stdin')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Sign with the stored key with this kid (see `jwkit key list`)')
            [CompletionResult]::new('--secret-file', '--secret-file', [CompletionResultType]::ParameterName, 'HMAC secret: the raw bytes of FILE (`-` for stdin)')
            [CompletionResult]::new('--secret-env', '--secret-env', [CompletionResultType]::ParameterName, 'HMAC secret: the value of the environment variable VAR (secrets never go in argv)')
            [CompletionResult]::new('--kid', '--kid', [CompletionResultType]::ParameterName, 'Header kid (default: the key''s kid, else its RFC 7638 thumbprint). With a JWKS key file, also picks the key')
            [CompletionResult]::new('--alg', '--alg', [CompletionResultType]::ParameterName, 'Signature algorithm (default: from the key: RS256, ES256, ES384, ES512, ES256K, EdDSA or HS256, or the key''s JWK alg)')
            [CompletionResult]::new('--typ', '--typ', [CompletionResultType]::ParameterName, 'Header typ; an empty value leaves typ out')
            [CompletionResult]::new('--header', '--header', [CompletionResultType]::ParameterName, 'Extra header member (VALUE is JSON when it parses as JSON, else a string). alg, crit and b64 are refused; use --kid and --typ for those')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'A claim; VALUE is JSON when it parses as JSON (admin=true, n=5, roles=["a"]), else a string')
            [CompletionResult]::new('--claim', '--claim', [CompletionResultType]::ParameterName, 'A claim; VALUE is JSON when it parses as JSON (admin=true, n=5, roles=["a"]), else a string')
            [CompletionResult]::new('--claim-str', '--claim-str', [CompletionResultType]::ParameterName, 'A claim whose VALUE is always a string')
            [CompletionResult]::new('--claims', '--claims', [CompletionResultType]::ParameterName, 'Claims as a JSON object: inline, @FILE, or - for stdin. Flags win over its members')
            [CompletionResult]::new('--iss', '--iss', [CompletionResultType]::ParameterName, 'Issuer (iss)')
            [CompletionResult]::new('--sub', '--sub', [CompletionResultType]::ParameterName, 'Subject (sub)')
            [CompletionResult]::new('--aud', '--aud', [CompletionResultType]::ParameterName, 'Audience (aud); repeat for an array')
            [CompletionResult]::new('--jti', '--jti', [CompletionResultType]::ParameterName, 'Token ID (jti); with no value, a random 128-bit ID')
            [CompletionResult]::new('--exp', '--exp', [CompletionResultType]::ParameterName, 'Expiry (exp), as WHEN (default: 1h from now, so the token passes verify-jwt, which requires exp)')
            [CompletionResult]::new('--nbf', '--nbf', [CompletionResultType]::ParameterName, 'Not before (nbf), as WHEN')
            [CompletionResult]::new('--iat', '--iat', [CompletionResultType]::ParameterName, 'Issued at (iat), as WHEN (default: now)')
            [CompletionResult]::new('--encrypt-key-file', '--encrypt-key-file', [CompletionResultType]::ParameterName, 'Sign, then encrypt the token to this key (a nested JWT, cty JWT): a public or private RSA, EC or X25519 key, or a symmetric key (PEM, JWK, or a JWK set: the first key that can encrypt)')
            [CompletionResult]::new('--encrypt-key', '--encrypt-key', [CompletionResultType]::ParameterName, 'Sign, then encrypt the token to this encryption key in the key store (by kid or thumbprint; made with generate-key --use enc --save)')
            [CompletionResult]::new('--jwe-alg', '--jwe-alg', [CompletionResultType]::ParameterName, 'The JWE key management algorithm (default: the key''s JWK alg, else RSA-OAEP-256 for RSA, ECDH-ES+A256KW for EC and X25519, A128KW/A192KW/A256KW by a symmetric key''s size)')
            [CompletionResult]::new('--jwe-enc', '--jwe-enc', [CompletionResultType]::ParameterName, 'The JWE content encryption (default A256GCM)')
            [CompletionResult]::new('--htm', '--htm', [CompletionResultType]::ParameterName, 'The HTTP method of the request a DPoP proof is for (GET, POST, ...)')
            [CompletionResult]::new('--htu', '--htu', [CompletionResultType]::ParameterName, 'The URI of the request a DPoP proof is for (its query and fragment are left out)')
            [CompletionResult]::new('--ath', '--ath', [CompletionResultType]::ParameterName, 'The access token the request presents: the proof gets its hash (ath)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Accept an HMAC secret shorter than RFC 7518 §3.2 asks (32 bytes for HS256), such as an app''s existing secret, with a warning (verify-jwt: also decrypt RSA1_5 JWEs)')
            [CompletionResult]::new('--secret-base64', '--secret-base64', [CompletionResultType]::ParameterName, 'The --secret-file or --secret-env value is base64 (standard or URL-safe, padded or not, as `kubectl get secret -o yaml` shows it); the decoded bytes are the secret')
            [CompletionResult]::new('--no-kid', '--no-kid', [CompletionResultType]::ParameterName, 'Leave kid out of the header')
            [CompletionResult]::new('--no-exp', '--no-exp', [CompletionResultType]::ParameterName, 'Leave exp out (a token that never expires; verify-jwt then needs --ignore-exp)')
            [CompletionResult]::new('--no-iat', '--no-iat', [CompletionResultType]::ParameterName, 'Leave iat out')
            [CompletionResult]::new('--expired', '--expired', [CompletionResultType]::ParameterName, 'A token that expired an hour ago (iat two hours ago), for testing rejections')
            [CompletionResult]::new('--dpop-proof', '--dpop-proof', [CompletionResultType]::ParameterName, 'Make a DPoP proof (RFC 9449) for one request instead of a token: typ dpop+jwt, the key''s public JWK in the header, claims jti, htm, htu, iat (--iat dates it), ath with --ath, and what --claim adds (a server''s nonce=...). Needs --htm, --htu and an asymmetric key')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'jwkit;verify-jwt' {
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'The token, as a flag')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file (PEM, DER, JWK; a private key''s public half is used) or a JWKS file')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'The stored key with this kid')
            [CompletionResult]::new('--jwks-file', '--jwks-file', [CompletionResultType]::ParameterName, 'A JWKS file')
            [CompletionResult]::new('--jwks-url', '--jwks-url', [CompletionResultType]::ParameterName, 'A JWKS URL [env: JWKIT_JWKS_URL]')
            [CompletionResult]::new('--issuer', '--issuer', [CompletionResultType]::ParameterName, 'An OIDC issuer: its discovery document names the JWKS, and the token''s iss must match')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'A jwkit server: its /.well-known/jwks.json [env: JWKIT_SERVER]')
            [CompletionResult]::new('--secret-file', '--secret-file', [CompletionResultType]::ParameterName, 'An HMAC secret: the raw bytes of FILE (`-` for stdin)')
            [CompletionResult]::new('--secret-env', '--secret-env', [CompletionResultType]::ParameterName, 'An HMAC secret: the value of the environment variable VAR')
            [CompletionResult]::new('--alg', '--alg', [CompletionResultType]::ParameterName, 'Allowed algorithm (repeatable); default: whatever the selected key supports')
            [CompletionResult]::new('--iss', '--iss', [CompletionResultType]::ParameterName, 'Required issuer (iss)')
            [CompletionResult]::new('--aud', '--aud', [CompletionResultType]::ParameterName, 'Accepted audience (repeatable); the token''s aud must hold one of them. A token that has aud is rejected unless --aud names one of its values or --any-aud is given (RFC 7519 §4.1.3)')
            [CompletionResult]::new('--sub', '--sub', [CompletionResultType]::ParameterName, 'Required subject (sub)')
            [CompletionResult]::new('--typ', '--typ', [CompletionResultType]::ParameterName, 'Required header typ (compared without case, with or without "application/")')
            [CompletionResult]::new('--leeway', '--leeway', [CompletionResultType]::ParameterName, 'Clock skew tolerated for exp and nbf')
            [CompletionResult]::new('--require', '--require', [CompletionResultType]::ParameterName, 'A claim that must be present (repeatable)')
            [CompletionResult]::new('--at', '--at', [CompletionResultType]::ParameterName, 'Judge exp, nbf and iat as of WHEN instead of now (a capture''s time, for example)')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Threads for --batch (default: all cores)')
            [CompletionResult]::new('--decrypt-key-file', '--decrypt-key-file', [CompletionResultType]::ParameterName, 'Decrypt JWEs with this private or symmetric key (PEM, JWK or JWK set; the JWE''s kid picks from a set). `-` reads stdin')
            [CompletionResult]::new('--decrypt-key', '--decrypt-key', [CompletionResultType]::ParameterName, 'Decrypt JWEs with this encryption key from the key store (by kid or thumbprint)')
            [CompletionResult]::new('--password-file', '--password-file', [CompletionResultType]::ParameterName, 'Decrypt PBES2 JWEs with the password in this file (one trailing newline is dropped). A PBES2 token re-signed is encrypted again to --encrypt-key-file or --encrypt-key')
            [CompletionResult]::new('--dpop', '--dpop', [CompletionResultType]::ParameterName, 'Also check the DPoP proof the token was presented with (RFC 9449): its signature by its own jwk, typ, htm, htu, iat within 5 minutes (of --at), ath the token''s hash, and the token bound to its key (cnf.jkt its thumbprint)')
            [CompletionResult]::new('--htm', '--htm', [CompletionResultType]::ParameterName, 'The method of the request the token and its DPoP proof came with')
            [CompletionResult]::new('--htu', '--htu', [CompletionResultType]::ParameterName, 'The URI of the request the token and its DPoP proof came with')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'The whole of each HTTP fetch (name resolution, connecting, TLS, headers and body) must finish within this')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'Extra trusted CA certificates (PEM) for HTTPS, besides the system roots')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Accept an HMAC secret shorter than RFC 7518 §3.2 asks (32 bytes for HS256), such as an app''s existing secret, with a warning (verify-jwt: also decrypt RSA1_5 JWEs)')
            [CompletionResult]::new('--secret-base64', '--secret-base64', [CompletionResultType]::ParameterName, 'The --secret-file or --secret-env value is base64 (standard or URL-safe, padded or not, as `kubectl get secret -o yaml` shows it); the decoded bytes are the secret')
            [CompletionResult]::new('--any-aud', '--any-aud', [CompletionResultType]::ParameterName, 'Accept a token whatever its aud says (the caller does not identify itself by audience)')
            [CompletionResult]::new('--ignore-exp', '--ignore-exp', [CompletionResultType]::ParameterName, 'Accept tokens that have expired or have no exp (warns)')
            [CompletionResult]::new('--raw', '--raw', [CompletionResultType]::ParameterName, 'Verify the signature only: the payload need not be JWT claims (it is printed as is), and no claim is checked')
            [CompletionResult]::new('--batch', '--batch', [CompletionResultType]::ParameterName, 'Tokens one per line; one result per line, in input order')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'JSON on stdout: {"valid":true,"kid":..,"alg":..,"claims":{..}} or {"valid":false,"error":{"kind":..,"message":..}}; one object per line with --batch')
            [CompletionResult]::new('--allow-unsigned', '--allow-unsigned', [CompletionResultType]::ParameterName, 'Accept an encrypted-only JWT (no signature inside) under a public-key algorithm (RSA-OAEP, ECDH-ES), which anyone with the public key can make (warns)')
            [CompletionResult]::new('--no-cache', '--no-cache', [CompletionResultType]::ParameterName, 'Neither read nor write the JWKS cache')
            [CompletionResult]::new('--allow-http', '--allow-http', [CompletionResultType]::ParameterName, 'Allow plain-HTTP key sets off loopback (warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'jwkit;resign' {
            [CompletionResult]::new('--scan', '--scan', [CompletionResultType]::ParameterName, 'Re-sign every token in a text (a file, or `-`/nothing for stdin) and write the text back')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Write the result to FILE (atomically) instead of stdout')
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'Write the result to FILE (atomically) instead of stdout')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Threads for --scan (default: all cores)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'What --scan reads: auto (recognised by content), text, http (a stream of raw HTTP messages: Content-Length is fixed) or har (HAR 1.2: bodySize and content.size are fixed)')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'Signing key file: PEM, DER, JWK or JWKS (pick with --kid), recognised by content; `-` reads stdin')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Sign with the stored key with this kid (see `jwkit key list`)')
            [CompletionResult]::new('--secret-file', '--secret-file', [CompletionResultType]::ParameterName, 'HMAC secret: the raw bytes of FILE (`-` for stdin)')
            [CompletionResult]::new('--secret-env', '--secret-env', [CompletionResultType]::ParameterName, 'HMAC secret: the value of the environment variable VAR (secrets never go in argv)')
            [CompletionResult]::new('--decrypt-key-file', '--decrypt-key-file', [CompletionResultType]::ParameterName, 'Decrypt JWEs with this private or symmetric key (PEM, JWK or JWK set; the JWE''s kid picks from a set). `-` reads stdin')
            [CompletionResult]::new('--decrypt-key', '--decrypt-key', [CompletionResultType]::ParameterName, 'Decrypt JWEs with this encryption key from the key store (by kid or thumbprint)')
            [CompletionResult]::new('--password-file', '--password-file', [CompletionResultType]::ParameterName, 'Decrypt PBES2 JWEs with the password in this file (one trailing newline is dropped). A PBES2 token re-signed is encrypted again to --encrypt-key-file or --encrypt-key')
            [CompletionResult]::new('--encrypt-key-file', '--encrypt-key-file', [CompletionResultType]::ParameterName, 'Encrypt the re-signed nested token to this key instead of the one it was encrypted to')
            [CompletionResult]::new('--encrypt-key', '--encrypt-key', [CompletionResultType]::ParameterName, 'Encrypt the re-signed nested token to this stored encryption key (by kid) instead')
            [CompletionResult]::new('--kid', '--kid', [CompletionResultType]::ParameterName, 'The new header kid (default: the new key''s kid, else its thumbprint). With a JWKS key file, also picks the key')
            [CompletionResult]::new('--alg', '--alg', [CompletionResultType]::ParameterName, 'The new algorithm (default: from the new key)')
            [CompletionResult]::new('--lifetime', '--lifetime', [CompletionResultType]::ParameterName, 'For --refresh of a token with exp but neither iat nor nbf (its lifetime unknown): exp becomes now + DUR')
            [CompletionResult]::new('--exp', '--exp', [CompletionResultType]::ParameterName, 'Set exp, as WHEN (after --refresh)')
            [CompletionResult]::new('--set', '--set', [CompletionResultType]::ParameterName, 'Set a claim; VALUE is JSON when it parses as JSON, else a string (repeatable)')
            [CompletionResult]::new('--unset', '--unset', [CompletionResultType]::ParameterName, 'Remove a claim (repeatable)')
            [CompletionResult]::new('--verify-with', '--verify-with', [CompletionResultType]::ParameterName, 'The old signature must verify first, against a key or JWKS file, or a JWKS URL')
            [CompletionResult]::new('--key-for', '--key-for', [CompletionResultType]::ParameterName, 'Re-sign old tokens matching MATCH with KEY (repeatable): MATCH is alg:ALG, kid:KID or iss:ISS (of the old token); KEY is file:PATH, secret-file:PATH, secret-env:VAR or store:KID. A token no rule matches is left as it is, unless a default key is given')
            [CompletionResult]::new('--only', '--only', [CompletionResultType]::ParameterName, 'With --scan or --goreplay: re-sign only tokens in this place (repeatable): json:NAME (a JSON member, at any depth, also in JSON held in strings and in base64 bodies), header:NAME, cookie:NAME, param:NAME (query string or form field)')
            [CompletionResult]::new('--match-alg', '--match-alg', [CompletionResultType]::ParameterName, 'Re-sign only tokens whose header alg is ALG (repeatable)')
            [CompletionResult]::new('--match-kid', '--match-kid', [CompletionResultType]::ParameterName, 'Re-sign only tokens whose header kid is KID (repeatable)')
            [CompletionResult]::new('--match-iss', '--match-iss', [CompletionResultType]::ParameterName, 'Re-sign only tokens whose iss claim is ISS (repeatable)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'The whole of each HTTP fetch (name resolution, connecting, TLS, headers and body) must finish within this')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'Extra trusted CA certificates (PEM) for HTTPS, besides the system roots')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Overwrite --out if it exists')
            [CompletionResult]::new('--goreplay', '--goreplay', [CompletionResultType]::ParameterName, 'Speak GoReplay''s middleware protocol on stdin and stdout (`gor --middleware "jwkit resign --goreplay --key-file K"`): one hex-encoded message per line; requests come back with their tokens re-signed and Content-Length fixed, each flushed as it is done; other messages come back unchanged')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Accept an HMAC secret shorter than RFC 7518 §3.2 asks (32 bytes for HS256), such as an app''s existing secret, with a warning (verify-jwt: also decrypt RSA1_5 JWEs)')
            [CompletionResult]::new('--secret-base64', '--secret-base64', [CompletionResultType]::ParameterName, 'The --secret-file or --secret-env value is base64 (standard or URL-safe, padded or not, as `kubectl get secret -o yaml` shows it); the decoded bytes are the secret')
            [CompletionResult]::new('--keep-kid', '--keep-kid', [CompletionResultType]::ParameterName, 'Keep the token''s own kid')
            [CompletionResult]::new('--refresh', '--refresh', [CompletionResultType]::ParameterName, 'Make the token current: iat becomes now, and nbf and exp move by as much, so the lifetime is kept')
            [CompletionResult]::new('--no-cache', '--no-cache', [CompletionResultType]::ParameterName, 'Neither read nor write the JWKS cache')
            [CompletionResult]::new('--allow-http', '--allow-http', [CompletionResultType]::ParameterName, 'Allow plain-HTTP key sets off loopback (warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'jwkit;proxy' {
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Where to listen (host:port; loopback unless told otherwise)')
            [CompletionResult]::new('--upstream', '--upstream', [CompletionResultType]::ParameterName, 'Be a reverse proxy for this origin (http:// or https://): every request goes there. Without it, a forward proxy')
            [CompletionResult]::new('--side', '--side', [CompletionResultType]::ParameterName, 'Re-sign the tokens of requests, of responses, or of both')
            [CompletionResult]::new('--intercept-ca', '--intercept-ca', [CompletionResultType]::ParameterName, 'Forward proxy: terminate CONNECT tunnels with certificates signed by this CA (PEM), so HTTPS traffic is re-signed too (with --intercept-key)')
            [CompletionResult]::new('--intercept-key', '--intercept-key', [CompletionResultType]::ParameterName, 'The private key (PEM) of --intercept-ca')
            [CompletionResult]::new('--intercept-ca-out', '--intercept-ca-out', [CompletionResultType]::ParameterName, 'Where --intercept-self-signed writes its CA certificate')
            [CompletionResult]::new('--max-body', '--max-body', [CompletionResultType]::ParameterName, 'Bodies larger than this (and server-sent event streams, WebSocket connections) pass through untouched; also the cap on a decoded (gzip, deflate, br) body')
            [CompletionResult]::new('--upstream-timeout', '--upstream-timeout', [CompletionResultType]::ParameterName, 'An upstream must connect and send its answer''s head within this (else 504)')
            [CompletionResult]::new('--header-timeout', '--header-timeout', [CompletionResultType]::ParameterName, 'A request''s head must arrive within this; an idle kept-alive connection closes after it')
            [CompletionResult]::new('--body-timeout', '--body-timeout', [CompletionResultType]::ParameterName, 'A request''s body must arrive within this (else 408)')
            [CompletionResult]::new('--max-connections', '--max-connections', [CompletionResultType]::ParameterName, 'At most this many open connections; when full, the one making the least progress is closed to make room')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'Signing key file: PEM, DER, JWK or JWKS (pick with --kid), recognised by content; `-` reads stdin')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Sign with the stored key with this kid (see `jwkit key list`)')
            [CompletionResult]::new('--secret-file', '--secret-file', [CompletionResultType]::ParameterName, 'HMAC secret: the raw bytes of FILE (`-` for stdin)')
            [CompletionResult]::new('--secret-env', '--secret-env', [CompletionResultType]::ParameterName, 'HMAC secret: the value of the environment variable VAR (secrets never go in argv)')
            [CompletionResult]::new('--decrypt-key-file', '--decrypt-key-file', [CompletionResultType]::ParameterName, 'Decrypt JWEs with this private or symmetric key (PEM, JWK or JWK set; the JWE''s kid picks from a set). `-` reads stdin')
            [CompletionResult]::new('--decrypt-key', '--decrypt-key', [CompletionResultType]::ParameterName, 'Decrypt JWEs with this encryption key from the key store (by kid or thumbprint)')
            [CompletionResult]::new('--password-file', '--password-file', [CompletionResultType]::ParameterName, 'Decrypt PBES2 JWEs with the password in this file (one trailing newline is dropped). A PBES2 token re-signed is encrypted again to --encrypt-key-file or --encrypt-key')
            [CompletionResult]::new('--encrypt-key-file', '--encrypt-key-file', [CompletionResultType]::ParameterName, 'Encrypt the re-signed nested token to this key instead of the one it was encrypted to')
            [CompletionResult]::new('--encrypt-key', '--encrypt-key', [CompletionResultType]::ParameterName, 'Encrypt the re-signed nested token to this stored encryption key (by kid) instead')
            [CompletionResult]::new('--kid', '--kid', [CompletionResultType]::ParameterName, 'The new header kid (default: the new key''s kid, else its thumbprint). With a JWKS key file, also picks the key')
            [CompletionResult]::new('--alg', '--alg', [CompletionResultType]::ParameterName, 'The new algorithm (default: from the new key)')
            [CompletionResult]::new('--lifetime', '--lifetime', [CompletionResultType]::ParameterName, 'For --refresh of a token with exp but neither iat nor nbf (its lifetime unknown): exp becomes now + DUR')
            [CompletionResult]::new('--exp', '--exp', [CompletionResultType]::ParameterName, 'Set exp, as WHEN (after --refresh)')
            [CompletionResult]::new('--set', '--set', [CompletionResultType]::ParameterName, 'Set a claim; VALUE is JSON when it parses as JSON, else a string (repeatable)')
            [CompletionResult]::new('--unset', '--unset', [CompletionResultType]::ParameterName, 'Remove a claim (repeatable)')
            [CompletionResult]::new('--verify-with', '--verify-with', [CompletionResultType]::ParameterName, 'The old signature must verify first, against a key or JWKS file, or a JWKS URL')
            [CompletionResult]::new('--key-for', '--key-for', [CompletionResultType]::ParameterName, 'Re-sign old tokens matching MATCH with KEY (repeatable): MATCH is alg:ALG, kid:KID or iss:ISS (of the old token); KEY is file:PATH, secret-file:PATH, secret-env:VAR or store:KID. A token no rule matches is left as it is, unless a default key is given')
            [CompletionResult]::new('--only', '--only', [CompletionResultType]::ParameterName, 'With --scan or --goreplay: re-sign only tokens in this place (repeatable): json:NAME (a JSON member, at any depth, also in JSON held in strings and in base64 bodies), header:NAME, cookie:NAME, param:NAME (query string or form field)')
            [CompletionResult]::new('--match-alg', '--match-alg', [CompletionResultType]::ParameterName, 'Re-sign only tokens whose header alg is ALG (repeatable)')
            [CompletionResult]::new('--match-kid', '--match-kid', [CompletionResultType]::ParameterName, 'Re-sign only tokens whose header kid is KID (repeatable)')
            [CompletionResult]::new('--match-iss', '--match-iss', [CompletionResultType]::ParameterName, 'Re-sign only tokens whose iss claim is ISS (repeatable)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'The whole of each HTTP fetch (name resolution, connecting, TLS, headers and body) must finish within this')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'Extra trusted CA certificates (PEM) for HTTPS, besides the system roots')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('--intercept-self-signed', '--intercept-self-signed', [CompletionResultType]::ParameterName, 'Forward proxy: terminate CONNECT tunnels with a throwaway CA made at start, written to --intercept-ca-out for clients to trust')
            [CompletionResult]::new('--insecure-upstream', '--insecure-upstream', [CompletionResultType]::ParameterName, 'Do not verify the upstream''s TLS certificate (warns)')
            [CompletionResult]::new('--forwarded', '--forwarded', [CompletionResultType]::ParameterName, 'Add Forwarded and X-Forwarded-For headers (by default no header is added)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Accept an HMAC secret shorter than RFC 7518 §3.2 asks (32 bytes for HS256), such as an app''s existing secret, with a warning (verify-jwt: also decrypt RSA1_5 JWEs)')
            [CompletionResult]::new('--secret-base64', '--secret-base64', [CompletionResultType]::ParameterName, 'The --secret-file or --secret-env value is base64 (standard or URL-safe, padded or not, as `kubectl get secret -o yaml` shows it); the decoded bytes are the secret')
            [CompletionResult]::new('--keep-kid', '--keep-kid', [CompletionResultType]::ParameterName, 'Keep the token''s own kid')
            [CompletionResult]::new('--refresh', '--refresh', [CompletionResultType]::ParameterName, 'Make the token current: iat becomes now, and nbf and exp move by as much, so the lifetime is kept')
            [CompletionResult]::new('--no-cache', '--no-cache', [CompletionResultType]::ParameterName, 'Neither read nor write the JWKS cache')
            [CompletionResult]::new('--allow-http', '--allow-http', [CompletionResultType]::ParameterName, 'Allow plain-HTTP key sets off loopback (warns)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'jwkit;decode' {
            [CompletionResult]::new('--decrypt-key-file', '--decrypt-key-file', [CompletionResultType]::ParameterName, 'Decrypt JWEs with this private or symmetric key (PEM, JWK or JWK set; the JWE''s kid picks from a set). `-` reads stdin')
            [CompletionResult]::new('--decrypt-key', '--decrypt-key', [CompletionResultType]::ParameterName, 'Decrypt JWEs with this encryption key from the key store (by kid or thumbprint)')
            [CompletionResult]::new('--password-file', '--password-file', [CompletionResultType]::ParameterName, 'Decrypt PBES2 JWEs with the password in this file (one trailing newline is dropped). A PBES2 token re-signed is encrypted again to --encrypt-key-file or --encrypt-key')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'One JSON document: {header, claims, signature, times}; for a JWE also jwe_header')
            [CompletionResult]::new('--plaintext', '--plaintext', [CompletionResultType]::ParameterName, 'Write a JWE''s decrypted plaintext to stdout, byte for byte (for scripts)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Also decrypt RSA1_5 (PKCS#1 v1.5 key transport, open to padding-oracle attacks)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'jwkit;key' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the keys in the key store: kid, type, alg, created')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one stored key: metadata and its public JWK (--private for the private JWK)')
            [CompletionResult]::new('public', 'public', [CompletionResultType]::ParameterValue, 'Print the public half of a key')
            [CompletionResult]::new('thumbprint', 'thumbprint', [CompletionResultType]::ParameterValue, 'Print a key''s RFC 7638 thumbprint')
            [CompletionResult]::new('convert', 'convert', [CompletionResultType]::ParameterValue, 'Convert a key between PEM, JWK and JWKS')
            [CompletionResult]::new('jwks', 'jwks', [CompletionResultType]::ParameterValue, 'Merge keys and files into one public JWKS (a duplicate kid is an error)')
            [CompletionResult]::new('upload', 'upload', [CompletionResultType]::ParameterValue, 'Upload a stored key''s public half to a jwkit server')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'jwkit;key;list' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'One JSON document instead of a table')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'jwkit;key;show' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('--private', '--private', [CompletionResultType]::ParameterName, 'Include the private JWK')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'jwkit;key;public' {
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Use the stored key with this kid (see `jwkit key list`)')
            [CompletionResult]::new('--kid', '--kid', [CompletionResultType]::ParameterName, 'Pick the key with this kid when the file is a JWKS')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'jwkit;key;thumbprint' {
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Use the stored key with this kid (see `jwkit key list`)')
            [CompletionResult]::new('--kid', '--kid', [CompletionResultType]::ParameterName, 'Pick the key with this kid when the file is a JWKS')
            [CompletionResult]::new('--hash', '--hash', [CompletionResultType]::ParameterName, 'Hash function')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('--uri', '--uri', [CompletionResultType]::ParameterName, 'Print as an RFC 9278 URI (urn:ietf:params:oauth:jwk-thumbprint:sha-256:...)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'jwkit;key;convert' {
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Use the stored key with this kid (see `jwkit key list`)')
            [CompletionResult]::new('--kid', '--kid', [CompletionResultType]::ParameterName, 'Pick the key with this kid when the file is a JWKS')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('--public', '--public', [CompletionResultType]::ParameterName, 'Output only the public half')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'jwkit;key;jwks' {
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Stored keys to add, by kid (repeatable)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'jwkit;key;upload' {
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The server (default: $JWKIT_SERVER)')
            [CompletionResult]::new('--upload-token-file', '--upload-token-file', [CompletionResultType]::ParameterName, 'The upload token (else $JWKIT_UPLOAD_TOKEN)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'jwkit;key;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the keys in the key store: kid, type, alg, created')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one stored key: metadata and its public JWK (--private for the private JWK)')
            [CompletionResult]::new('public', 'public', [CompletionResultType]::ParameterValue, 'Print the public half of a key')
            [CompletionResult]::new('thumbprint', 'thumbprint', [CompletionResultType]::ParameterValue, 'Print a key''s RFC 7638 thumbprint')
            [CompletionResult]::new('convert', 'convert', [CompletionResultType]::ParameterValue, 'Convert a key between PEM, JWK and JWKS')
            [CompletionResult]::new('jwks', 'jwks', [CompletionResultType]::ParameterValue, 'Merge keys and files into one public JWKS (a duplicate kid is an error)')
            [CompletionResult]::new('upload', 'upload', [CompletionResultType]::ParameterValue, 'Upload a stored key''s public half to a jwkit server')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'jwkit;key;help;list' {
            break
        }
        'jwkit;key;help;show' {
            break
        }
        'jwkit;key;help;public' {
            break
        }
        'jwkit;key;help;thumbprint' {
            break
        }
        'jwkit;key;help;convert' {
            break
        }
        'jwkit;key;help;jwks' {
            break
        }
        'jwkit;key;help;upload' {
            break
        }
        'jwkit;key;help;help' {
            break
        }
        'jwkit;serve' {
            [CompletionResult]::new('--addr', '--addr', [CompletionResultType]::ParameterName, 'Address to listen on (port 0 picks a free one; the URL is printed on stderr)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Where keys are kept (default: server/ under the key store root)')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Keep the keys in PostgreSQL instead (else $JWKIT_STORE), shared by every replica started with the same URL: postgres://USER:PASSWORD@HOST:PORT/DB. The schema is created on first use. TLS: ?sslmode=require (verified; ?sslrootcert=FILE for a private CA), required by default but on loopback')
            [CompletionResult]::new('--store-key-file', '--store-key-file', [CompletionResultType]::ParameterName, 'The key that seals the server''s signing keys in the database (AES-256-GCM; at least 32 bytes, e.g. from `openssl rand -base64 32`; else $JWKIT_STORE_KEY). Every replica needs the same one; --issue-tokens with --store needs it')
            [CompletionResult]::new('--upload-token-file', '--upload-token-file', [CompletionResultType]::ParameterName, 'The bearer token uploads and deletes need (else $JWKIT_UPLOAD_TOKEN; with neither, uploads answer 403)')
            [CompletionResult]::new('--alg', '--alg', [CompletionResultType]::ParameterName, 'The algorithm of the server''s own signing key (with --issue-tokens; default RS256 with an RSA-2048 key, as most identity providers sign). Any signature alg but HS*')
            [CompletionResult]::new('--rotate-every', '--rotate-every', [CompletionResultType]::ParameterName, 'Roll the server''s signing key this often (with --issue-tokens). The next key is published one period before it starts signing, so the period must be at least --max-age')
            [CompletionResult]::new('--grace', '--grace', [CompletionResultType]::ParameterName, 'How long a rotated-out signing key stays published (with --rotate-every; default and minimum: --token-ttl, so every token it signed verifies until it expires)')
            [CompletionResult]::new('--token-ttl', '--token-ttl', [CompletionResultType]::ParameterName, 'Lifetime of /auth tokens (with --issue-tokens) [default: 15m]')
            [CompletionResult]::new('--token-claims', '--token-claims', [CompletionResultType]::ParameterName, 'Server-side claims for /auth tokens (with --issue-tokens): a JSON object, or @FILE holding one, e.g. ''{"iss":"jwks-server","aud":"test-client","sub":"fake-user"}''. Any claim but iat, exp and nbf; iss may be any string. A request''s own claims override them only with --allow-claim-override')
            [CompletionResult]::new('--idp-config', '--idp-config', [CompletionResultType]::ParameterName, 'The identity provider''s clients, users, claim templates, scopes, lifetimes and failure injection (TOML, or JSON; see docs/idp.md)')
            [CompletionResult]::new('--cors-origin', '--cors-origin', [CompletionResultType]::ParameterName, 'An origin (scheme://host[:port]) whose browser apps may call discovery, the key set, /token, /par, /userinfo, /introspect and /revoke (CORS); repeatable. Without it any origin may (a test IdP''s default; said on stderr at start)')
            [CompletionResult]::new('--registration-token', '--registration-token', [CompletionResultType]::ParameterName, 'Dynamic client registration (RFC 7591, POST /register) needs this initial access token (the file''s first line) as a Bearer token. Without it registration is open')
            [CompletionResult]::new('--max-age', '--max-age', [CompletionResultType]::ParameterName, 'Cache-Control max-age of the JWKS')
            [CompletionResult]::new('--issuer', '--issuer', [CompletionResultType]::ParameterName, 'The issuer, used exactly as given (a trailing slash kept) in tokens and discovery; its path is honoured: discovery at {issuer}/.well-known/openid-configuration and the key set under the same prefix (default: http://ADDR as bound)')
            [CompletionResult]::new('--jwks-path', '--jwks-path', [CompletionResultType]::ParameterName, 'Also serve the key set at PATH (repeatable), where a real provider keeps it: /oauth2/v1/keys, /realms/NAME/protocol/openid-connect/certs, ...')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Serve HTTPS with this certificate chain (PEM), read again on SIGHUP')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'The private key (PEM) of --tls-cert')
            [CompletionResult]::new('--tls-ca-out', '--tls-ca-out', [CompletionResultType]::ParameterName, 'Where --tls-self-signed writes the CA certificate')
            [CompletionResult]::new('--header-timeout', '--header-timeout', [CompletionResultType]::ParameterName, 'A request''s head must arrive within this, and a kept-alive connection that stays idle this long is closed')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'A whole request (its body included) must be read and answered within this (else 408)')
            [CompletionResult]::new('--body-timeout', '--body-timeout', [CompletionResultType]::ParameterName, 'A request body sent without the upload token must arrive whole within this (else 408); requests bearing the upload token have --request-timeout')
            [CompletionResult]::new('--max-connections', '--max-connections', [CompletionResultType]::ParameterName, 'At most this many open connections; when full, the one making the least progress (fewest bytes per second, inside a request or not; connections under a second old are spared) is closed to make room')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('--issue-tokens', '--issue-tokens', [CompletionResultType]::ParameterName, 'Keep a signing key of the server''s own and answer POST /auth with tokens')
            [CompletionResult]::new('--allow-claim-override', '--allow-claim-override', [CompletionResultType]::ParameterName, 'Let /auth requests set iss, iat, exp and nbf (and the --token-claims) themselves (with --issue-tokens)')
            [CompletionResult]::new('--idp', '--idp', [CompletionResultType]::ParameterName, 'Also be a test OpenID Connect provider: discovery, /authorize with a login page, /token (client_credentials, authorization_code with PKCE, refresh_token, token exchange), /userinfo, /introspect, /revoke, /logout; tokens signed by the server''s key (implies --issue-tokens). Without --idp-config any client id and secret are accepted')
            [CompletionResult]::new('--opaque-access-tokens', '--opaque-access-tokens', [CompletionResultType]::ParameterName, 'Issue opaque access tokens (random strings, checked by /userinfo and /introspect) instead of JWTs (RFC 9068)')
            [CompletionResult]::new('--tls-self-signed', '--tls-self-signed', [CompletionResultType]::ParameterName, 'Serve HTTPS with a certificate from a throwaway CA made at start, for the server''s host names; the CA certificate is written to --tls-ca-out (default: tls-ca.pem in the data directory), for clients to trust (verify-jwt --cacert)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'jwkit;completions' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'jwkit;man' {
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'Write jwkit.1 and one page per command into DIR instead of printing jwkit.1')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Replace pages that already exist in --out DIR')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Errors keep every layer of their cause (network errors are otherwise one line)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'jwkit;help' {
            [CompletionResult]::new('generate-key', 'generate-key', [CompletionResultType]::ParameterValue, 'Generate a key pair or HMAC secret as PEM, JWK or JWKS')
            [CompletionResult]::new('generate-jwt', 'generate-jwt', [CompletionResultType]::ParameterValue, 'Sign a JWT: claims from flags, JSON or stdin; the compact token on stdout')
            [CompletionResult]::new('verify-jwt', 'verify-jwt', [CompletionResultType]::ParameterValue, 'Verify a token: signature, algorithm and claims, against a key, a key set, a JWKS URL, an OIDC issuer or a jwkit server')
            [CompletionResult]::new('resign', 'resign', [CompletionResultType]::ParameterValue, 'Give a token a new signature from a new key, claims kept byte for byte unless asked otherwise; with --scan, every token in any text (HAR files, logs, HTTP dumps)')
            [CompletionResult]::new('proxy', 'proxy', [CompletionResultType]::ParameterValue, 'Re-sign tokens live: an HTTP proxy that re-signs every token in the requests and responses passing through it, by the rules of `resign --scan`')
            [CompletionResult]::new('decode', 'decode', [CompletionResultType]::ParameterValue, 'Show a token''s header and claims, with readable times. Never verifies the signature')
            [CompletionResult]::new('key', 'key', [CompletionResultType]::ParameterValue, 'Inspect, convert and publish keys')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run a JWKS server: publish keys, take authenticated uploads, issue test tokens')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script to stdout')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print the man page, or write one page per command into a directory')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'jwkit;help;generate-key' {
            break
        }
        'jwkit;help;generate-jwt' {
            break
        }
        'jwkit;help;verify-jwt' {
            break
        }
        'jwkit;help;resign' {
            break
        }
        'jwkit;help;proxy' {
            break
        }
        'jwkit;help;decode' {
            break
        }
        'jwkit;help;key' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the keys in the key store: kid, type, alg, created')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one stored key: metadata and its public JWK (--private for the private JWK)')
            [CompletionResult]::new('public', 'public', [CompletionResultType]::ParameterValue, 'Print the public half of a key')
            [CompletionResult]::new('thumbprint', 'thumbprint', [CompletionResultType]::ParameterValue, 'Print a key''s RFC 7638 thumbprint')
            [CompletionResult]::new('convert', 'convert', [CompletionResultType]::ParameterValue, 'Convert a key between PEM, JWK and JWKS')
            [CompletionResult]::new('jwks', 'jwks', [CompletionResultType]::ParameterValue, 'Merge keys and files into one public JWKS (a duplicate kid is an error)')
            [CompletionResult]::new('upload', 'upload', [CompletionResultType]::ParameterValue, 'Upload a stored key''s public half to a jwkit server')
            break
        }
        'jwkit;help;key;list' {
            break
        }
        'jwkit;help;key;show' {
            break
        }
        'jwkit;help;key;public' {
            break
        }
        'jwkit;help;key;thumbprint' {
            break
        }
        'jwkit;help;key;convert' {
            break
        }
        'jwkit;help;key;jwks' {
            break
        }
        'jwkit;help;key;upload' {
            break
        }
        'jwkit;help;serve' {
            break
        }
        'jwkit;help;completions' {
            break
        }
        'jwkit;help;man' {
            break
        }
        'jwkit;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
