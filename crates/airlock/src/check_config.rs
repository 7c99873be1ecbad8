//! `airlock check-config`: the config's own checks, then what only the
//! targets can answer (each protected target's `trusted_functions` against
//! its catalog), unless `--offline`.

use airlock_core::{Config, ConfigProblem};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// How long one target may take to answer the catalog check.
const TARGET_TIMEOUT: Duration = Duration::from_secs(10);

/// Validates `file` and prints every problem with its key path.
pub fn run(file: &Path, offline: bool) -> ExitCode {
    let problems = match crate::config_file::load(file) {
        Ok(c) if offline => Ok(c),
        Ok(c) => {
            let problems = check_trusted_functions(&c);
            if problems.is_empty() {
                Ok(c)
            } else {
                Err(problems)
            }
        }
        Err(problems) => Err(problems),
    };
    match problems {
        Ok(c) => {
            println!(
                "{}: ok ({} users, {} targets, {} families)",
                file.display(),
                c.users.len(),
                c.targets.len(),
                c.families.len()
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in &problems {
                println!("{}: {p}", file.display());
            }
            eprintln!("{} problem(s) found", problems.len());
            ExitCode::FAILURE
        }
    }
}

/// Every protected target that trusts functions is asked whether it has them.
fn check_trusted_functions(config: &Config) -> Vec<ConfigProblem> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return vec![ConfigProblem {
                path: "(check-config)".into(),
                message: format!("cannot start the runtime for the target checks: {e}"),
            }]
        }
    };
    let mut problems = Vec::new();
    for (i, t) in config.targets.iter().enumerate() {
        let trusted = t.trusted();
        if !t.protected || trusted.is_empty() {
            continue;
        }
        let path = format!("targets[{i}].trusted_functions");
        let unreachable = |why: String| ConfigProblem {
            path: path.clone(),
            message: format!(
                "cannot be checked against the catalog of {:?}: {why} (--offline skips this check)",
                t.name
            ),
        };
        let (Some(creds), Ok(endpoint)) = (
            t.session_credentials(),
            airlock_pg::upstream::Endpoint::for_target(t),
        ) else {
            problems.push(unreachable("no usable upstream or credentials".into()));
            continue;
        };
        let load = airlock_pg::catalog::load(&endpoint, creds, &t.upstream.database, &trusted);
        match runtime.block_on(async { tokio::time::timeout(TARGET_TIMEOUT, load).await }) {
            Ok(Ok(risks)) => {
                for missing in risks.missing_trusted {
                    problems.push(ConfigProblem {
                        path: path.clone(),
                        message: format!("{missing}: target {:?} has no such function", t.name),
                    });
                }
            }
            Ok(Err(e)) => problems.push(unreachable(e.to_string())),
            Err(_) => problems.push(unreachable(format!(
                "no answer in {}s",
                TARGET_TIMEOUT.as_secs()
            ))),
        }
    }
    problems
}
