//! The one build-time choice that decides jwkit's per-process speed and that cargo cannot carry
//! in a published crate: aws-lc's CPU-jitter entropy source, which costs every process that
//! draws randomness (RSA blinding, ECDSA nonces, key generation) about 20-40 ms. aws-lc turns it
//! off only at build time, through `AWS_LC_SYS_NO_JITTER_ENTROPY` in aws-lc-sys's build
//! environment (there is no cargo feature and no run-time switch). The repository's
//! `.cargo/config.toml` sets it, and the README's install command sets it; any other build gets
//! a warning naming the fix. This script sees the same environment as aws-lc-sys's, since cargo
//! runs both from one invocation.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET")
        .unwrap_or_default()
        .replace('-', "_");
    let names = [
        format!("AWS_LC_SYS_NO_JITTER_ENTROPY_{target}"),
        "AWS_LC_SYS_NO_JITTER_ENTROPY".to_owned(),
    ];
    let mut off = false;
    for name in &names {
        println!("cargo:rerun-if-env-changed={name}");
        if let Ok(v) = std::env::var(name) {
            // As aws-lc-sys reads it: the first one set; "0", "n...", "off", "f..." are false,
            // a digit, "y...", "on", "t..." true, anything else the default (jitter on).
            let v = v.to_ascii_lowercase();
            let no = ["0", "n", "off", "f"].iter().any(|p| v.starts_with(p));
            let yes = v.starts_with(|c: char| c.is_ascii_digit())
                || ["y", "on", "t"].iter().any(|p| v.starts_with(p));
            off = !no && yes;
            break;
        }
    }
    if !off {
        println!(
            "cargo:warning=aws-lc is being built with its CPU-jitter entropy source: every jwkit \
             process that signs with RSA or EC will spend about 20-40 ms seeding it (15x slower \
             than intended). Build with AWS_LC_SYS_NO_JITTER_ENTROPY=1 in the environment, as \
             the README's install command does."
        );
    }
}
