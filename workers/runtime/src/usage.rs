//! `--help` and `--version` for every binary. The settings listed are the README's
//! Configuration table, compiled in, so the two cannot drift: a row is shown to the binaries
//! its "used by" column names.
use std::process::ExitCode;

const README: &str = include_str!("../../../README.md");

/// One row of the README's Configuration table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The variable(s), e.g. `IMGFLOW_PREFIX` or `IMGFLOW_BUCKET, IMGFLOW_TABLE`.
    pub variables: String,
    /// The default.
    pub default: String,
    /// Which binaries read it: `all`, `workers`, a stage, `API`.
    pub used_by: String,
    /// What it does.
    pub meaning: String,
}

/// The rows of the README's Configuration table.
pub fn settings() -> Vec<Setting> {
    let Some(start) = README.find("## Configuration") else {
        return Vec::new();
    };
    README[start..]
        .lines()
        .skip_while(|line| !line.starts_with("| variable"))
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .filter_map(|line| {
            let cells: Vec<String> = line
                .trim_matches('|')
                .split(" | ")
                .map(|cell| cell.trim().replace('`', ""))
                .collect();
            let [variables, default, used_by, meaning] = <[String; 4]>::try_from(cells).ok()?;
            Some(Setting {
                variables,
                default,
                used_by,
                meaning,
            })
        })
        .collect()
}

/// Whether `used_by` (a README cell) covers `binary` (`ingest`, `label`, `store`, `api`).
fn applies(used_by: &str, binary: &str) -> bool {
    used_by.split(',').map(str::trim).any(|who| {
        let who = who.to_ascii_lowercase();
        who == "all" || who == binary || (who == "workers" && binary != "api")
    })
}

/// The `--help` text of `imgflow-<binary>`.
pub fn help(binary: &str, about: &str) -> String {
    let mut text = format!(
        "imgflow-{binary} {}: {about}\n\nUsage: imgflow-{binary} [--help | --version | --healthcheck]\n\n  \
         --healthcheck  ask the running process on IMGFLOW_METRICS_ADDR (the API: IMGFLOW_API_ADDR)\n                 \
         whether it is ready; exit 0 if so (for container health checks)\n\n\
         Settings, from the environment, read once at start (a bad value stops the process\n\
         naming the variable):\n",
        env!("CARGO_PKG_VERSION")
    );
    for s in settings().iter().filter(|s| applies(&s.used_by, binary)) {
        text.push_str(&format!(
            "\n  {}\n      default: {}\n      {}\n",
            s.variables, s.default, s.meaning
        ));
    }
    text
}

/// A binary's exit: its code, or its error in one line (`error: what failed: why`, the causes
/// joined) and exit code 1. Never a backtrace, whatever `RUST_BACKTRACE` says: a setting
/// refused is for the person who set it, not a crash.
pub fn finish<E: std::fmt::Display>(result: Result<ExitCode, E>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Handles `--help`, `--version` and unknown arguments: `Some(exit code)` when the process
/// should exit now. `--healthcheck` (and no argument) carries on.
pub fn handle_args(binary: &str, about: &str) -> Option<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("--healthcheck") if args.len() <= 1 => None,
        Some("--help" | "-h") => {
            print!("{}", help(binary, about));
            Some(ExitCode::SUCCESS)
        }
        Some("--version" | "-V") => {
            println!("imgflow-{binary} {}", env!("CARGO_PKG_VERSION"));
            Some(ExitCode::SUCCESS)
        }
        _ => {
            eprintln!(
                "imgflow-{binary}: unexpected argument(s) {args:?}; settings come from the \
                 environment (see imgflow-{binary} --help)"
            );
            Some(ExitCode::from(2))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_table_is_read_and_split_by_binary() {
        let all = settings();
        assert!(all.len() > 20, "{} rows", all.len());
        let ingest = help("ingest", "x");
        assert!(ingest.contains("IMGFLOW_MIN_SIDE_PX"));
        assert!(!ingest.contains("IMGFLOW_API_KEY"));
        let api = help("api", "x");
        assert!(api.contains("IMGFLOW_API_KEY"));
        assert!(api.contains("IMGFLOW_PREFIX"));
        assert!(!api.contains("IMGFLOW_DETECTOR_ATTEMPTS"));
        assert!(help("label", "x").contains("IMGFLOW_DETECTOR_ATTEMPTS"));
    }

    /// Every variable a binary's source reads is in the README's table (and so in --help).
    #[test]
    fn every_variable_the_binaries_read_is_documented() {
        let documented: String = settings()
            .iter()
            .map(|s| s.variables.clone() + " ")
            .collect();
        let workers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut missing = Vec::new();
        let mut read = 0;
        let mut stack = vec![workers];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if path.is_dir() {
                    // Test code reads variables of its own (IMGFLOW_PHOTOS_DIR...).
                    if name != "tests" && name != "target" {
                        stack.push(path);
                    }
                } else if name.ends_with(".rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (i, _) in text.match_indices("\"IMGFLOW_") {
                        let var: String = text[i + 1..]
                            .chars()
                            .take_while(|c| {
                                c.is_ascii_uppercase() || *c == '_' || c.is_ascii_digit()
                            })
                            .collect();
                        read += 1;
                        if !documented.contains(&var) {
                            missing.push(format!("{var} ({})", path.display()));
                        }
                    }
                }
            }
        }
        assert!(
            read > 30,
            "found only {read} variables: is the walk reading the source?"
        );
        assert!(
            missing.is_empty(),
            "not in the README's Configuration table: {missing:?}"
        );
    }
}
