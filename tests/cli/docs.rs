//! Generated files stay in step with the clap definitions: completions/, man/ and the help
//! goldens in tests/golden/. `UPDATE_GOLDEN=1 cargo test` rewrites them.

use std::path::{Path, PathBuf};

use clap_complete::Shell;

use crate::util::Env;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compares `actual` with the committed file, or rewrites it under UPDATE_GOLDEN=1.
fn golden(path: &Path, actual: &[u8]) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read(path).unwrap_or_default();
    assert!(
        expected == actual,
        "{} is stale; run `UPDATE_GOLDEN=1 cargo test` and commit the result",
        path.display()
    );
}

#[test]
fn completions_are_current() {
    let env = Env::new();
    for (shell, file) in [
        (Shell::Bash, "jwkit.bash"),
        (Shell::Zsh, "_jwkit"),
        (Shell::Fish, "jwkit.fish"),
        (Shell::PowerShell, "_jwkit.ps1"),
        (Shell::Elvish, "jwkit.elv"),
    ] {
        let out = env.run(&["completions", &shell.to_string()]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(!out.stdout_bytes.is_empty());
        golden(&root().join("completions").join(file), &out.stdout_bytes);
    }
}

#[test]
fn man_pages_are_current_and_have_exit_status() {
    let env = Env::new();
    let top = env.run(&["man"]);
    assert_eq!(top.code, 0, "{}", top.stderr);
    assert!(top.stdout.contains(".SH \"EXIT STATUS\""));
    env.ok(&["man", "--out", "pages"]);
    let mut generated: Vec<String> = std::fs::read_dir(env.path("pages"))
        .expect("dir")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .collect();
    generated.sort();
    for expected in [
        "jwkit.1",
        "jwkit-generate-key.1",
        "jwkit-key.1",
        "jwkit-key-thumbprint.1",
        "jwkit-completions.1",
    ] {
        assert!(
            generated.iter().any(|g| g == expected),
            "{expected} in {generated:?}"
        );
    }
    for name in &generated {
        let page = std::fs::read(env.path("pages").join(name)).expect("read");
        golden(&root().join("man").join(name), &page);
    }
    if std::env::var_os("UPDATE_GOLDEN").is_none() {
        let committed = std::fs::read_dir(root().join("man"))
            .expect("man dir")
            .count();
        assert_eq!(
            committed,
            generated.len(),
            "man/ holds a page no command makes"
        );
    }
}

#[test]
fn help_text_is_current() {
    let env = Env::new();
    for (args, file) in [
        (&["--help"][..], "help.txt"),
        (&["generate-key", "--help"], "generate-key-help.txt"),
        (&["key", "--help"], "key-help.txt"),
    ] {
        let out = env.ok(args);
        golden(&root().join("tests/golden").join(file), out.as_bytes());
    }
}

/// Runs `cmdline` on a pseudo-terminal (util-linux `script`), with TERM and NO_COLOR as given;
/// returns what the terminal showed.
fn on_terminal(env: &Env, term: &str, no_color: bool, cmdline: &str) -> String {
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", cmdline, "/dev/null"])
        .env("TERM", term)
        .env("JWKIT_HOME", env.home())
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::null());
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    let out = cmd
        .output()
        .expect("`script` (util-linux) is needed for the terminal tests");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn colour_choice_reaches_clap_and_a_waiting_command_says_why() {
    let env = Env::new();
    let esc = |s: &str| s.contains('\u{1b}');
    assert!(esc(&env.run(&["--color", "always", "--help"]).stdout));
    assert!(!esc(&env.run(&["--color", "never", "--help"]).stdout));
    let usage = env.run(&["--color", "always", "nope"]);
    assert_eq!(usage.code, 2);
    assert!(esc(&usage.stderr), "{}", usage.stderr);
    let usage = env.run(&["--color=never", "nope"]);
    assert!(!esc(&usage.stderr), "{}", usage.stderr);
    // On a terminal: colour, unless NO_COLOR or TERM=dumb (and --color beats both).
    let jwkit = env!("CARGO_BIN_EXE_jwkit");
    assert!(esc(&on_terminal(
        &env,
        "xterm",
        false,
        &format!("{jwkit} --help")
    )));
    assert!(!esc(&on_terminal(
        &env,
        "dumb",
        false,
        &format!("{jwkit} --help")
    )));
    assert!(!esc(&on_terminal(
        &env,
        "xterm",
        true,
        &format!("{jwkit} --help")
    )));
    assert!(esc(&on_terminal(
        &env,
        "dumb",
        false,
        &format!("{jwkit} --color always --help")
    )));
    // A command that waits for a token on a terminal says so first.
    let key = crate::jose::key_file("rfc7515-A.3.private.pem");
    for sub in [
        "decode".to_string(),
        format!("verify-jwt --key-file {key}"),
        format!("resign --key-file {key}"),
    ] {
        let shown = on_terminal(&env, "xterm", false, &format!("timeout 5 {jwkit} {sub}"));
        assert!(
            shown.contains("reading the token from standard input"),
            "{sub}: {shown}"
        );
    }
    // Not on a terminal: no hint (scripts pipe tokens in).
    let piped = env.run_with_stdin(&["decode"], b"");
    assert!(
        !piped.stderr.contains("reading the token"),
        "{}",
        piped.stderr
    );
}
