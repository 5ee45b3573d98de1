//! Issuing: the claims of access and ID tokens, signing, refresh tokens and their families.

use super::*;

pub(super) fn user_claims_for(idp: &Idp, login: &Login, scope: &str) -> Map<String, Value> {
    let asked: HashSet<&str> = scope.split(' ').collect();
    let mut out: Map<String, Value> = login
        .claims
        .iter()
        .filter(|(name, _)| {
            let governed: Vec<&String> = idp
                .config
                .scopes
                .iter()
                .filter(|(_, list)| list.iter().any(|c| c == *name))
                .map(|(s, _)| s)
                .collect();
            governed.is_empty() || governed.iter().any(|s| asked.contains(s.as_str()))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.extend(login.typed.clone());
    out
}

pub(super) fn sign(
    app: &App,
    typ: &str,
    claims: &Map<String, Value>,
    fault: Option<TokenFault>,
) -> Result<String, OAuthError> {
    let (kid, signer) = app.signer().ok_or_else(|| OAuthError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        ..oauth("temporarily_unavailable", "no active signing key")
    })?;
    let mut header = Map::new();
    header.insert("alg".into(), signer.alg().as_str().into());
    header.insert("typ".into(), typ.into());
    header.insert("kid".into(), kid.into());
    let payload =
        serde_json::to_vec(claims).map_err(|_| oauth("server_error", "encoding the claims"))?;
    let token = jws::encode(&header, &payload, &signer)
        .map_err(|_| oauth("server_error", "signing failed"))?;
    Ok(match fault {
        Some(TokenFault::InvalidSignature) => {
            // The first signature character changed: still well-formed, no longer valid.
            let dot = token.rfind('.').unwrap_or(0) + 1;
            let mut bytes = token.into_bytes();
            if let Some(b) = bytes.get_mut(dot) {
                *b = if *b == b'A' { b'B' } else { b'A' };
            }
            String::from_utf8(bytes).unwrap_or_default()
        }
        _ => token,
    })
}

/// `at_hash`: the left half of the hash of the access token, by the signing alg's hash.
pub(super) fn at_hash(alg: Alg, token: &str) -> String {
    let algo = match alg.hash() {
        Some(Hash::Sha256) => &aws_lc_rs::digest::SHA256,
        Some(Hash::Sha384) => &aws_lc_rs::digest::SHA384,
        Some(Hash::Sha512) | None => &aws_lc_rs::digest::SHA512,
    };
    let d = aws_lc_rs::digest::digest(algo, token.as_bytes());
    b64::encode(&d.as_ref()[..d.as_ref().len() / 2])
}

pub(super) struct Issued {
    pub(super) access: String,
    pub(super) expires_in: i64,
    pub(super) scope: String,
    pub(super) id_token: Option<String>,
    pub(super) refresh: Option<String>,
    pub(super) issued_token_type: Option<&'static str>,
    /// Bound to a DPoP key: `token_type` DPoP.
    pub(super) dpop: bool,
}

impl Issued {
    pub(super) fn response(self) -> Response {
        let mut body = json!({
            "access_token": self.access,
            "token_type": if self.dpop { "DPoP" } else { "Bearer" },
            "expires_in": self.expires_in,
            "scope": self.scope,
        });
        if let Some(t) = self.id_token {
            body["id_token"] = t.into();
        }
        if let Some(t) = self.refresh {
            body["refresh_token"] = t.into();
        }
        if let Some(t) = self.issued_token_type {
            body["issued_token_type"] = t.into();
        }
        json_no_store(StatusCode::OK, body)
    }
}

pub(super) struct IssueParams<'a> {
    pub(super) client: &'a ClientRef<'a>,
    pub(super) login: Option<&'a Login>,
    pub(super) scope: String,
    pub(super) audience: Option<String>,
    pub(super) nonce: Option<String>,
    pub(super) refresh: bool,
    pub(super) fault: Option<TokenFault>,
    pub(super) act: Option<Value>,
    pub(super) issued_token_type: Option<&'static str>,
    /// The token family (from a code); None starts none (client credentials, exchange).
    pub(super) family: Option<String>,
    /// The DPoP key the tokens are bound to (its RFC 7638 thumbprint).
    pub(super) jkt: Option<String>,
}

impl<'a> IssueParams<'a> {
    /// Tokens for `client` (and `login`) with `scope`: no nonce, no refresh token, no `act`.
    pub(super) fn new(
        client: &'a ClientRef<'a>,
        login: Option<&'a Login>,
        scope: String,
        fault: Option<TokenFault>,
    ) -> IssueParams<'a> {
        IssueParams {
            client,
            login,
            scope,
            audience: None,
            nonce: None,
            refresh: false,
            fault,
            act: None,
            issued_token_type: None,
            family: None,
            jkt: None,
        }
    }
}

pub(super) async fn issue(app: &App, idp: &Idp, ip: IssueParams<'_>) -> Result<Issued, OAuthError> {
    let now = when::now();
    let ttl = idp.config.access_ttl;
    let (iat, exp) = match ip.fault {
        Some(TokenFault::Expired) => (now - 2 * ttl, now - ttl),
        _ => (now, now.saturating_add(ttl)),
    };
    let sub = ip
        .login
        .map_or(ip.client.id().to_string(), |l| l.sub.clone());
    let vars = [
        ("sub", sub.as_str()),
        ("client_id", ip.client.id()),
        ("scope", ip.scope.as_str()),
    ];
    let jti = random_token();
    let mut claims = Map::new();
    claims.extend(config::fill(&idp.config.claims, &vars));
    claims.extend(config::fill(&ip.client.claims(), &vars));
    if let Some(l) = ip.login {
        claims.extend(user_claims_for(idp, l, &ip.scope));
    }
    claims.insert("iss".into(), app.iss().into());
    claims.insert("sub".into(), sub.clone().into());
    claims.insert(
        "aud".into(),
        ip.audience
            .clone()
            .unwrap_or_else(|| ip.client.audience())
            .into(),
    );
    claims.insert("iat".into(), iat.into());
    claims.insert("exp".into(), exp.into());
    claims.insert("jti".into(), jti.clone().into());
    claims.insert("client_id".into(), ip.client.id().into());
    if !ip.scope.is_empty() {
        claims.insert("scope".into(), ip.scope.clone().into());
    }
    if let Some(l) = ip.login {
        claims.insert("auth_time".into(), l.auth_time.into());
    }
    if let Some(act) = &ip.act {
        claims.insert("act".into(), act.clone());
    }
    if let Some(jkt) = &ip.jkt {
        claims.insert("cnf".into(), json!({ "jkt": jkt }));
    }
    let mut userinfo = Map::new();
    userinfo.insert("sub".into(), sub.clone().into());
    if let Some(l) = ip.login {
        userinfo.extend(user_claims_for(idp, l, &ip.scope));
    }
    let access = if idp.opaque {
        random_token()
    } else {
        sign(app, "at+jwt", &claims, ip.fault)?
    };
    // Kept: opaque tokens (they are only this record) and tokens of a user (userinfo).
    if idp.opaque || ip.login.is_some() || ip.family.is_some() {
        let key = if idp.opaque {
            state::key(&access)
        } else {
            jti.clone()
        };
        let info = AccessInfo {
            claims: claims.clone(),
            userinfo,
            family: ip.family.clone(),
        };
        state::put(app, Kind::Access, &key, &info, exp.max(now + 1)).await?;
    }
    let id_token = match (ip.login, ip.scope.split(' ').any(|s| s == "openid")) {
        (Some(l), true) => {
            let alg = app.signer().map_or(Alg::RS256, |(_, s)| s.alg());
            let (iat, exp) = match ip.fault {
                Some(TokenFault::Expired) => (now - 2 * idp.config.id_ttl, now - idp.config.id_ttl),
                _ => (now, now.saturating_add(idp.config.id_ttl)),
            };
            let mut id = Map::new();
            id.extend(config::fill(&idp.config.claims, &vars));
            id.extend(config::fill(&ip.client.claims(), &vars));
            id.extend(user_claims_for(idp, l, &ip.scope));
            id.insert("iss".into(), app.iss().into());
            id.insert("sub".into(), sub.clone().into());
            id.insert("aud".into(), ip.client.id().into());
            id.insert("azp".into(), ip.client.id().into());
            id.insert("iat".into(), iat.into());
            id.insert("exp".into(), exp.into());
            id.insert("auth_time".into(), l.auth_time.into());
            id.insert("at_hash".into(), at_hash(alg, &access).into());
            if let Some(n) = &ip.nonce {
                id.insert("nonce".into(), n.clone().into());
            }
            let signed = sign(app, "JWT", &id, ip.fault)?;
            // OIDC Core §10.2: signed, then encrypted to the client's key (cty JWT).
            match ip.client.id_token_encryption() {
                None => Some(signed),
                Some(e) => {
                    let mut cty = Map::new();
                    cty.insert("cty".into(), "JWT".into());
                    Some(
                        crate::crypto::jwe::encrypt(signed.as_bytes(), &e.key, &e.alg, &e.enc, cty)
                            .map_err(|err| {
                                oauth("server_error", format!("encrypting the ID token: {err}"))
                            })?,
                    )
                }
            }
        }
        _ => None,
    };
    let refresh = if ip.refresh && ip.client.allows("refresh_token") {
        let token = random_token();
        let expires = now.saturating_add(idp.config.refresh_ttl);
        let grant = Grant {
            client_id: ip.client.id().to_string(),
            login: ip.login.cloned(),
            scope: ip.scope.clone(),
            expires,
            family: ip.family.clone().unwrap_or_else(random_token),
            audience: ip.audience.clone(),
            jkt: ip.jkt.clone().filter(|_| ip.client.public()),
        };
        state::put(app, Kind::Refresh, &state::key(&token), &grant, expires).await?;
        Some(token)
    } else {
        None
    };
    Ok(Issued {
        access,
        expires_in: exp - now,
        scope: ip.scope,
        id_token,
        refresh,
        dpop: ip.jkt.is_some(),
        issued_token_type: ip.issued_token_type,
    })
}

/// The trusted set of the server's own published keys, to check tokens it issued.
/// Parsed once per document (by its ETag), not per request.
pub(super) fn own_keys(app: &App, idp: &Idp) -> Option<Arc<TrustedKeys>> {
    if let Some(t) = crate::server::tenant::current() {
        return Some(Arc::clone(&t.keys));
    }
    let doc = app.store.doc(when::now());
    let mut cached = idp.own_keys.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((etag, keys)) = cached.as_ref()
        && *etag == doc.etag
    {
        return Some(Arc::clone(keys));
    }
    let set = crate::crypto::JwkSet::parse(&doc.body).ok()?;
    let keys = Arc::new(TrustedKeys::from_fetched_set(set, &[]));
    *cached = Some((doc.etag.clone(), Arc::clone(&keys)));
    Some(keys)
}
