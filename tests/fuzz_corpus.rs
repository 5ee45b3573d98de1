//! Replays every committed fuzz input through the entry point its target fuzzes, on stable
//! Rust, in an ordinary test build (debug assertions and overflow checks on): the seed and
//! minimised corpora under `fuzz/corpus/<target>/` and every crash or overflow ever found under
//! `fuzz/regressions/<target>/`. A regression returns here without libFuzzer.

use std::path::Path;

type Entry = fn(&[u8]);

const TARGETS: [(&str, Entry); 10] = [
    ("keys", jwkit::fuzz_entry::keys),
    ("jws", jwkit::fuzz_entry::jws),
    ("verify", jwkit::fuzz_entry::verify),
    ("verify_structured", jwkit::fuzz_entry::verify_structured),
    ("scan", jwkit::fuzz_entry::scan),
    ("when", jwkit::fuzz_entry::when),
    ("jwks_response", jwkit::fuzz_entry::jwks_response),
    ("server", jwkit::fuzz_entry::server),
    ("jwe", jwkit::fuzz_entry::jwe),
    ("dpop", jwkit::fuzz_entry::dpop),
];

fn replay(dir: &str, target: &str, entry: Entry) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(dir)
        .join(target);
    let Ok(files) = std::fs::read_dir(&root) else {
        return 0;
    };
    let mut n = 0;
    let mut paths: Vec<_> = files.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if !path.is_file() || path.file_name().is_some_and(|n| n == "README.md") {
            continue;
        }
        let data = std::fs::read(&path).expect("a corpus file");
        // The file's name in the panic message says which input failed.
        let result = std::panic::catch_unwind(|| entry(&data));
        assert!(result.is_ok(), "{target}: {} panics", path.display());
        n += 1;
    }
    n
}

#[test]
fn every_committed_corpus_file_and_regression_replays_without_a_panic() {
    for (target, entry) in TARGETS {
        let seeds = replay("corpus", target, entry);
        assert!(
            seeds > 0,
            "fuzz/corpus/{target} is empty (python3 fuzz/seed.py fills it)"
        );
        replay("regressions", target, entry);
    }
}

#[test]
fn every_fuzz_target_has_an_entry_here() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("fuzz/fuzz_targets")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".rs")
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    let mut ours: Vec<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    ours.sort();
    assert_eq!(names, ours);
}
