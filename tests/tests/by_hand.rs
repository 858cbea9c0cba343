//! The README's "Run it by hand" section, run as written: its shell block, from the
//! repository's root, on an emulator of its own (the port it names).
use std::process::Command;

#[test]
fn the_run_it_by_hand_section_works_as_written() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = &readme[readme.find("## Run it by hand").expect("the section")..];
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a sh block");
    assert!(
        block.contains("scripts/emulator stop"),
        "the block stops what it starts"
    );
    // Whatever fails, what the block started is stopped (as its last lines would).
    let script = format!(
        "trap 'kill $(jobs -p) 2>/dev/null || true; IMGFLOW_EMULATOR_PORT=4610 scripts/emulator stop' EXIT\n{block}"
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(&root)
        // Nothing of the caller's emulator leaks in: the block sets its own.
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("IMGFLOW_PREFIX")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The API's answer to the curl upload, with the file's name kept.
    assert!(stdout.contains("\"status_url\":\"/images/"), "{stdout}");
    assert!(stdout.contains("/rocket.jpg\""), "{stdout}");
    // submit --wait printed the labels of the S3 upload.
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("incoming/chelsea.png") && l.contains("labeled")),
        "{stdout}"
    );
    assert!(stdout.contains("STAGE"), "imgflow status ran: {stdout}");
    // And the emulator it started is stopped.
    let status = Command::new("scripts/emulator")
        .arg("status")
        .current_dir(&root)
        .env("IMGFLOW_EMULATOR_PORT", "4610")
        .output()
        .unwrap();
    assert!(!status.status.success(), "the emulator still runs");
}
