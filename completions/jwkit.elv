
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
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand generate-key 'Generate a key pair or HMAC secret as PEM, JWK or JWKS'
            cand genkey 'Generate a key pair or HMAC secret as PEM, JWK or JWKS'
            cand key 'Inspect, convert and publish keys'
            cand completions 'Print a shell completion script to stdout'
            cand man 'Print the man page, or write one page per command into a directory'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'jwkit;generate-key'= {
            cand -t 'Key type'
            cand --type 'Key type'
            cand --bits 'RSA modulus size (2048, 3072, 4096; default 2048), or HMAC secret size in bits (default: the hash size of --alg, 256 for HS256)'
            cand --curve 'EC curve (default P-256)'
            cand --alg 'Algorithm recorded in the key (default: from the key type, e.g. RS256, ES256, EdDSA, HS256)'
            cand --kid 'Key ID (default: the RFC 7638 SHA-256 thumbprint)'
            cand --use 'Public key use recorded in the JWK'
            cand -f 'Output format of the private key (and of --public-out)'
            cand --format 'Output format of the private key (and of --public-out)'
            cand -o 'Write the private key to FILE (mode 0600) instead of stdout'
            cand --out 'Write the private key to FILE (mode 0600) instead of stdout'
            cand --public-out 'Also write the public key to FILE'
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand --save 'Keep the key in the key store ($JWKIT_HOME/keys) and print its kid'
            cand --force 'Overwrite existing files (and a stored key with the same kid)'
            cand --insecure 'Allow HMAC secrets shorter than the hash size (warns). RSA keys under 2048 bits are never generated: jwkit refuses to load them'
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
            cand --alg 'Algorithm recorded in the key (default: from the key type, e.g. RS256, ES256, EdDSA, HS256)'
            cand --kid 'Key ID (default: the RFC 7638 SHA-256 thumbprint)'
            cand --use 'Public key use recorded in the JWK'
            cand -f 'Output format of the private key (and of --public-out)'
            cand --format 'Output format of the private key (and of --public-out)'
            cand -o 'Write the private key to FILE (mode 0600) instead of stdout'
            cand --out 'Write the private key to FILE (mode 0600) instead of stdout'
            cand --public-out 'Also write the public key to FILE'
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand --save 'Keep the key in the key store ($JWKIT_HOME/keys) and print its kid'
            cand --force 'Overwrite existing files (and a stored key with the same kid)'
            cand --insecure 'Allow HMAC secrets shorter than the hash size (warns). RSA keys under 2048 bits are never generated: jwkit refuses to load them'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'jwkit;key'= {
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
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
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'jwkit;key;list'= {
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand --json 'One JSON document instead of a table'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'jwkit;key;show'= {
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand --private 'Include the private JWK'
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
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'jwkit;key;jwks'= {
            cand --key 'Stored keys to add, by kid (repeatable)'
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
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
        &'jwkit;key;help;help'= {
        }
        &'jwkit;completions'= {
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'jwkit;man'= {
            cand --out 'Write jwkit.1 and one page per command into DIR instead of printing jwkit.1'
            cand --color 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'jwkit;help'= {
            cand generate-key 'Generate a key pair or HMAC secret as PEM, JWK or JWKS'
            cand key 'Inspect, convert and publish keys'
            cand completions 'Print a shell completion script to stdout'
            cand man 'Print the man page, or write one page per command into a directory'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'jwkit;help;generate-key'= {
        }
        &'jwkit;help;key'= {
            cand list 'List the keys in the key store: kid, type, alg, created'
            cand show 'Show one stored key: metadata and its public JWK (--private for the private JWK)'
            cand public 'Print the public half of a key'
            cand thumbprint 'Print a key''s RFC 7638 thumbprint'
            cand convert 'Convert a key between PEM, JWK and JWKS'
            cand jwks 'Merge keys and files into one public JWKS (a duplicate kid is an error)'
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
        &'jwkit;help;completions'= {
        }
        &'jwkit;help;man'= {
        }
        &'jwkit;help;help'= {
        }
    ]
    $completions[$command]
}
