//! Where a token stands, read backwards from its first byte: the JSON member that holds it, the
//! HTTP header it is the value of (a raw header line, a HAR `{"name", "value"}` pair, or a JSON
//! member of that name), or the cookie or query/form parameter it is assigned to. `--only`
//! selectors match these.

/// `--only PLACE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// `json:NAME`: a JSON member of that name, at any depth.
    Json(String),
    /// `header:NAME`: an HTTP header (any case), with or without `Bearer`.
    Header(String),
    /// `cookie:NAME`: a cookie (`Cookie`, `Set-Cookie`, HAR cookies).
    Cookie(String),
    /// `param:NAME`: a query string or form field.
    Param(String),
}

impl std::fmt::Display for Selector {
    /// As it was given: `json:access_token`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, name) = match self {
            Selector::Json(n) => ("json", n),
            Selector::Header(n) => ("header", n),
            Selector::Cookie(n) => ("cookie", n),
            Selector::Param(n) => ("param", n),
        };
        write!(f, "{kind}:{name}")
    }
}

impl std::str::FromStr for Selector {
    type Err = String;

    fn from_str(s: &str) -> Result<Selector, String> {
        let (kind, name) = s.split_once(':').ok_or_else(|| {
            format!("--only {s:?}: expected KIND:NAME, KIND one of json, header, cookie, param")
        })?;
        if name.is_empty() {
            return Err(format!("--only {s:?}: the name after {kind}: is empty"));
        }
        let name = name.to_string();
        Ok(match kind {
            "json" => Selector::Json(name),
            "header" => Selector::Header(name),
            "cookie" => Selector::Cookie(name),
            "param" => Selector::Param(name),
            other => {
                return Err(format!(
                    "--only {s:?}: unknown kind {other:?} (json, header, cookie or param)"
                ));
            }
        })
    }
}

impl Selector {
    pub fn matches(&self, place: &Place) -> bool {
        let is = |have: &Option<String>, want: &str| have.as_deref() == Some(want);
        match self {
            Selector::Json(n) => is(&place.json, n),
            Selector::Header(n) => place
                .header
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case(n)),
            Selector::Cookie(n) => is(&place.cookie, n),
            Selector::Param(n) => is(&place.param, n),
        }
    }
}

/// Where a token stands; each part is None when it does not apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Place {
    pub json: Option<String>,
    pub header: Option<String>,
    pub cookie: Option<String>,
    pub param: Option<String>,
}

/// How far back the HAR look-ups search (an entry's headers array is near its values).
const HAR_WINDOW: usize = 64 * 1024;

/// The place of the token that starts at `start` in `text`.
pub fn place_of(text: &[u8], start: usize) -> Place {
    let mut place = Place::default();
    let mut i = start;
    if i >= 7 && text[i - 7..i].eq_ignore_ascii_case(b"bearer ") {
        i -= 7;
    }
    let Some(before) = i.checked_sub(1).map(|j| text[j]) else {
        return place;
    };
    match before {
        b'=' => {
            let end = i - 1;
            let begin = text[..end]
                .iter()
                .rposition(|b| b"=&;?\"' \t\r\n,{}[]:\\".contains(b))
                .map_or(0, |p| p + 1);
            if begin == end {
                return place;
            }
            let name = String::from_utf8_lossy(&text[begin..end]).into_owned();
            let delim = begin.checked_sub(1).map(|j| text[j]);
            let after_semicolon = text[..begin]
                .iter()
                .rposition(|b| *b != b' ')
                .is_some_and(|p| text[p] == b';');
            match delim {
                Some(b'?' | b'&') => place.param = Some(name),
                Some(b';') => place.cookie = Some(name),
                Some(b' ') if after_semicolon => place.cookie = Some(name),
                _ => {
                    // The first pair of a value: the header or member holding it decides.
                    let holder = holder_name(text, begin);
                    if holder.as_deref().is_some_and(|h| {
                        h.eq_ignore_ascii_case("cookie") || h.eq_ignore_ascii_case("set-cookie")
                    }) {
                        place.cookie = Some(name);
                    } else {
                        place.param = Some(name);
                    }
                }
            }
        }
        b'"' => {
            if let Some((member, member_start)) = json_member(text, i - 1) {
                if member == "value"
                    && let Some((name, kind)) = har_pair(text, member_start)
                {
                    match kind {
                        HarList::Headers => place.header = Some(name),
                        HarList::Cookies => place.cookie = Some(name),
                        HarList::Params => place.param = Some(name),
                    }
                } else {
                    place.header = Some(member.clone());
                }
                place.json = Some(member);
            }
        }
        b' ' | b'\t' | b':' => place.header = header_line_name(text, i),
        _ => {}
    }
    place
}

/// The name of whatever holds a value starting at `pos`: a raw header line, a JSON member, or
/// the `name` of a HAR pair.
fn holder_name(text: &[u8], pos: usize) -> Option<String> {
    match pos.checked_sub(1).map(|j| text[j]) {
        Some(b'"') => {
            let (member, member_start) = json_member(text, pos - 1)?;
            if member == "value" {
                har_pair(text, member_start)
                    .map(|(n, _)| n)
                    .or(Some(member))
            } else {
                Some(member)
            }
        }
        Some(b' ' | b'\t' | b':') => header_line_name(text, pos),
        _ => None,
    }
}

/// The member name of a JSON string value whose opening quote is at `quote`, at whatever level
/// of escaping (`"name": "v"`, `\"name\": \"v\"`). Returns the name and where its own opening
/// quote (with its backslashes) starts.
fn json_member(text: &[u8], quote: usize) -> Option<(String, usize)> {
    let slashes = text[..quote]
        .iter()
        .rev()
        .take_while(|&&b| b == b'\\')
        .count();
    let mut j = quote - slashes;
    while j > 0 && text[j - 1].is_ascii_whitespace() {
        j -= 1;
    }
    if j == 0 || text[j - 1] != b':' {
        return None;
    }
    j -= 1;
    while j > 0 && text[j - 1].is_ascii_whitespace() {
        j -= 1;
    }
    // The closing quote of the name, with the same backslashes before it.
    if j == 0 || text[j - 1] != b'"' {
        return None;
    }
    let close = j - 1;
    let name_end = close - slashes.min(close);
    if text[name_end..close].iter().any(|&b| b != b'\\') {
        return None;
    }
    let open = text[..name_end].iter().rposition(|&b| b == b'"')?;
    let name = &text[open + 1..name_end];
    let name_start = open - slashes.min(open);
    Some((String::from_utf8_lossy(name).into_owned(), name_start))
}

/// HAR keeps headers, cookies, query strings and form fields as lists of `{"name", "value"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HarList {
    Headers,
    Cookies,
    Params,
}

/// For a `"value"` member starting at `member_start`: the `name` beside it in the same object,
/// and which HAR list the object belongs to (the nearest list key before it).
fn har_pair(text: &[u8], member_start: usize) -> Option<(String, HarList)> {
    let from = member_start.saturating_sub(HAR_WINDOW);
    let open = text[from..member_start].iter().rposition(|&b| b == b'{')? + from;
    let to = (member_start + HAR_WINDOW).min(text.len());
    let close = text[member_start..to].iter().position(|&b| b == b'}')? + member_start;
    let object = &text[open..close];
    let at = memchr::memmem::find(object, b"\"name\"")?;
    let rest = &object[at + 6..];
    let rest = rest
        .trim_ascii_start()
        .strip_prefix(b":")?
        .trim_ascii_start();
    let rest = rest.strip_prefix(b"\"")?;
    let end = rest.iter().position(|&b| b == b'"')?;
    let name = String::from_utf8_lossy(&rest[..end]).into_owned();
    let before = &text[from..open];
    let kinds = [
        (&b"\"headers\""[..], HarList::Headers),
        (b"\"cookies\"", HarList::Cookies),
        (b"\"queryString\"", HarList::Params),
        (b"\"params\"", HarList::Params),
    ];
    let kind = kinds
        .iter()
        .filter_map(|(key, kind)| memchr::memmem::rfind(before, key).map(|p| (p, *kind)))
        .max_by_key(|(p, _)| *p)?
        .1;
    Some((name, kind))
}

/// The name of a raw header line (`Name: value`) whose value starts at or after `pos`.
fn header_line_name(text: &[u8], pos: usize) -> Option<String> {
    let mut j = pos;
    while j > 0 && matches!(text[j - 1], b' ' | b'\t') {
        j -= 1;
    }
    if j == 0 || text[j - 1] != b':' {
        return None;
    }
    let colon = j - 1;
    let begin = text[..colon]
        .iter()
        .rposition(|&b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .map_or(0, |p| p + 1);
    let at_line_start = begin == 0 || text[begin - 1] == b'\n';
    (begin < colon && at_line_start)
        .then(|| String::from_utf8_lossy(&text[begin..colon]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "eyJ.e30.sig";

    fn at(text: &str) -> Place {
        let s = text.find(T).expect("token");
        place_of(text.as_bytes(), s)
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn places_in_json_har_and_raw_http() {
        assert_eq!(
            at(&format!("{{\"access_token\": \"{T}\"}}")).json,
            some("access_token")
        );
        let h = at(&format!("{{\"Authorization\":\"Bearer {T}\"}}"));
        assert_eq!(
            (h.json, h.header),
            (some("Authorization"), some("Authorization"))
        );
        let escaped = at(&format!(
            "{{\"text\":\"{{\\\"id_token\\\":\\\"{T}\\\"}}\"}}"
        ));
        assert_eq!(escaped.json, some("id_token"));
        let har = format!(
            "\"headers\": [{{\"name\": \"Accept\", \"value\": \"x\"}}, {{\"name\": \"Authorization\", \"value\": \"Bearer {T}\"}}]"
        );
        assert_eq!(at(&har).header, some("Authorization"));
        let cookie = format!("\"cookies\": [{{\"name\": \"session\", \"value\": \"{T}\"}}]");
        assert_eq!(at(&cookie).cookie, some("session"));
        let query = format!("\"queryString\": [{{\"value\": \"{T}\", \"name\": \"token\"}}]");
        assert_eq!(at(&query).param, some("token"));
        assert_eq!(
            at(&format!("Authorization: Bearer {T}\r\n")).header,
            some("Authorization")
        );
        assert_eq!(
            at(&format!("GET /a?x=1&token={T} HTTP/1.1")).param,
            some("token")
        );
        assert_eq!(
            at(&format!("GET /a?token={T} HTTP/1.1")).param,
            some("token")
        );
        assert_eq!(at(&format!("Cookie: a=1; sid={T}\r\n")).cookie, some("sid"));
        assert_eq!(at(&format!("Cookie: sid={T}\r\n")).cookie, some("sid"));
        assert_eq!(
            at(&format!("Set-Cookie: sid={T}; Path=/\r\n")).cookie,
            some("sid")
        );
        assert_eq!(
            at(&format!("{{\"Set-Cookie\":\"sid={T}; Path=/\"}}")).cookie,
            some("sid")
        );
        assert_eq!(
            at(&format!(
                "{{\"name\":\"Set-Cookie\",\"value\":\"sid={T}\"}}\"headers\""
            ))
            .param,
            some("sid"),
            "no list before the object: not taken for a HAR header"
        );
        assert_eq!(
            at(&format!("\r\n\r\nassertion={T}&x=1")).param,
            some("assertion")
        );
        assert_eq!(
            at(&format!("{{\"body\":\"grant=a&assertion={T}\"}}")).param,
            some("assertion")
        );
        assert_eq!(at(T), Place::default());
    }

    #[test]
    fn selectors_parse_and_match() {
        let s: Selector = "header:authorization".parse().expect("parse");
        let place = at(&format!("Authorization: Bearer {T}"));
        assert!(s.matches(&place));
        assert!("json:".parse::<Selector>().is_err());
        assert!("body:x".parse::<Selector>().is_err());
        assert!("nokind".parse::<Selector>().is_err());
    }
}
