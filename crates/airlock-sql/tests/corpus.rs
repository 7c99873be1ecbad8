//! Corpus tests: every entry under `tests/corpus/reads` must pass as read-only,
//! every entry under `tests/corpus/held` must be held — also when prefixed by a
//! comment (comments never change the class).
//!
//! A file holds one statement string, or several separated by a line `-- next`.
//! A held entry may carry a line `-- class: <class>` to pin the expected class.

use std::fs;
use std::path::{Path, PathBuf};

use airlock_sql::{classify, Classification};

fn corpus_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("corpus")
        .join(kind)
}

/// (file name, entry index, text) of every entry in a corpus folder.
fn entries(kind: &str) -> Vec<(String, usize, String)> {
    let mut files: Vec<PathBuf> = fs::read_dir(corpus_dir(kind))
        .expect("corpus folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).expect("read corpus file");
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut cur = String::new();
        let mut idx = 0;
        let mut flush = |cur: &mut String, idx: &mut usize| {
            let entry = cur.trim_end_matches('\n').to_string();
            if !entry.trim().is_empty() {
                *idx += 1;
                out.push((name.clone(), *idx, entry));
            }
            cur.clear();
        };
        for line in text.split('\n') {
            if line.trim_end() == "-- next" {
                flush(&mut cur, &mut idx);
            } else {
                cur.push_str(line);
                cur.push('\n');
            }
        }
        flush(&mut cur, &mut idx);
    }
    out
}

fn expected_class(entry: &str) -> Option<String> {
    entry
        .lines()
        .find_map(|l| l.trim().strip_prefix("-- class:"))
        .map(|c| c.trim().to_string())
}

fn show(c: &Classification) -> String {
    format!(
        "class={} read_only={} reasons={:?}",
        c.class.as_str(),
        c.read_only,
        c.reasons
    )
}

fn short(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 160 {
        format!("{}…", one_line.chars().take(160).collect::<String>())
    } else {
        one_line
    }
}

#[test]
fn reads_pass() {
    let all = entries("reads");
    assert!(all.len() >= 100, "read corpus too small: {}", all.len());
    let mut failures = Vec::new();
    for (file, i, sql) in &all {
        let c = classify(sql);
        if !c.read_only || !c.reasons.is_empty() {
            failures.push(format!("{file}#{i}: {}\n    {}", short(sql), show(&c)));
        }
    }
    for f in &failures {
        eprintln!("READ HELD: {f}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} read entries were held",
        failures.len(),
        all.len()
    );
}

#[test]
fn held_are_held_even_behind_comments() {
    let all = entries("held");
    assert!(all.len() >= 60, "held corpus too small: {}", all.len());
    let mut failures = Vec::new();
    for (file, i, sql) in &all {
        let base = classify(sql);
        if base.read_only || base.reasons.is_empty() {
            failures.push(format!("{file}#{i}: {}\n    {}", short(sql), show(&base)));
            continue;
        }
        if let Some(want) = expected_class(sql) {
            if base.class.as_str() != want {
                failures.push(format!(
                    "{file}#{i}: {}\n    expected class {want}, got {}",
                    short(sql),
                    show(&base)
                ));
            }
        }
        for prefix in ["/* read */ ", "-- read\n", "/* read /* nested */ */\n"] {
            let text = format!("{prefix}{sql}");
            let c = classify(&text);
            if c.read_only || c.class != base.class {
                failures.push(format!(
                    "{file}#{i} with prefix {prefix:?}: {}\n    {} (without prefix: {})",
                    short(sql),
                    show(&c),
                    base.class.as_str()
                ));
            }
        }
    }
    for f in &failures {
        eprintln!("HELD PASSED: {f}");
    }
    assert!(
        failures.is_empty(),
        "{} problems in {} held entries",
        failures.len(),
        all.len()
    );
}

#[test]
fn reads_stay_reads_behind_comments() {
    for (file, i, sql) in entries("reads").into_iter().take(50) {
        let c = classify(&format!("/* airlock: reason=x */ {sql}"));
        assert!(c.read_only, "{file}#{i}: {}", show(&c));
    }
}

#[test]
fn truncations_never_panic() {
    // Every prefix of every held entry (cut inside keywords, literals,
    // comments, dollar quotes…): classification must not panic, and a result
    // is either read-only or carries at least one reason.
    let mut checked = 0;
    for (_, _, sql) in entries("held") {
        let bounds: Vec<usize> = sql
            .char_indices()
            .map(|(i, _)| i)
            .chain([sql.len()])
            .collect();
        for &b in &bounds {
            let prefix = &sql[..b];
            let c = classify(prefix);
            checked += 1;
            assert!(
                c.read_only || !c.reasons.is_empty(),
                "held without reasons: {prefix:?}"
            );
        }
    }
    assert!(checked > 1000);
}

/// The literal-free cache shares a verdict between statements that differ
/// only in literals: warmed with every read (and each read with other
/// literals), a shared classifier must still hold every held entry.
#[test]
fn a_warm_shared_cache_never_lets_a_held_entry_pass() {
    let classifier = airlock_sql::Classifier::new(8192);
    for (_, _, sql) in entries("reads") {
        classifier.classify(&sql);
    }
    let mut failures = Vec::new();
    for (file, i, sql) in entries("held") {
        let c = classifier.classify(&sql);
        if c.read_only || c.reasons.is_empty() {
            failures.push(format!("{file}#{i}: {}\n    {}", short(&sql), show(&c)));
        }
    }
    for f in &failures {
        eprintln!("HELD PASSED WITH A WARM CACHE: {f}");
    }
    assert!(
        failures.is_empty(),
        "{} held entries passed",
        failures.len()
    );
}
