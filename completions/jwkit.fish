# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_jwkit_global_optspecs
    string join \n color= v/verbose h/help V/version
end

function __fish_jwkit_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_jwkit_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_jwkit_using_subcommand
    set -l cmd (__fish_jwkit_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c jwkit -n "__fish_jwkit_needs_command" -l color -d 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c jwkit -n "__fish_jwkit_needs_command" -s v -l verbose -d 'Errors keep every layer of their cause (network errors are otherwise one line)'
complete -c jwkit -n "__fish_jwkit_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c jwkit -n "__fish_jwkit_needs_command" -s V -l version -d 'Print version'
complete -c jwkit -n "__fish_jwkit_needs_command" -f -a "generate-key" -d 'Generate a key pair or HMAC secret as PEM, JWK or JWKS'
complete -c jwkit -n "__fish_jwkit_needs_command" -f -a "genkey" -d 'Generate a key pair or HMAC secret as PEM, JWK or JWKS'
complete -c jwkit -n "__fish_jwkit_needs_command" -f -a "generate-jwt" -d 'Sign a JWT: claims from flags, JSON or stdin; the compact token on stdout'
complete -c jwkit -n "__fish_jwkit_needs_command" -f -a "verify-jwt" -d 'Verify a token: signature, algorithm and claims, against a key, a key set, a JWKS URL, an OIDC issuer or a jwkit server'
complete -c jwkit -n "__fish_jwkit_needs_command" -f -a "resign" -d 'Give a token a new signature from a new key, claims kept byte for byte unless asked otherwise; with --scan, every token in any text (HAR files, logs, HTTP dumps)'
complete -c jwkit -n "__fish_jwkit_needs_command" -f -a "proxy" -d 'Re-sign tokens live: an HTTP proxy that re-signs every token in the requests and responses passing through it, by the rules of `resign --scan`'
complete -c jwkit -n "__fish_jwkit_needs_command" -f -a "decode" -d 'Show a token\'s header and claims, with readable times. Never verifies the signature'
complete -c jwkit -n "__fish_jwkit_needs_command" -f -a "key" -d 'Inspect, convert and publish keys'
complete -c jwkit -n "__fish_jwkit_needs_command" -f -a "serve" -d 'Run a JWKS server: publish keys, take authenticated uploads, issue test tokens'
complete -c jwkit -n "__fish_jwkit_needs_command" -f -a "completions" -d 'Print a shell completion script to stdout'
complete -c jwkit -n "__fish_jwkit_needs_command" -f -a "man" -d 'Print the man page, or write one page per command into a directory'
complete -c jwkit -n "__fish_jwkit_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-key" -s t -l type -d 'Key type' -r -f -a "rsa\t''
ec\t''
ed25519\t''
x25519\t'An X25519 key for JWE (ECDH-ES), written as a JWK (use: enc)'
hmac\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-key" -l bits -d 'RSA modulus size (2048, 3072, 4096; default 2048), or HMAC secret size in bits (default: the hash size of --alg, 256 for HS256)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-key" -l curve -d 'EC curve (default P-256)' -r -f -a "P-256\t''
P-384\t''
P-521\t''
secp256k1\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-key" -l alg -d 'Algorithm to record in the JWK, restricting the key to it (default: none recorded; the key type\'s default RS256, ES256, ES384, ES512, ES256K, EdDSA or HS256 applies). A JWE key-management algorithm (RSA-OAEP-256, ECDH-ES+A256KW, A128KW, dir, ...) makes an encryption key (use: enc); for --type hmac it sets the key\'s size' -r -f -a "HS256\t''
HS384\t''
HS512\t''
RS256\t''
RS384\t''
RS512\t''
PS256\t''
PS384\t''
PS512\t''
ES256\t''
ES384\t''
ES512\t''
ES256K\t''
EdDSA\t''
RSA-OAEP\t''
RSA-OAEP-256\t''
RSA-OAEP-384\t''
RSA-OAEP-512\t''
ECDH-ES\t''
ECDH-ES+A128KW\t''
ECDH-ES+A192KW\t''
ECDH-ES+A256KW\t''
A128KW\t''
A192KW\t''
A256KW\t''
A128GCMKW\t''
A192GCMKW\t''
A256GCMKW\t''
dir\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-key" -l kid -d 'Key ID (default: the RFC 7638 SHA-256 thumbprint)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-key" -l use -d 'Public key use recorded in the JWK' -r -f -a "sig\t'Signatures: the key never decrypts'
enc\t'Encryption (JWE): the key never signs or verifies'"
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-key" -s f -l format -d 'Output format of the private key (and of --public-out)' -r -f -a "pem\t'PKCS#8 for private keys, SPKI for public keys'
jwk\t'One JSON Web Key'
jwks\t'A JSON Web Key Set holding the key'"
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-key" -s o -l out -d 'Write the private key to FILE (mode 0600) instead of stdout' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-key" -l public-out -d 'Also write the public key to FILE' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-key" -l upload -d 'Upload the public key to this jwkit server ({URL}/jwks) and print the kid; with no URL, $JWKIT_SERVER' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-key" -l upload-token-file -d 'The upload token (else $JWKIT_UPLOAD_TOKEN)' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-key" -l color -d 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-key" -l save -d 'Keep the key in the key store ($JWKIT_HOME/keys) and print its kid'
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-key" -l force -d 'Overwrite existing files (and a stored key with the same kid)'
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-key" -l insecure -d 'Allow HMAC secrets shorter than the hash size (warns). RSA keys under 2048 bits are never generated: jwkit refuses to load them'
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-key" -s v -l verbose -d 'Errors keep every layer of their cause (network errors are otherwise one line)'
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-key" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-key" -s V -l version -d 'Print version'
complete -c jwkit -n "__fish_jwkit_using_subcommand genkey" -s t -l type -d 'Key type' -r -f -a "rsa\t''
ec\t''
ed25519\t''
x25519\t'An X25519 key for JWE (ECDH-ES), written as a JWK (use: enc)'
hmac\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand genkey" -l bits -d 'RSA modulus size (2048, 3072, 4096; default 2048), or HMAC secret size in bits (default: the hash size of --alg, 256 for HS256)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand genkey" -l curve -d 'EC curve (default P-256)' -r -f -a "P-256\t''
P-384\t''
P-521\t''
secp256k1\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand genkey" -l alg -d 'Algorithm to record in the JWK, restricting the key to it (default: none recorded; the key type\'s default RS256, ES256, ES384, ES512, ES256K, EdDSA or HS256 applies). A JWE key-management algorithm (RSA-OAEP-256, ECDH-ES+A256KW, A128KW, dir, ...) makes an encryption key (use: enc); for --type hmac it sets the key\'s size' -r -f -a "HS256\t''
HS384\t''
HS512\t''
RS256\t''
RS384\t''
RS512\t''
PS256\t''
PS384\t''
PS512\t''
ES256\t''
ES384\t''
ES512\t''
ES256K\t''
EdDSA\t''
RSA-OAEP\t''
RSA-OAEP-256\t''
RSA-OAEP-384\t''
RSA-OAEP-512\t''
ECDH-ES\t''
ECDH-ES+A128KW\t''
ECDH-ES+A192KW\t''
ECDH-ES+A256KW\t''
A128KW\t''
A192KW\t''
A256KW\t''
A128GCMKW\t''
A192GCMKW\t''
A256GCMKW\t''
dir\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand genkey" -l kid -d 'Key ID (default: the RFC 7638 SHA-256 thumbprint)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand genkey" -l use -d 'Public key use recorded in the JWK' -r -f -a "sig\t'Signatures: the key never decrypts'
enc\t'Encryption (JWE): the key never signs or verifies'"
complete -c jwkit -n "__fish_jwkit_using_subcommand genkey" -s f -l format -d 'Output format of the private key (and of --public-out)' -r -f -a "pem\t'PKCS#8 for private keys, SPKI for public keys'
jwk\t'One JSON Web Key'
jwks\t'A JSON Web Key Set holding the key'"
complete -c jwkit -n "__fish_jwkit_using_subcommand genkey" -s o -l out -d 'Write the private key to FILE (mode 0600) instead of stdout' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand genkey" -l public-out -d 'Also write the public key to FILE' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand genkey" -l upload -d 'Upload the public key to this jwkit server ({URL}/jwks) and print the kid; with no URL, $JWKIT_SERVER' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand genkey" -l upload-token-file -d 'The upload token (else $JWKIT_UPLOAD_TOKEN)' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand genkey" -l color -d 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand genkey" -l save -d 'Keep the key in the key store ($JWKIT_HOME/keys) and print its kid'
complete -c jwkit -n "__fish_jwkit_using_subcommand genkey" -l force -d 'Overwrite existing files (and a stored key with the same kid)'
complete -c jwkit -n "__fish_jwkit_using_subcommand genkey" -l insecure -d 'Allow HMAC secrets shorter than the hash size (warns). RSA keys under 2048 bits are never generated: jwkit refuses to load them'
complete -c jwkit -n "__fish_jwkit_using_subcommand genkey" -s v -l verbose -d 'Errors keep every layer of their cause (network errors are otherwise one line)'
complete -c jwkit -n "__fish_jwkit_using_subcommand genkey" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c jwkit -n "__fish_jwkit_using_subcommand genkey" -s V -l version -d 'Print version'
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l key-file -d 'Signing key file: PEM, DER, JWK or JWKS (pick with --kid), recognised by content; `-` reads stdin' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l key -d 'Sign with the stored key with this kid (see `jwkit key list`)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l secret-file -d 'HMAC secret: the raw bytes of FILE (`-` for stdin)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l secret-env -d 'HMAC secret: the value of the environment variable VAR (secrets never go in argv)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l kid -d 'Header kid (default: the key\'s kid, else its RFC 7638 thumbprint). With a JWKS key file, also picks the key' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l alg -d 'Signature algorithm (default: from the key: RS256, ES256, ES384, ES512, ES256K, EdDSA or HS256, or the key\'s JWK alg)' -r -f -a "HS256\t''
HS384\t''
HS512\t''
RS256\t''
RS384\t''
RS512\t''
PS256\t''
PS384\t''
PS512\t''
ES256\t''
ES384\t''
ES512\t''
ES256K\t''
EdDSA\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l typ -d 'Header typ; an empty value leaves typ out' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l header -d 'Extra header member (VALUE is JSON when it parses as JSON, else a string). alg, crit and b64 are refused; use --kid and --typ for those' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -s c -l claim -d 'A claim; VALUE is JSON when it parses as JSON (admin=true, n=5, roles=["a"]), else a string' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l claim-str -d 'A claim whose VALUE is always a string' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l claims -d 'Claims as a JSON object: inline, @FILE, or - for stdin. Flags win over its members' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l iss -d 'Issuer (iss)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l sub -d 'Subject (sub)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l aud -d 'Audience (aud); repeat for an array' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l jti -d 'Token ID (jti); with no value, a random 128-bit ID' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l exp -d 'Expiry (exp), as WHEN (default: 1h from now, so the token passes verify-jwt, which requires exp)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l nbf -d 'Not before (nbf), as WHEN' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l iat -d 'Issued at (iat), as WHEN (default: now)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l encrypt-key-file -d 'Sign, then encrypt the token to this key (a nested JWT, cty JWT): a public or private RSA, EC or X25519 key, or a symmetric key (PEM, JWK, or a JWK set: the first key that can encrypt)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l encrypt-key -d 'Sign, then encrypt the token to this encryption key in the key store (by kid or thumbprint; made with generate-key --use enc --save)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l jwe-alg -d 'The JWE key management algorithm (default: the key\'s JWK alg, else RSA-OAEP-256 for RSA, ECDH-ES+A256KW for EC and X25519, A128KW/A192KW/A256KW by a symmetric key\'s size)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l jwe-enc -d 'The JWE content encryption (default A256GCM)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l htm -d 'The HTTP method of the request a DPoP proof is for (GET, POST, ...)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l htu -d 'The URI of the request a DPoP proof is for (its query and fragment are left out)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l ath -d 'The access token the request presents: the proof gets its hash (ath)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l color -d 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l insecure -d 'Accept an HMAC secret shorter than RFC 7518 §3.2 asks (32 bytes for HS256), such as an app\'s existing secret, with a warning (verify-jwt: also decrypt RSA1_5 JWEs)'
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l secret-base64 -d 'The --secret-file or --secret-env value is base64 (standard or URL-safe, padded or not, as `kubectl get secret -o yaml` shows it); the decoded bytes are the secret'
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l no-kid -d 'Leave kid out of the header'
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l no-exp -d 'Leave exp out (a token that never expires; verify-jwt then needs --ignore-exp)'
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l no-iat -d 'Leave iat out'
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l expired -d 'A token that expired an hour ago (iat two hours ago), for testing rejections'
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -l dpop-proof -d 'Make a DPoP proof (RFC 9449) for one request instead of a token: typ dpop+jwt, the key\'s public JWK in the header, claims jti, htm, htu, iat (--iat dates it), ath with --ath, and what --claim adds (a server\'s nonce=...). Needs --htm, --htu and an asymmetric key'
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -s v -l verbose -d 'Errors keep every layer of their cause (network errors are otherwise one line)'
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c jwkit -n "__fish_jwkit_using_subcommand generate-jwt" -s V -l version -d 'Print version'
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l token -d 'The token, as a flag' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l key-file -d 'A key file (PEM, DER, JWK; a private key\'s public half is used) or a JWKS file' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l key -d 'The stored key with this kid' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l jwks-file -d 'A JWKS file' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l jwks-url -d 'A JWKS URL [env: JWKIT_JWKS_URL]' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l issuer -d 'An OIDC issuer: its discovery document names the JWKS, and the token\'s iss must match' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l server -d 'A jwkit server: its /.well-known/jwks.json [env: JWKIT_SERVER]' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l secret-file -d 'An HMAC secret: the raw bytes of FILE (`-` for stdin)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l secret-env -d 'An HMAC secret: the value of the environment variable VAR' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l alg -d 'Allowed algorithm (repeatable); default: whatever the selected key supports' -r -f -a "HS256\t''
HS384\t''
HS512\t''
RS256\t''
RS384\t''
RS512\t''
PS256\t''
PS384\t''
PS512\t''
ES256\t''
ES384\t''
ES512\t''
ES256K\t''
EdDSA\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l iss -d 'Required issuer (iss)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l aud -d 'Accepted audience (repeatable); the token\'s aud must hold one of them. A token that has aud is rejected unless --aud names one of its values or --any-aud is given (RFC 7519 §4.1.3)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l sub -d 'Required subject (sub)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l typ -d 'Required header typ (compared without case, with or without "application/")' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l leeway -d 'Clock skew tolerated for exp and nbf' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l require -d 'A claim that must be present (repeatable)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l at -d 'Judge exp, nbf and iat as of WHEN instead of now (a capture\'s time, for example)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l threads -d 'Threads for --batch (default: all cores)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l decrypt-key-file -d 'Decrypt JWEs with this private or symmetric key (PEM, JWK or JWK set; the JWE\'s kid picks from a set). `-` reads stdin' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l decrypt-key -d 'Decrypt JWEs with this encryption key from the key store (by kid or thumbprint)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l password-file -d 'Decrypt PBES2 JWEs with the password in this file (one trailing newline is dropped). A PBES2 token re-signed is encrypted again to --encrypt-key-file or --encrypt-key' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l dpop -d 'Also check the DPoP proof the token was presented with (RFC 9449): its signature by its own jwk, typ, htm, htu, iat within 5 minutes (of --at), ath the token\'s hash, and the token bound to its key (cnf.jkt its thumbprint)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l htm -d 'The method of the request the token and its DPoP proof came with' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l htu -d 'The URI of the request the token and its DPoP proof came with' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l timeout -d 'The whole of each HTTP fetch (name resolution, connecting, TLS, headers and body) must finish within this' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l cacert -d 'Extra trusted CA certificates (PEM) for HTTPS, besides the system roots' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l color -d 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l insecure -d 'Accept an HMAC secret shorter than RFC 7518 §3.2 asks (32 bytes for HS256), such as an app\'s existing secret, with a warning (verify-jwt: also decrypt RSA1_5 JWEs)'
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l secret-base64 -d 'The --secret-file or --secret-env value is base64 (standard or URL-safe, padded or not, as `kubectl get secret -o yaml` shows it); the decoded bytes are the secret'
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l any-aud -d 'Accept a token whatever its aud says (the caller does not identify itself by audience)'
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l ignore-exp -d 'Accept tokens that have expired or have no exp (warns)'
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l raw -d 'Verify the signature only: the payload need not be JWT claims (it is printed as is), and no claim is checked'
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l batch -d 'Tokens one per line; one result per line, in input order'
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l json -d 'JSON on stdout: {"valid":true,"kid":..,"alg":..,"claims":{..}} or {"valid":false,"error":{"kind":..,"message":..}}; one object per line with --batch'
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l allow-unsigned -d 'Accept an encrypted-only JWT (no signature inside) under a public-key algorithm (RSA-OAEP, ECDH-ES), which anyone with the public key can make (warns)'
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l no-cache -d 'Neither read nor write the JWKS cache'
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -l allow-http -d 'Allow plain-HTTP key sets off loopback (warns)'
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -s v -l verbose -d 'Errors keep every layer of their cause (network errors are otherwise one line)'
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c jwkit -n "__fish_jwkit_using_subcommand verify-jwt" -s V -l version -d 'Print version'
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l scan -d 'Re-sign every token in a text (a file, or `-`/nothing for stdin) and write the text back' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -s o -l out -d 'Write the result to FILE (atomically) instead of stdout' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l threads -d 'Threads for --scan (default: all cores)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l format -d 'What --scan reads: auto (recognised by content), text, http (a stream of raw HTTP messages: Content-Length is fixed) or har (HAR 1.2: bodySize and content.size are fixed)' -r -f -a "auto\t''
text\t''
http\t''
har\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l key-file -d 'Signing key file: PEM, DER, JWK or JWKS (pick with --kid), recognised by content; `-` reads stdin' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l key -d 'Sign with the stored key with this kid (see `jwkit key list`)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l secret-file -d 'HMAC secret: the raw bytes of FILE (`-` for stdin)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l secret-env -d 'HMAC secret: the value of the environment variable VAR (secrets never go in argv)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l decrypt-key-file -d 'Decrypt JWEs with this private or symmetric key (PEM, JWK or JWK set; the JWE\'s kid picks from a set). `-` reads stdin' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l decrypt-key -d 'Decrypt JWEs with this encryption key from the key store (by kid or thumbprint)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l password-file -d 'Decrypt PBES2 JWEs with the password in this file (one trailing newline is dropped). A PBES2 token re-signed is encrypted again to --encrypt-key-file or --encrypt-key' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l encrypt-key-file -d 'Encrypt the re-signed nested token to this key instead of the one it was encrypted to' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l encrypt-key -d 'Encrypt the re-signed nested token to this stored encryption key (by kid) instead' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l kid -d 'The new header kid (default: the new key\'s kid, else its thumbprint). With a JWKS key file, also picks the key' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l alg -d 'The new algorithm (default: from the new key)' -r -f -a "HS256\t''
HS384\t''
HS512\t''
RS256\t''
RS384\t''
RS512\t''
PS256\t''
PS384\t''
PS512\t''
ES256\t''
ES384\t''
ES512\t''
ES256K\t''
EdDSA\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l lifetime -d 'For --refresh of a token with exp but neither iat nor nbf (its lifetime unknown): exp becomes now + DUR' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l exp -d 'Set exp, as WHEN (after --refresh)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l set -d 'Set a claim; VALUE is JSON when it parses as JSON, else a string (repeatable)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l unset -d 'Remove a claim (repeatable)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l verify-with -d 'The old signature must verify first, against a key or JWKS file, or a JWKS URL' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l key-for -d 'Re-sign old tokens matching MATCH with KEY (repeatable): MATCH is alg:ALG, kid:KID or iss:ISS (of the old token); KEY is file:PATH, secret-file:PATH, secret-env:VAR or store:KID. A token no rule matches is left as it is, unless a default key is given' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l only -d 'With --scan or --goreplay: re-sign only tokens in this place (repeatable): json:NAME (a JSON member, at any depth, also in JSON held in strings and in base64 bodies), header:NAME, cookie:NAME, param:NAME (query string or form field)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l match-alg -d 'Re-sign only tokens whose header alg is ALG (repeatable)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l match-kid -d 'Re-sign only tokens whose header kid is KID (repeatable)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l match-iss -d 'Re-sign only tokens whose iss claim is ISS (repeatable)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l timeout -d 'The whole of each HTTP fetch (name resolution, connecting, TLS, headers and body) must finish within this' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l cacert -d 'Extra trusted CA certificates (PEM) for HTTPS, besides the system roots' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l color -d 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l force -d 'Overwrite --out if it exists'
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l goreplay -d 'Speak GoReplay\'s middleware protocol on stdin and stdout (`gor --middleware "jwkit resign --goreplay --key-file K"`): one hex-encoded message per line; requests come back with their tokens re-signed and Content-Length fixed, each flushed as it is done; other messages come back unchanged'
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l insecure -d 'Accept an HMAC secret shorter than RFC 7518 §3.2 asks (32 bytes for HS256), such as an app\'s existing secret, with a warning (verify-jwt: also decrypt RSA1_5 JWEs)'
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l secret-base64 -d 'The --secret-file or --secret-env value is base64 (standard or URL-safe, padded or not, as `kubectl get secret -o yaml` shows it); the decoded bytes are the secret'
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l keep-kid -d 'Keep the token\'s own kid'
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l refresh -d 'Make the token current: iat becomes now, and nbf and exp move by as much, so the lifetime is kept'
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l no-cache -d 'Neither read nor write the JWKS cache'
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -l allow-http -d 'Allow plain-HTTP key sets off loopback (warns)'
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -s v -l verbose -d 'Errors keep every layer of their cause (network errors are otherwise one line)'
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c jwkit -n "__fish_jwkit_using_subcommand resign" -s V -l version -d 'Print version'
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l listen -d 'Where to listen (host:port; loopback unless told otherwise)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l upstream -d 'Be a reverse proxy for this origin (http:// or https://): every request goes there. Without it, a forward proxy' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l side -d 'Re-sign the tokens of requests, of responses, or of both' -r -f -a "request\t''
response\t''
both\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l intercept-ca -d 'Forward proxy: terminate CONNECT tunnels with certificates signed by this CA (PEM), so HTTPS traffic is re-signed too (with --intercept-key)' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l intercept-key -d 'The private key (PEM) of --intercept-ca' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l intercept-ca-out -d 'Where --intercept-self-signed writes its CA certificate' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l max-body -d 'Bodies larger than this (and server-sent event streams, WebSocket connections) pass through untouched; also the cap on a decoded (gzip, deflate, br) body' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l upstream-timeout -d 'An upstream must connect and send its answer\'s head within this (else 504)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l header-timeout -d 'A request\'s head must arrive within this; an idle kept-alive connection closes after it' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l body-timeout -d 'A request\'s body must arrive within this (else 408)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l max-connections -d 'At most this many open connections; when full, the one making the least progress is closed to make room' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l key-file -d 'Signing key file: PEM, DER, JWK or JWKS (pick with --kid), recognised by content; `-` reads stdin' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l key -d 'Sign with the stored key with this kid (see `jwkit key list`)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l secret-file -d 'HMAC secret: the raw bytes of FILE (`-` for stdin)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l secret-env -d 'HMAC secret: the value of the environment variable VAR (secrets never go in argv)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l decrypt-key-file -d 'Decrypt JWEs with this private or symmetric key (PEM, JWK or JWK set; the JWE\'s kid picks from a set). `-` reads stdin' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l decrypt-key -d 'Decrypt JWEs with this encryption key from the key store (by kid or thumbprint)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l password-file -d 'Decrypt PBES2 JWEs with the password in this file (one trailing newline is dropped). A PBES2 token re-signed is encrypted again to --encrypt-key-file or --encrypt-key' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l encrypt-key-file -d 'Encrypt the re-signed nested token to this key instead of the one it was encrypted to' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l encrypt-key -d 'Encrypt the re-signed nested token to this stored encryption key (by kid) instead' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l kid -d 'The new header kid (default: the new key\'s kid, else its thumbprint). With a JWKS key file, also picks the key' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l alg -d 'The new algorithm (default: from the new key)' -r -f -a "HS256\t''
HS384\t''
HS512\t''
RS256\t''
RS384\t''
RS512\t''
PS256\t''
PS384\t''
PS512\t''
ES256\t''
ES384\t''
ES512\t''
ES256K\t''
EdDSA\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l lifetime -d 'For --refresh of a token with exp but neither iat nor nbf (its lifetime unknown): exp becomes now + DUR' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l exp -d 'Set exp, as WHEN (after --refresh)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l set -d 'Set a claim; VALUE is JSON when it parses as JSON, else a string (repeatable)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l unset -d 'Remove a claim (repeatable)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l verify-with -d 'The old signature must verify first, against a key or JWKS file, or a JWKS URL' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l key-for -d 'Re-sign old tokens matching MATCH with KEY (repeatable): MATCH is alg:ALG, kid:KID or iss:ISS (of the old token); KEY is file:PATH, secret-file:PATH, secret-env:VAR or store:KID. A token no rule matches is left as it is, unless a default key is given' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l only -d 'With --scan or --goreplay: re-sign only tokens in this place (repeatable): json:NAME (a JSON member, at any depth, also in JSON held in strings and in base64 bodies), header:NAME, cookie:NAME, param:NAME (query string or form field)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l match-alg -d 'Re-sign only tokens whose header alg is ALG (repeatable)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l match-kid -d 'Re-sign only tokens whose header kid is KID (repeatable)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l match-iss -d 'Re-sign only tokens whose iss claim is ISS (repeatable)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l timeout -d 'The whole of each HTTP fetch (name resolution, connecting, TLS, headers and body) must finish within this' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l cacert -d 'Extra trusted CA certificates (PEM) for HTTPS, besides the system roots' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l color -d 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l intercept-self-signed -d 'Forward proxy: terminate CONNECT tunnels with a throwaway CA made at start, written to --intercept-ca-out for clients to trust'
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l insecure-upstream -d 'Do not verify the upstream\'s TLS certificate (warns)'
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l forwarded -d 'Add Forwarded and X-Forwarded-For headers (by default no header is added)'
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l insecure -d 'Accept an HMAC secret shorter than RFC 7518 §3.2 asks (32 bytes for HS256), such as an app\'s existing secret, with a warning (verify-jwt: also decrypt RSA1_5 JWEs)'
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l secret-base64 -d 'The --secret-file or --secret-env value is base64 (standard or URL-safe, padded or not, as `kubectl get secret -o yaml` shows it); the decoded bytes are the secret'
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l keep-kid -d 'Keep the token\'s own kid'
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l refresh -d 'Make the token current: iat becomes now, and nbf and exp move by as much, so the lifetime is kept'
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l no-cache -d 'Neither read nor write the JWKS cache'
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -l allow-http -d 'Allow plain-HTTP key sets off loopback (warns)'
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -s v -l verbose -d 'Errors keep every layer of their cause (network errors are otherwise one line)'
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c jwkit -n "__fish_jwkit_using_subcommand proxy" -s V -l version -d 'Print version'
complete -c jwkit -n "__fish_jwkit_using_subcommand decode" -l decrypt-key-file -d 'Decrypt JWEs with this private or symmetric key (PEM, JWK or JWK set; the JWE\'s kid picks from a set). `-` reads stdin' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand decode" -l decrypt-key -d 'Decrypt JWEs with this encryption key from the key store (by kid or thumbprint)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand decode" -l password-file -d 'Decrypt PBES2 JWEs with the password in this file (one trailing newline is dropped). A PBES2 token re-signed is encrypted again to --encrypt-key-file or --encrypt-key' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand decode" -l color -d 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand decode" -l json -d 'One JSON document: {header, claims, signature, times}; for a JWE also jwe_header'
complete -c jwkit -n "__fish_jwkit_using_subcommand decode" -l plaintext -d 'Write a JWE\'s decrypted plaintext to stdout, byte for byte (for scripts)'
complete -c jwkit -n "__fish_jwkit_using_subcommand decode" -l insecure -d 'Also decrypt RSA1_5 (PKCS#1 v1.5 key transport, open to padding-oracle attacks)'
complete -c jwkit -n "__fish_jwkit_using_subcommand decode" -s v -l verbose -d 'Errors keep every layer of their cause (network errors are otherwise one line)'
complete -c jwkit -n "__fish_jwkit_using_subcommand decode" -s h -l help -d 'Print help'
complete -c jwkit -n "__fish_jwkit_using_subcommand decode" -s V -l version -d 'Print version'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and not __fish_seen_subcommand_from list show public thumbprint convert jwks upload help" -l color -d 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and not __fish_seen_subcommand_from list show public thumbprint convert jwks upload help" -s v -l verbose -d 'Errors keep every layer of their cause (network errors are otherwise one line)'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and not __fish_seen_subcommand_from list show public thumbprint convert jwks upload help" -s h -l help -d 'Print help'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and not __fish_seen_subcommand_from list show public thumbprint convert jwks upload help" -s V -l version -d 'Print version'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and not __fish_seen_subcommand_from list show public thumbprint convert jwks upload help" -f -a "list" -d 'List the keys in the key store: kid, type, alg, created'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and not __fish_seen_subcommand_from list show public thumbprint convert jwks upload help" -f -a "show" -d 'Show one stored key: metadata and its public JWK (--private for the private JWK)'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and not __fish_seen_subcommand_from list show public thumbprint convert jwks upload help" -f -a "public" -d 'Print the public half of a key'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and not __fish_seen_subcommand_from list show public thumbprint convert jwks upload help" -f -a "thumbprint" -d 'Print a key\'s RFC 7638 thumbprint'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and not __fish_seen_subcommand_from list show public thumbprint convert jwks upload help" -f -a "convert" -d 'Convert a key between PEM, JWK and JWKS'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and not __fish_seen_subcommand_from list show public thumbprint convert jwks upload help" -f -a "jwks" -d 'Merge keys and files into one public JWKS (a duplicate kid is an error)'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and not __fish_seen_subcommand_from list show public thumbprint convert jwks upload help" -f -a "upload" -d 'Upload a stored key\'s public half to a jwkit server'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and not __fish_seen_subcommand_from list show public thumbprint convert jwks upload help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from list" -l color -d 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from list" -l json -d 'One JSON document instead of a table'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Errors keep every layer of their cause (network errors are otherwise one line)'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from show" -l color -d 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from show" -l private -d 'Include the private JWK'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Errors keep every layer of their cause (network errors are otherwise one line)'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from public" -l key -d 'Use the stored key with this kid (see `jwkit key list`)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from public" -l kid -d 'Pick the key with this kid when the file is a JWKS' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from public" -s f -l format -d 'Output format' -r -f -a "pem\t'PKCS#8 for private keys, SPKI for public keys'
jwk\t'One JSON Web Key'
jwks\t'A JSON Web Key Set holding the key'"
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from public" -l color -d 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from public" -s v -l verbose -d 'Errors keep every layer of their cause (network errors are otherwise one line)'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from public" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from public" -s V -l version -d 'Print version'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from thumbprint" -l key -d 'Use the stored key with this kid (see `jwkit key list`)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from thumbprint" -l kid -d 'Pick the key with this kid when the file is a JWKS' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from thumbprint" -l hash -d 'Hash function' -r -f -a "sha256\t''
sha384\t''
sha512\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from thumbprint" -l color -d 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from thumbprint" -l uri -d 'Print as an RFC 9278 URI (urn:ietf:params:oauth:jwk-thumbprint:sha-256:...)'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from thumbprint" -s v -l verbose -d 'Errors keep every layer of their cause (network errors are otherwise one line)'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from thumbprint" -s h -l help -d 'Print help'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from thumbprint" -s V -l version -d 'Print version'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from convert" -l key -d 'Use the stored key with this kid (see `jwkit key list`)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from convert" -l kid -d 'Pick the key with this kid when the file is a JWKS' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from convert" -s f -l format -d 'Output format' -r -f -a "pem\t'PKCS#8 for private keys, SPKI for public keys'
jwk\t'One JSON Web Key'
jwks\t'A JSON Web Key Set holding the key'"
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from convert" -l color -d 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from convert" -l public -d 'Output only the public half'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from convert" -s v -l verbose -d 'Errors keep every layer of their cause (network errors are otherwise one line)'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from convert" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from convert" -s V -l version -d 'Print version'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from jwks" -l key -d 'Stored keys to add, by kid (repeatable)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from jwks" -l color -d 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from jwks" -s v -l verbose -d 'Errors keep every layer of their cause (network errors are otherwise one line)'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from jwks" -s h -l help -d 'Print help'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from jwks" -s V -l version -d 'Print version'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from upload" -l server -d 'The server (default: $JWKIT_SERVER)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from upload" -l upload-token-file -d 'The upload token (else $JWKIT_UPLOAD_TOKEN)' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from upload" -l color -d 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from upload" -s v -l verbose -d 'Errors keep every layer of their cause (network errors are otherwise one line)'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from upload" -s h -l help -d 'Print help'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from upload" -s V -l version -d 'Print version'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the keys in the key store: kid, type, alg, created'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show one stored key: metadata and its public JWK (--private for the private JWK)'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "public" -d 'Print the public half of a key'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "thumbprint" -d 'Print a key\'s RFC 7638 thumbprint'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "convert" -d 'Convert a key between PEM, JWK and JWKS'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "jwks" -d 'Merge keys and files into one public JWKS (a duplicate kid is an error)'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "upload" -d 'Upload a stored key\'s public half to a jwkit server'
complete -c jwkit -n "__fish_jwkit_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l addr -d 'Address to listen on (port 0 picks a free one; the URL is printed on stderr)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l data-dir -d 'Where keys are kept (default: server/ under the key store root)' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l store -d 'Keep the keys in PostgreSQL instead (else $JWKIT_STORE), shared by every replica started with the same URL: postgres://USER:PASSWORD@HOST:PORT/DB. The schema is created on first use. TLS: ?sslmode=require (verified; ?sslrootcert=FILE for a private CA), required by default but on loopback' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l store-key-file -d 'The key that seals the server\'s signing keys in the database (AES-256-GCM; at least 32 bytes, e.g. from `openssl rand -base64 32`; else $JWKIT_STORE_KEY). Every replica needs the same one; --issue-tokens with --store needs it' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l upload-token-file -d 'The bearer token uploads and deletes need (else $JWKIT_UPLOAD_TOKEN; with neither, uploads answer 403)' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l alg -d 'The algorithm of the server\'s own signing key (with --issue-tokens; default RS256 with an RSA-2048 key, as most identity providers sign). Any signature alg but HS*' -r -f -a "HS256\t''
HS384\t''
HS512\t''
RS256\t''
RS384\t''
RS512\t''
PS256\t''
PS384\t''
PS512\t''
ES256\t''
ES384\t''
ES512\t''
ES256K\t''
EdDSA\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l rotate-every -d 'Roll the server\'s signing key this often (with --issue-tokens). The next key is published one period before it starts signing, so the period must be at least --max-age' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l grace -d 'How long a rotated-out signing key stays published (with --rotate-every; default and minimum: --token-ttl, so every token it signed verifies until it expires)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l token-ttl -d 'Lifetime of /auth tokens (with --issue-tokens) [default: 15m]' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l token-claims -d 'Server-side claims for /auth tokens (with --issue-tokens): a JSON object, or @FILE holding one, e.g. \'{"iss":"jwks-server","aud":"test-client","sub":"fake-user"}\'. Any claim but iat, exp and nbf; iss may be any string. A request\'s own claims override them only with --allow-claim-override' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l idp-config -d 'The identity provider\'s clients, users, claim templates, scopes, lifetimes and failure injection (TOML, or JSON; see docs/idp.md)' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l cors-origin -d 'An origin (scheme://host[:port]) whose browser apps may call discovery, the key set, /token, /par, /userinfo, /introspect and /revoke (CORS); repeatable. Without it any origin may (a test IdP\'s default; said on stderr at start)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l registration-token -d 'Dynamic client registration (RFC 7591, POST /register) needs this initial access token (the file\'s first line) as a Bearer token. Without it registration is open' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l max-age -d 'Cache-Control max-age of the JWKS' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l issuer -d 'The issuer, used exactly as given (a trailing slash kept) in tokens and discovery; its path is honoured: discovery at {issuer}/.well-known/openid-configuration and the key set under the same prefix (default: http://ADDR as bound)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l jwks-path -d 'Also serve the key set at PATH (repeatable), where a real provider keeps it: /oauth2/v1/keys, /realms/NAME/protocol/openid-connect/certs, ...' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l tls-cert -d 'Serve HTTPS with this certificate chain (PEM), read again on SIGHUP' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l tls-ca-out -d 'Where --tls-self-signed writes the CA certificate' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l header-timeout -d 'A request\'s head must arrive within this, and a kept-alive connection that stays idle this long is closed' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l request-timeout -d 'A whole request (its body included) must be read and answered within this (else 408)' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l body-timeout -d 'A request body sent without the upload token must arrive whole within this (else 408); requests bearing the upload token have --request-timeout' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l max-connections -d 'At most this many open connections; when full, the one making the least progress (fewest bytes per second, inside a request or not; connections under a second old are spared) is closed to make room' -r
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l color -d 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l issue-tokens -d 'Keep a signing key of the server\'s own and answer POST /auth with tokens'
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l allow-claim-override -d 'Let /auth requests set iss, iat, exp and nbf (and the --token-claims) themselves (with --issue-tokens)'
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l idp -d 'Also be a test OpenID Connect provider: discovery, /authorize with a login page, /token (client_credentials, authorization_code with PKCE, refresh_token, token exchange), /userinfo, /introspect, /revoke, /logout; tokens signed by the server\'s key (implies --issue-tokens). Without --idp-config any client id and secret are accepted'
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l opaque-access-tokens -d 'Issue opaque access tokens (random strings, checked by /userinfo and /introspect) instead of JWTs (RFC 9068)'
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -l tls-self-signed -d 'Serve HTTPS with a certificate from a throwaway CA made at start, for the server\'s host names; the CA certificate is written to --tls-ca-out (default: tls-ca.pem in the data directory), for clients to trust (verify-jwt --cacert)'
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -s v -l verbose -d 'Errors keep every layer of their cause (network errors are otherwise one line)'
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c jwkit -n "__fish_jwkit_using_subcommand serve" -s V -l version -d 'Print version'
complete -c jwkit -n "__fish_jwkit_using_subcommand completions" -l color -d 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand completions" -s v -l verbose -d 'Errors keep every layer of their cause (network errors are otherwise one line)'
complete -c jwkit -n "__fish_jwkit_using_subcommand completions" -s h -l help -d 'Print help'
complete -c jwkit -n "__fish_jwkit_using_subcommand completions" -s V -l version -d 'Print version'
complete -c jwkit -n "__fish_jwkit_using_subcommand man" -l out -d 'Write jwkit.1 and one page per command into DIR instead of printing jwkit.1' -r -F
complete -c jwkit -n "__fish_jwkit_using_subcommand man" -l color -d 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c jwkit -n "__fish_jwkit_using_subcommand man" -l force -d 'Replace pages that already exist in --out DIR'
complete -c jwkit -n "__fish_jwkit_using_subcommand man" -s v -l verbose -d 'Errors keep every layer of their cause (network errors are otherwise one line)'
complete -c jwkit -n "__fish_jwkit_using_subcommand man" -s h -l help -d 'Print help'
complete -c jwkit -n "__fish_jwkit_using_subcommand man" -s V -l version -d 'Print version'
complete -c jwkit -n "__fish_jwkit_using_subcommand help; and not __fish_seen_subcommand_from generate-key generate-jwt verify-jwt resign proxy decode key serve completions man help" -f -a "generate-key" -d 'Generate a key pair or HMAC secret as PEM, JWK or JWKS'
complete -c jwkit -n "__fish_jwkit_using_subcommand help; and not __fish_seen_subcommand_from generate-key generate-jwt verify-jwt resign proxy decode key serve completions man help" -f -a "generate-jwt" -d 'Sign a JWT: claims from flags, JSON or stdin; the compact token on stdout'
complete -c jwkit -n "__fish_jwkit_using_subcommand help; and not __fish_seen_subcommand_from generate-key generate-jwt verify-jwt resign proxy decode key serve completions man help" -f -a "verify-jwt" -d 'Verify a token: signature, algorithm and claims, against a key, a key set, a JWKS URL, an OIDC issuer or a jwkit server'
complete -c jwkit -n "__fish_jwkit_using_subcommand help; and not __fish_seen_subcommand_from generate-key generate-jwt verify-jwt resign proxy decode key serve completions man help" -f -a "resign" -d 'Give a token a new signature from a new key, claims kept byte for byte unless asked otherwise; with --scan, every token in any text (HAR files, logs, HTTP dumps)'
complete -c jwkit -n "__fish_jwkit_using_subcommand help; and not __fish_seen_subcommand_from generate-key generate-jwt verify-jwt resign proxy decode key serve completions man help" -f -a "proxy" -d 'Re-sign tokens live: an HTTP proxy that re-signs every token in the requests and responses passing through it, by the rules of `resign --scan`'
complete -c jwkit -n "__fish_jwkit_using_subcommand help; and not __fish_seen_subcommand_from generate-key generate-jwt verify-jwt resign proxy decode key serve completions man help" -f -a "decode" -d 'Show a token\'s header and claims, with readable times. Never verifies the signature'
complete -c jwkit -n "__fish_jwkit_using_subcommand help; and not __fish_seen_subcommand_from generate-key generate-jwt verify-jwt resign proxy decode key serve completions man help" -f -a "key" -d 'Inspect, convert and publish keys'
complete -c jwkit -n "__fish_jwkit_using_subcommand help; and not __fish_seen_subcommand_from generate-key generate-jwt verify-jwt resign proxy decode key serve completions man help" -f -a "serve" -d 'Run a JWKS server: publish keys, take authenticated uploads, issue test tokens'
complete -c jwkit -n "__fish_jwkit_using_subcommand help; and not __fish_seen_subcommand_from generate-key generate-jwt verify-jwt resign proxy decode key serve completions man help" -f -a "completions" -d 'Print a shell completion script to stdout'
complete -c jwkit -n "__fish_jwkit_using_subcommand help; and not __fish_seen_subcommand_from generate-key generate-jwt verify-jwt resign proxy decode key serve completions man help" -f -a "man" -d 'Print the man page, or write one page per command into a directory'
complete -c jwkit -n "__fish_jwkit_using_subcommand help; and not __fish_seen_subcommand_from generate-key generate-jwt verify-jwt resign proxy decode key serve completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c jwkit -n "__fish_jwkit_using_subcommand help; and __fish_seen_subcommand_from key" -f -a "list" -d 'List the keys in the key store: kid, type, alg, created'
complete -c jwkit -n "__fish_jwkit_using_subcommand help; and __fish_seen_subcommand_from key" -f -a "show" -d 'Show one stored key: metadata and its public JWK (--private for the private JWK)'
complete -c jwkit -n "__fish_jwkit_using_subcommand help; and __fish_seen_subcommand_from key" -f -a "public" -d 'Print the public half of a key'
complete -c jwkit -n "__fish_jwkit_using_subcommand help; and __fish_seen_subcommand_from key" -f -a "thumbprint" -d 'Print a key\'s RFC 7638 thumbprint'
complete -c jwkit -n "__fish_jwkit_using_subcommand help; and __fish_seen_subcommand_from key" -f -a "convert" -d 'Convert a key between PEM, JWK and JWKS'
complete -c jwkit -n "__fish_jwkit_using_subcommand help; and __fish_seen_subcommand_from key" -f -a "jwks" -d 'Merge keys and files into one public JWKS (a duplicate kid is an error)'
complete -c jwkit -n "__fish_jwkit_using_subcommand help; and __fish_seen_subcommand_from key" -f -a "upload" -d 'Upload a stored key\'s public half to a jwkit server'
