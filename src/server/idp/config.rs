//! `--idp-config FILE`: clients, users, claim templates, scopes, lifetimes and failure
//! injection, as TOML or JSON (told apart by content: JSON starts with `{`).

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::crypto::{JwkSet, verify::TrustedKeys};

/// The grants a client may use when its entry names none.
pub const DEFAULT_GRANTS: [&str; 6] = [
    "authorization_code",
    "refresh_token",
    "client_credentials",
    TOKEN_EXCHANGE,
    JWT_BEARER_GRANT,
    DEVICE_GRANT,
];
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 7523 §2.1: a JWT as an authorization grant (service accounts).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// RFC 8628: the device authorization grant.
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const KNOWN_GRANTS: [&str; 7] = [
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "password",
    TOKEN_EXCHANGE,
    JWT_BEARER_GRANT,
    DEVICE_GRANT,
];

/// The grant's full name for a short one a configuration may use.
fn grant_name(g: &str) -> &str {
    match g {
        "token-exchange" => TOKEN_EXCHANGE,
        "jwt-bearer" => JWT_BEARER_GRANT,
        "device_code" | "device-code" => DEVICE_GRANT,
        other => other,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub clients: Vec<Client>,
    #[serde(default)]
    pub users: Vec<User>,
    /// Scope name → the user claims it releases (added to the OpenID Connect defaults:
    /// profile, email, address, phone). A claim no scope names is always released.
    #[serde(default)]
    pub scopes: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub tokens: Lifetimes,
    /// The resource owner password grant (legacy): off unless true.
    #[serde(default)]
    pub password_grant: bool,
    /// DPoP proofs must carry a nonce the server handed out (RFC 9449 §8).
    #[serde(default)]
    pub dpop_nonce: bool,
    /// Claims every token gets (a template: `${sub}`, `${client_id}`, `${scope}` are replaced).
    #[serde(default)]
    pub claims: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lifetimes {
    #[serde(default = "default_access")]
    pub access: String,
    #[serde(default = "default_access")]
    pub id: String,
    #[serde(default = "default_refresh")]
    pub refresh: String,
    #[serde(default = "default_code")]
    pub code: String,
    /// A login session (the cookie that signs the user in again without the page).
    #[serde(default = "default_session")]
    pub session: String,
    /// A device authorization's lifetime (RFC 8628: its device and user codes).
    #[serde(default = "default_device")]
    pub device: String,
    /// How often a device may poll the token endpoint (RFC 8628 `interval`).
    #[serde(default = "default_device_interval")]
    pub device_interval: String,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            access: default_access(),
            id: default_access(),
            refresh: default_refresh(),
            code: default_code(),
            session: default_session(),
            device: default_device(),
            device_interval: default_device_interval(),
        }
    }
}

fn default_access() -> String {
    "15m".into()
}
fn default_refresh() -> String {
    "1d".into()
}
fn default_code() -> String {
    "1m".into()
}
fn default_session() -> String {
    "1h".into()
}
fn default_device() -> String {
    "10m".into()
}
fn default_device_interval() -> String {
    "5s".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    pub id: String,
    /// None: a public client (no secret; PKCE required), or one that signs assertions
    /// (private_key_jwt, with `jwks`).
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub grants: Option<Vec<String>>,
    /// The client's public keys (a JWKS) for private_key_jwt.
    #[serde(default)]
    pub jwks: Option<Value>,
    /// `aud` of its access tokens (default: the client id).
    #[serde(default)]
    pub audience: Option<String>,
    /// The audiences this client may exchange tokens for (RFC 8693 `audience`); without
    /// it, only its own `audience` (its id by default).
    #[serde(default)]
    pub exchange_audiences: Option<Vec<String>>,
    /// Scopes it may ask for (default: any).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Claims its tokens get (a template).
    #[serde(default)]
    pub claims: Map<String, Value>,
    #[serde(default)]
    pub fail: Option<Fail>,
    /// OIDC Core §10.2 (as in OIDC Dynamic Client Registration): its ID tokens are signed,
    /// then encrypted with this key management algorithm to the encryption key in `jwks`.
    #[serde(default)]
    pub id_token_encrypted_response_alg: Option<String>,
    /// The content encryption of its ID tokens (default A128CBC-HS256, as registration's).
    #[serde(default)]
    pub id_token_encrypted_response_enc: Option<String>,
}

/// How a client's ID tokens are encrypted.
pub struct IdTokenEncryption {
    pub key: crate::crypto::jwe::EncryptKey,
    pub alg: String,
    pub enc: String,
}

/// The key ID tokens are encrypted to: the set's key marked `use: enc` (or with the wanted
/// `alg`), else the first key that can encrypt at all.
fn encryption_key(
    jwks: &Value,
    alg: &str,
) -> std::result::Result<crate::crypto::jwe::EncryptKey, String> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| "jwks has no \"keys\" array".to_string())?;
    let marked = keys.iter().filter(|k| {
        k.get("use").and_then(Value::as_str) == Some("enc")
            || k.get("alg").and_then(Value::as_str) == Some(alg)
    });
    let unmarked = keys.iter().filter(|k| k.get("use").is_none());
    let mut last = "jwks holds no key that can encrypt".to_string();
    for k in marked.chain(unmarked) {
        let Some(o) = k.as_object() else { continue };
        match crate::crypto::jwe::encrypt_key_from_jwk(o) {
            Ok(key) => return Ok(key),
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    /// Checked by the login page and the password grant when set.
    #[serde(default)]
    pub password: Option<String>,
    /// The user's claims (a template); `sub` defaults to the name.
    #[serde(default)]
    pub claims: Map<String, Value>,
    #[serde(default)]
    pub fail: Option<Fail>,
}

/// Failure injection for a client or a user.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fail {
    /// Answer with this OAuth error (`invalid_client`, `access_denied`, `invalid_grant`, ...).
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Answer after this long (`2s`).
    #[serde(default)]
    pub delay: Option<String>,
    /// Issue broken tokens: `expired` or `invalid_signature`.
    #[serde(default)]
    pub token: Option<TokenFault>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenFault {
    Expired,
    InvalidSignature,
}

/// A client as the server uses it: the entry, its grants and its verified key set.
pub struct ClientEntry {
    pub client: Client,
    pub grants: Vec<String>,
    pub keys: Option<TrustedKeys>,
    pub delay: Option<std::time::Duration>,
    pub id_token_encryption: Option<IdTokenEncryption>,
}

pub struct UserEntry {
    pub user: User,
    pub delay: Option<std::time::Duration>,
}

/// The checked configuration: lifetimes in seconds, clients and users by name.
pub struct Loaded {
    pub clients: BTreeMap<String, ClientEntry>,
    pub users: BTreeMap<String, UserEntry>,
    pub scopes: BTreeMap<String, Vec<String>>,
    pub access_ttl: i64,
    pub id_ttl: i64,
    pub refresh_ttl: i64,
    pub code_ttl: i64,
    pub session_ttl: i64,
    pub device_ttl: i64,
    pub device_interval: i64,
    pub password_grant: bool,
    pub dpop_nonce: bool,
    pub claims: Map<String, Value>,
}

/// The OpenID Connect scopes and the claims they release (OIDC Core §5.4).
fn standard_scopes() -> BTreeMap<String, Vec<String>> {
    let s = |list: &[&str]| list.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    BTreeMap::from([
        (
            "profile".to_string(),
            s(&[
                "name",
                "family_name",
                "given_name",
                "middle_name",
                "nickname",
                "preferred_username",
                "profile",
                "picture",
                "website",
                "gender",
                "birthdate",
                "zoneinfo",
                "locale",
                "updated_at",
            ]),
        ),
        ("email".to_string(), s(&["email", "email_verified"])),
        ("address".to_string(), s(&["address"])),
        (
            "phone".to_string(),
            s(&["phone_number", "phone_number_verified"]),
        ),
    ])
}

fn duration(what: &str, text: &str) -> Result<i64> {
    crate::when::duration(what, text)
}

fn delay(what: &str, fail: &Option<Fail>) -> Result<Option<std::time::Duration>> {
    match fail.as_ref().and_then(|f| f.delay.as_deref()) {
        None => Ok(None),
        Some(d) => match crate::when::parse_duration(d) {
            Ok(s) if (0..=300).contains(&s) => {
                Ok(Some(std::time::Duration::from_secs(s.unsigned_abs())))
            }
            _ => bail!("{what}: fail.delay {d:?}: expected a duration from 0s to 5m"),
        },
    }
}

/// Parses the file (TOML, or JSON when it starts with `{`); errors name the line.
pub fn parse(text: &str, name: &str) -> Result<Config> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text)
            .map_err(|e| anyhow::anyhow!("{name}: line {}, column {}: {e}", e.line(), e.column()))
    } else {
        toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(l) => anyhow::anyhow!("{name}: line {l}: {}", e.message()),
                None => anyhow::anyhow!("{name}: {}", e.message()),
            }
        })
    }
}

pub fn load(path: Option<&std::path::Path>) -> Result<Loaded> {
    let config = match path {
        Some(p) => {
            let bytes = crate::input::read_regular_file(p, "--idp-config", 16 << 20)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| anyhow::anyhow!("--idp-config {}: not UTF-8 text", p.display()))?;
            parse(&text, &format!("--idp-config {}", p.display()))?
        }
        None => Config::default(),
    };
    check(config)
}

/// A client checked and made ready: its grants known, its redirect URIs absolute and without
/// fragments, its key set parsed, its ID token encryption tried once. The configuration's
/// clients and registered ones (RFC 7591) go through here alike.
pub fn entry(c: Client) -> Result<ClientEntry> {
    let what = format!("client {:?}", c.id);
    if c.id.is_empty() {
        bail!("a client has an empty id");
    }
    let grants: Vec<String> = c
        .grants
        .clone()
        .unwrap_or_else(|| DEFAULT_GRANTS.iter().map(|g| g.to_string()).collect());
    for g in &grants {
        let g = grant_name(g);
        if !KNOWN_GRANTS.contains(&g) {
            bail!(
                "{what}: unknown grant {g:?} (one of {})",
                KNOWN_GRANTS.join(", ")
            );
        }
    }
    let grants = grants.iter().map(|g| grant_name(g).to_string()).collect();
    for uri in c.redirect_uris.iter().chain(&c.post_logout_redirect_uris) {
        let url = url::Url::parse(uri)
            .map_err(|e| anyhow::anyhow!("{what}: redirect URI {uri:?}: {e}"))?;
        if url.fragment().is_some() {
            bail!("{what}: redirect URI {uri:?} has a fragment (RFC 6749 §3.1.2)");
        }
    }
    let keys = match &c.jwks {
        None => None,
        Some(v) => {
            let set = JwkSet::parse(&serde_json::to_vec(v)?)
                .map_err(|e| anyhow::anyhow!("{what}: jwks: {e}"))?;
            let keys = TrustedKeys::from_fetched_set(set, &[]);
            match (keys.is_empty(), &c.id_token_encrypted_response_alg) {
                (false, _) => Some(keys),
                // A set of encryption keys only, for ID token encryption.
                (true, Some(_)) => None,
                (true, None) => bail!("{what}: jwks holds no usable public signing key"),
            }
        }
    };
    let id_token_encryption = match &c.id_token_encrypted_response_alg {
        None => {
            if c.id_token_encrypted_response_enc.is_some() {
                bail!(
                    "{what}: id_token_encrypted_response_enc needs id_token_encrypted_response_alg"
                );
            }
            None
        }
        Some(alg) => {
            let jwks = c.jwks.as_ref().ok_or_else(|| {
                anyhow::anyhow!("{what}: id_token_encrypted_response_alg needs jwks with the client's encryption key")
            })?;
            let key =
                encryption_key(jwks, alg).map_err(|e| anyhow::anyhow!("{what}: jwks: {e}"))?;
            let enc = c
                .id_token_encrypted_response_enc
                .clone()
                .unwrap_or_else(|| "A128CBC-HS256".to_string());
            // Refused now, at start, rather than at the first login.
            crate::crypto::jwe::encrypt(b"{}", &key, alg, &enc, Map::new()).map_err(|e| {
                anyhow::anyhow!(
                    "{what}: id_token_encrypted_response_alg {alg:?} / enc {enc:?}: {e}"
                )
            })?;
            Some(IdTokenEncryption {
                key,
                alg: alg.clone(),
                enc,
            })
        }
    };
    let delay = delay(&what, &c.fail)?;
    Ok(ClientEntry {
        client: c,
        grants,
        keys,
        delay,
        id_token_encryption,
    })
}

pub fn check(config: Config) -> Result<Loaded> {
    let mut clients = BTreeMap::new();
    for c in config.clients {
        if clients.contains_key(&c.id) {
            bail!("client {:?} is listed twice", c.id);
        }
        clients.insert(c.id.clone(), entry(c)?);
    }
    let mut users = BTreeMap::new();
    for u in config.users {
        let what = format!("user {:?}", u.name);
        if u.name.is_empty() {
            bail!("a user has an empty name");
        }
        let delay = delay(&what, &u.fail)?;
        if users.contains_key(&u.name) {
            bail!("{what} is listed twice");
        }
        users.insert(u.name.clone(), UserEntry { user: u, delay });
    }
    let mut scopes = standard_scopes();
    scopes.extend(config.scopes);
    Ok(Loaded {
        clients,
        users,
        scopes,
        access_ttl: duration("tokens.access", &config.tokens.access)?,
        id_ttl: duration("tokens.id", &config.tokens.id)?,
        refresh_ttl: duration("tokens.refresh", &config.tokens.refresh)?,
        code_ttl: duration("tokens.code", &config.tokens.code)?,
        session_ttl: duration("tokens.session", &config.tokens.session)?,
        device_ttl: duration("tokens.device", &config.tokens.device)?,
        device_interval: duration("tokens.device_interval", &config.tokens.device_interval)?,
        password_grant: config.password_grant,
        dpop_nonce: config.dpop_nonce,
        claims: config.claims,
    })
}

/// A claim template filled in: every `${sub}`, `${client_id}` and `${scope}` in a string
/// (at any depth) replaced.
pub fn fill(template: &Map<String, Value>, vars: &[(&str, &str)]) -> Map<String, Value> {
    fn value(v: &Value, vars: &[(&str, &str)]) -> Value {
        match v {
            Value::String(s) => {
                let mut out = s.clone();
                for (name, val) in vars {
                    out = out.replace(&format!("${{{name}}}"), val);
                }
                Value::String(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| value(x, vars)).collect()),
            Value::Object(o) => {
                Value::Object(o.iter().map(|(k, x)| (k.clone(), value(x, vars))).collect())
            }
            other => other.clone(),
        }
    }
    template
        .iter()
        .map(|(k, v)| (k.clone(), value(v, vars)))
        .collect()
}
