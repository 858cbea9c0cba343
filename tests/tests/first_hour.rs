//! What a new operator meets first, through the real binaries: every worker's `--help` and
//! `--version`, and the `imgflow` command's errors before `provision`, with the emulator
//! unreachable, without a region, and with clashing file names.
use std::process::{Command, Output};

use imgflow_e2e::{bin_dir, endpoint};

fn run(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin_dir().join(binary))
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("RUST_BACKTRACE", "0")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("running {binary}: {e}"))
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_worker_explains_itself_and_starts_nothing() {
    for (binary, own_setting) in [
        ("imgflow-ingest", "IMGFLOW_MIN_SIDE_PX"),
        ("imgflow-label", "IMGFLOW_DETECTOR_ATTEMPTS"),
        ("imgflow-store", "IMGFLOW_CONCURRENCY"),
        ("imgflow-api", "IMGFLOW_API_KEY"),
    ] {
        let out = run(binary, &["--help"], &[]);
        let (stdout, _) = text(&out);
        assert!(out.status.success(), "{binary} --help: {out:?}");
        assert!(stdout.contains("IMGFLOW_PREFIX"), "{binary}: {stdout}");
        assert!(stdout.contains(own_setting), "{binary}: {stdout}");
        assert!(stdout.contains("default:"), "{binary}: {stdout}");

        let out = run(binary, &["--version"], &[]);
        assert!(out.status.success());
        assert!(text(&out).0.contains(env!("CARGO_PKG_VERSION")));

        let out = run(binary, &["--frobnicate"], &[]);
        assert_eq!(out.status.code(), Some(2), "{binary}: {out:?}");
        assert!(text(&out).1.contains("--help"));
    }
}

/// One line saying what failed and one saying what to do; the SDK's detail only with -v.
fn assert_short_error(out: &Output, hint: &str) {
    let (_, stderr) = text(out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(hint), "expected {hint:?} in: {stderr}");
    assert!(
        stderr.len() < 600 && !stderr.contains("raw: Response"),
        "too much for a person: {stderr}"
    );
}

#[test]
fn commands_before_provision_say_to_provision() {
    let prefix = ["--prefix", "first-hour-never-provisioned"];
    for command in [
        &["status"][..],
        &["results"],
        &["dlq", "inspect", "--stage", "label"],
    ] {
        let args: Vec<&str> = command.iter().chain(&prefix).copied().collect();
        let out = run("imgflow", &args, &[]);
        assert_short_error(&out, "run `imgflow provision`");
        let verbose: Vec<&str> = args.iter().copied().chain(["-v"]).collect();
        let (_, detail) = text(&run("imgflow", &verbose, &[]));
        assert!(
            detail.contains("caused by"),
            "-v shows the causes: {detail}"
        );
    }
}

#[test]
fn an_unreachable_endpoint_and_a_missing_region_are_named() {
    let out = run(
        "imgflow",
        &["status"],
        &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9")],
    );
    assert_short_error(&out, "cannot reach the endpoint http://127.0.0.1:9");

    let mut command = Command::new(bin_dir().join("imgflow"));
    let out = command
        .arg("status")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_ENDPOINT_URL", endpoint())
        .output()
        .unwrap();
    assert_short_error(&out, "no AWS region set");
}

#[test]
fn two_files_with_one_name_are_refused_before_any_upload() {
    let dir = std::env::temp_dir().join(format!("imgflow-first-hour-{}", std::process::id()));
    for sub in ["a", "b"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        std::fs::write(dir.join(sub).join("photo.png"), b"x").unwrap();
    }
    let a = dir.join("a/photo.png");
    let b = dir.join("b/photo.png");
    let out = run(
        "imgflow",
        &["submit", a.to_str().unwrap(), b.to_str().unwrap()],
        &[],
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert_short_error(&out, "would both be stored as incoming/photo.png");
}

#[test]
fn provision_lists_every_resource_created_then_unchanged() {
    let prefix = format!("fh-prov-{}", std::process::id());
    let first = run("imgflow", &["--prefix", &prefix, "provision"], &[]);
    let (stdout, stderr) = text(&first);
    assert!(first.status.success(), "{stderr}");
    assert!(stdout.contains(&format!("{prefix}-index")), "{stdout}");
    assert!(
        stdout.ends_with("12 created, 0 already there\n"),
        "{stdout}"
    );
    let again = run("imgflow", &["--prefix", &prefix, "provision"], &[]);
    let (stdout, _) = text(&again);
    assert!(again.status.success());
    assert!(!stdout.contains(" created "), "{stdout}");
    assert!(
        stdout.ends_with("0 created, 12 already there\n"),
        "{stdout}"
    );
}
