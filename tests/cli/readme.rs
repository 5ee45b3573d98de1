//! The examples of the README and of `docs/`, run as a user would paste them: every `sh` block,
//! in the order the README names (README first, then each page of `docs/`), as one bash script
//! in an empty directory, against the servers the examples start on loopback. Lines marked `not
//! run by the tests` are left out (they need kubectl, a clipboard, root, a public address or
//! minutes of building); the examples' fixed ports are moved to free ones. Any command that
//! fails fails the test, naming the line, and so does a server left running at the end.

use std::path::Path;
use std::process::Command;

use crate::util::{Env, free_port};

/// The pages whose examples run, in order.
const PAGES: [&str; 11] = [
    "README.md",
    "docs/keys.md",
    "docs/tokens.md",
    "docs/verify.md",
    "docs/replay.md",
    "docs/serve.md",
    "docs/idp.md",
    "docs/reference.md",
    "docs/install.md",
    "docs/replicas.md",
    "docs/limits.md",
];

/// The `sh` blocks of a page, in order.
fn example_blocks(page: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in page.lines() {
        match (&mut current, line) {
            (None, "```sh") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().expect("block")),
            (Some(block), line) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an unclosed code block");
    blocks
}

fn need(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "the README examples need `{tool}` (Debian: apt-get install {tool}); .ci/run installs it"
    );
}

#[test]
fn the_readme_examples_run_in_order_in_an_empty_directory() {
    for tool in ["bash", "openssl", "curl", "jq"] {
        need(tool);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Every page of docs/ is in the list: a new page's examples cannot be left out.
    let mut on_disk: Vec<String> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| format!("docs/{}", e.expect("entry").file_name().to_string_lossy()))
        .filter(|p| p.ends_with(".md"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = PAGES[1..].iter().map(|p| p.to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "docs/ pages and the examples test's list differ"
    );
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let first_example = readme
        .lines()
        .position(|l| l == "```sh")
        .expect("an example in the README");
    assert!(
        first_example < 40,
        "the README's first example is at line {}",
        first_example + 1
    );
    assert!(
        readme.lines().count() <= 300,
        "the README is a front door: at most 300 lines"
    );
    let mut blocks = Vec::new();
    for page in PAGES {
        let text = std::fs::read_to_string(root.join(page)).expect("page");
        blocks.extend(example_blocks(&text));
    }
    assert!(blocks.len() >= 14, "{} sh blocks", blocks.len());
    let mut script = String::from("set -euo pipefail\n");
    let mut skipped = 0;
    for block in &blocks {
        for line in block.lines() {
            if line.contains("not run by the tests") {
                assert!(
                    !line.trim_end().ends_with('\\'),
                    "a skipped line continues onto the next: {line}"
                );
                skipped += 1;
                continue;
            }
            script.push_str(line);
            script.push('\n');
        }
    }
    assert!(
        skipped <= 20,
        "{skipped} lines not run: the examples are meant to run"
    );
    for port in [
        "8080", "8081", "8082", "8083", "8084", "8085", "8086", "8087", "8443",
    ] {
        script = script.replace(
            &format!("127.0.0.1:{port}"),
            &format!("127.0.0.1:{}", free_port()),
        );
    }
    assert!(!script.contains(":8080"), "a port the test did not move");
    // Every server an example started, it stopped.
    script.push_str(
        "if [ -n \"$(jobs -pr)\" ]; then echo \"servers left running: $(jobs -pr)\" >&2; exit 1; fi\n",
    );
    script.push_str("echo README-EXAMPLES-DONE\n");

    let env = Env::new();
    let dir = env.path("scratch");
    std::fs::create_dir(&dir).expect("scratch dir");
    let home = env.path("home");
    std::fs::create_dir(&home).expect("home");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_jwkit"))
        .parent()
        .expect("bin dir");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::fs::write(env.path("examples.sh"), &script).expect("script");
    use std::os::unix::process::CommandExt;
    // Output to files, not pipes: the servers the examples start in the background inherit
    // them and would hold a pipe open past the script's end.
    let out_file = std::fs::File::create(env.path("stdout")).expect("stdout file");
    let err_file = std::fs::File::create(env.path("stderr")).expect("stderr file");
    // A bound on the whole run: an example that waits for a server that never came up ends.
    let mut child = Command::new("timeout")
        .args(["300", "bash"])
        .arg(env.path("examples.sh"))
        .current_dir(&dir)
        .env_clear()
        .env("PATH", path)
        .env("HOME", &home)
        .env("LANG", "C.UTF-8")
        .process_group(0)
        .stdout(out_file)
        .stderr(err_file)
        .spawn()
        .expect("timeout bash");
    let pgid = child.id();
    let status = child.wait().expect("bash");
    // The servers the examples started in the background, and anything else left running.
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{pgid}")])
        .status();
    let out = std::process::Output {
        status,
        stdout: std::fs::read(env.path("stdout")).expect("stdout"),
        stderr: std::fs::read(env.path("stderr")).expect("stderr"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.ends_with("README-EXAMPLES-DONE\n"),
        "the README examples failed ({}):\n--- stdout (end)\n{}\n--- stderr (end)\n{}",
        out.status,
        tail(&stdout, 3000),
        tail(&stderr, 3000)
    );
    // What the examples say happens, happened: the two expected rejections exit 1, the
    // re-signed capture verifies, and the walk-through's key was deleted from the server.
    assert_eq!(stdout.matches("exit 1\n").count(), 2, "{stdout}");
    assert!(stderr.contains("unknown_kid"), "{stderr}");
    assert!(stderr.contains("re-signed 1"), "{stderr}");
    // The identity provider's example: the ID token from the code flow carries the email.
    assert!(stdout.contains("\nalice@example.com\n"), "{stdout}");
    let replay = std::fs::read_to_string(dir.join("replay.har")).expect("replay.har");
    let capture = std::fs::read_to_string(dir.join("capture.har")).expect("capture.har");
    assert_ne!(replay, capture);
    let har: serde_json::Value = serde_json::from_str(&replay).expect("replay.har is JSON");
    assert_eq!(har["log"]["version"], "1.2");
    assert!(home.join(".local/share/man/man1/jwkit.1").is_file());
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}
