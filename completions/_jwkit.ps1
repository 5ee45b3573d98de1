
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
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('generate-key', 'generate-key', [CompletionResultType]::ParameterValue, 'Generate a key pair or HMAC secret as PEM, JWK or JWKS')
            [CompletionResult]::new('genkey', 'genkey', [CompletionResultType]::ParameterValue, 'Generate a key pair or HMAC secret as PEM, JWK or JWKS')
            [CompletionResult]::new('key', 'key', [CompletionResultType]::ParameterValue, 'Inspect, convert and publish keys')
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
            [CompletionResult]::new('--alg', '--alg', [CompletionResultType]::ParameterName, 'Algorithm recorded in the key (default: from the key type, e.g. RS256, ES256, EdDSA, HS256)')
            [CompletionResult]::new('--kid', '--kid', [CompletionResultType]::ParameterName, 'Key ID (default: the RFC 7638 SHA-256 thumbprint)')
            [CompletionResult]::new('--use', '--use', [CompletionResultType]::ParameterName, 'Public key use recorded in the JWK')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Output format of the private key (and of --public-out)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format of the private key (and of --public-out)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Write the private key to FILE (mode 0600) instead of stdout')
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'Write the private key to FILE (mode 0600) instead of stdout')
            [CompletionResult]::new('--public-out', '--public-out', [CompletionResultType]::ParameterName, 'Also write the public key to FILE')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('--save', '--save', [CompletionResultType]::ParameterName, 'Keep the key in the key store ($JWKIT_HOME/keys) and print its kid')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Overwrite existing files (and a stored key with the same kid)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Allow HMAC secrets shorter than the hash size (warns). RSA keys under 2048 bits are never generated: jwkit refuses to load them')
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
            [CompletionResult]::new('--alg', '--alg', [CompletionResultType]::ParameterName, 'Algorithm recorded in the key (default: from the key type, e.g. RS256, ES256, EdDSA, HS256)')
            [CompletionResult]::new('--kid', '--kid', [CompletionResultType]::ParameterName, 'Key ID (default: the RFC 7638 SHA-256 thumbprint)')
            [CompletionResult]::new('--use', '--use', [CompletionResultType]::ParameterName, 'Public key use recorded in the JWK')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Output format of the private key (and of --public-out)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format of the private key (and of --public-out)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Write the private key to FILE (mode 0600) instead of stdout')
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'Write the private key to FILE (mode 0600) instead of stdout')
            [CompletionResult]::new('--public-out', '--public-out', [CompletionResultType]::ParameterName, 'Also write the public key to FILE')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('--save', '--save', [CompletionResultType]::ParameterName, 'Keep the key in the key store ($JWKIT_HOME/keys) and print its kid')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Overwrite existing files (and a stored key with the same kid)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Allow HMAC secrets shorter than the hash size (warns). RSA keys under 2048 bits are never generated: jwkit refuses to load them')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'jwkit;key' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
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
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'jwkit;key;list' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'One JSON document instead of a table')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'jwkit;key;show' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('--private', '--private', [CompletionResultType]::ParameterName, 'Include the private JWK')
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
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'jwkit;key;jwks' {
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Stored keys to add, by kid (repeatable)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
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
        'jwkit;key;help;help' {
            break
        }
        'jwkit;completions' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'jwkit;man' {
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'Write jwkit.1 and one page per command into DIR instead of printing jwkit.1')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'jwkit;help' {
            [CompletionResult]::new('generate-key', 'generate-key', [CompletionResultType]::ParameterValue, 'Generate a key pair or HMAC secret as PEM, JWK or JWKS')
            [CompletionResult]::new('key', 'key', [CompletionResultType]::ParameterValue, 'Inspect, convert and publish keys')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script to stdout')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print the man page, or write one page per command into a directory')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'jwkit;help;generate-key' {
            break
        }
        'jwkit;help;key' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the keys in the key store: kid, type, alg, created')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one stored key: metadata and its public JWK (--private for the private JWK)')
            [CompletionResult]::new('public', 'public', [CompletionResultType]::ParameterValue, 'Print the public half of a key')
            [CompletionResult]::new('thumbprint', 'thumbprint', [CompletionResultType]::ParameterValue, 'Print a key''s RFC 7638 thumbprint')
            [CompletionResult]::new('convert', 'convert', [CompletionResultType]::ParameterValue, 'Convert a key between PEM, JWK and JWKS')
            [CompletionResult]::new('jwks', 'jwks', [CompletionResultType]::ParameterValue, 'Merge keys and files into one public JWKS (a duplicate kid is an error)')
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
