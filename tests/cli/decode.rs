//! `jwkit decode`: readable output, --json, and each kind of malformed token.

use serde_json::Value;

use crate::util::{Env, vector_json};

#[test]
fn rfc7519_example_shows_claims_and_expiry_in_2011() {
    let env = Env::new();
    let token = vector_json("rfc7519-3.1-example-jwt.json")["token"]
        .as_str()
        .expect("token")
        .to_string();
    let run = env.run(&["decode", &token]);
    assert!(
        run.stderr.contains("signature not verified"),
        "{}",
        run.stderr
    );
    let out = run.success();
    assert!(
        out.contains("\"iss\": \"joe\"") && out.contains("\"http://example.com/is_root\": true"),
        "{out}"
    );
    assert!(
        out.contains("exp  2011-03-22T18:43:00Z, expired 15y"),
        "{out}"
    );
    let doc: Value = serde_json::from_str(&env.ok(&["decode", "--json", &token])).expect("json");
    assert_eq!(doc["header"]["alg"], "HS256");
    assert_eq!(doc["claims"]["exp"], 1_300_819_380);
    assert_eq!(doc["times"]["exp"]["utc"], "2011-03-22T18:43:00Z");
    assert!(
        doc["times"]["exp"]["reading"]
            .as_str()
            .expect("reading")
            .starts_with("expired ")
    );
    assert_eq!(doc["signature"], token.rsplit('.').next().expect("sig"));
    // Bearer prefix, white space and stdin.
    let via_stdin = env
        .run_with_stdin(
            &["decode", "--json"],
            format!("  Bearer {token}\n").as_bytes(),
        )
        .success();
    assert_eq!(
        serde_json::from_str::<Value>(&via_stdin).expect("json"),
        doc
    );
    let dash = env
        .run_with_stdin(&["decode", "-", "--json"], token.as_bytes())
        .success();
    assert_eq!(serde_json::from_str::<Value>(&dash).expect("json"), doc);
}

#[test]
fn non_json_payloads_are_shown_as_text_or_base64url() {
    let env = Env::new();
    let ed = vector_json("rfc8037-A-ed25519.json")["token"]
        .as_str()
        .expect("token")
        .to_string();
    let doc: Value = serde_json::from_str(&env.ok(&["decode", "--json", &ed])).expect("json");
    assert_eq!(doc["claims"], Value::Null);
    assert_eq!(doc["payload"], "Example of Ed25519 signing");
    assert!(
        env.ok(&["decode", &ed])
            .contains("Payload (not a JSON object; text)\nExample of Ed25519 signing")
    );
    let binary = "eyJhbGciOiJIUzI1NiJ9._w.c2ln";
    let doc: Value = serde_json::from_str(&env.ok(&["decode", "--json", binary])).expect("json");
    assert_eq!(
        (doc["payload"].as_str(), doc["payload_encoding"].as_str()),
        (Some("_w"), Some("base64url"))
    );
    // A well-formed token decodes whatever its times, even unsigned: decode never verifies.
    let none = vector_json("rfc7515-A.5-none.json")["token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(env.run(&["decode", &none]).code, 0);
}

#[test]
fn malformed_tokens_exit_2_naming_the_fault() {
    let env = Env::new();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"abc.def".to_vec(), "has 2 segments"),
        (b"a.b.c.d".to_vec(), "has 4 segments"),
        (b"".to_vec(), "the token is empty"),
        (
            b"eyJhbGciOiJIUzI1NiJ9!.e30.c2ln".to_vec(),
            "header segment is not valid base64url: '!' at byte 20",
        ),
        (
            b"eyJhbGciOiJIUzI1NiJ9.e30=.c2ln".to_vec(),
            "payload segment is padding '=' at byte 3",
        ),
        (
            b"eyJhbGciOiJIUzI1NiJ9.e30.c2l+".to_vec(),
            "signature segment is not valid base64url: '+' at byte 3",
        ),
        (b"bm90IGpzb24.e30.c2ln".to_vec(), "header is not JSON"),
        (
            b"WzEsMl0.e30.c2ln".to_vec(),
            "header is not JSON: expected a JSON object, found an array",
        ),
        (
            b"eyJhIjoxLCJhIjoyfQ.e30.c2ln".to_vec(),
            "duplicate member \"a\"",
        ),
        (b"_w.e30.c2ln".to_vec(), "header is not UTF-8"),
        (
            vec![b'e', b'y', 0xff, 0xfe, b'.', b'a', b'.', b'b'],
            "not UTF-8",
        ),
        (vec![b'.'; 10_000_000], "over 65536 bytes"),
    ];
    for (input, needle) in cases {
        env.run_with_stdin(&["decode"], &input).fails_with(needle);
    }
    let long = format!("{}.e30.c2ln", "A".repeat(70_000));
    env.run(&["decode", &long])
        .fails_with("tokens over 65536 bytes are refused");
}
