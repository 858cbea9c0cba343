//! `scripts/deploy` run for real, not `--dry-run`: the real AWS CLI (`scripts/awscli`, from
//! PyPI) against the emulator, a `docker` stand-in that records its arguments, a VPC and four
//! subnets made on the emulator. What it proves: every step before the stack itself is
//! accepted by the CLI and the endpoint (account, repository, login, build and push, the
//! artifacts bucket and its settings, the template uploaded there) and the change set reaches
//! CloudFormation from the artifacts bucket with every parameter given; a re-run at the same
//! tag builds nothing. What it cannot: the emulator's CloudFormation refuses to execute this
//! template (its IAM handling does not resolve the stack's roles), so creating the resources
//! themselves is not rehearsed.
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use imgflow_e2e::endpoint;

const REGION: &str = "us-east-1";

struct Rehearsal {
    prefix: String,
    dir: PathBuf,
    cli: PathBuf,
}

impl Rehearsal {
    fn new() -> Self {
        let cli = PathBuf::from(std::env::var("IMGFLOW_AWS_CLI").expect(
            "IMGFLOW_AWS_CLI is unset: run scripts/test, or export IMGFLOW_AWS_CLI=$(scripts/awscli)",
        ));
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let prefix = format!("rh{}", &suffix[..8]);
        let dir = std::env::temp_dir().join(format!("imgflow-{prefix}"));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let docker = dir.join("bin/docker");
        std::fs::write(
            &docker,
            format!(
                "#!/usr/bin/env bash\n# A stand-in: records its arguments.\n\
                 echo \"docker $*\" >> {}\n[ \"$1\" = login ] && cat >/dev/null\nexit 0\n",
                dir.join("docker.log").display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { prefix, dir, cli }
    }

    /// The environment of every command: the emulator, dummy credentials, and a PATH with the
    /// stand-in and the CLI. S3 is named `localhost` for the CLI: it builds the change set's
    /// template URL from it, and the emulator finds the bucket in a path-style URL only under
    /// that name (with 127.0.0.1 it looks for a bucket named `127`).
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        let endpoint = endpoint();
        let port = endpoint.rsplit(':').next().unwrap().to_owned();
        let path = format!(
            "{}:{}:/usr/bin:/bin",
            self.dir.join("bin").display(),
            self.cli.parent().unwrap().display()
        );
        command
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ENDPOINT_URL_S3", format!("http://localhost:{port}"))
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_DEFAULT_REGION", REGION)
            .env("PATH", path);
        command
    }

    fn aws(&self, args: &[&str]) -> String {
        let out = self.command(&self.cli).args(args).output().unwrap();
        assert!(out.status.success(), "aws {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn deploy(&self, vpc: &str, subnets: &[String]) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/deploy");
        self.command("bash")
            .arg(script)
            .args(["--region", REGION, "--prefix", &self.prefix, "--vpc", vpc])
            .args(["--subnets", &format!("{},{}", subnets[0], subnets[2])])
            .args([
                "--public-subnets",
                &format!("{},{}", subnets[1], subnets[3]),
            ])
            .args([
                "--certificate",
                "arn:aws:acm:us-east-1:123456789012:certificate/abc",
            ])
            .args(["--allowed-cidr", "203.0.113.0/24", "--tag", "t1"])
            .output()
            .unwrap()
    }

    fn docker_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("docker.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_deploy_script_runs_for_real_against_the_emulator() {
    let r = Rehearsal::new();
    let vpc = r.aws(&[
        "ec2",
        "create-vpc",
        "--cidr-block",
        "10.8.0.0/16",
        "--query",
        "Vpc.VpcId",
        "--output",
        "text",
    ]);
    let subnets: Vec<String> = (0..4)
        .map(|n| {
            let zone = if n % 2 == 0 {
                "us-east-1a"
            } else {
                "us-east-1b"
            };
            r.aws(&[
                "ec2",
                "create-subnet",
                "--vpc-id",
                &vpc,
                "--cidr-block",
                &format!("10.8.{n}.0/24"),
                "--availability-zone",
                zone,
                "--query",
                "Subnet.SubnetId",
                "--output",
                "text",
            ])
        })
        .collect();

    let out = r.deploy(&vpc, &subnets);
    let said = text(&out);
    // Every step before the stack was accepted, in order.
    let steps: Vec<&str> = said.lines().filter(|l| l.starts_with("+ ")).collect();
    let expected = [
        "+ aws ecr create-repository",
        "+ aws ecr get-login-password",
        "+ docker build",
        "+ docker push",
        "+ aws s3api create-bucket",
        "+ aws s3api put-public-access-block",
        "+ aws s3api put-bucket-encryption",
        "+ aws s3api put-bucket-lifecycle-configuration",
        "+ aws cloudformation deploy",
    ];
    assert_eq!(steps.len(), expected.len(), "{said}");
    for (step, expected) in steps.iter().zip(expected) {
        assert!(
            step.starts_with(expected),
            "{step} (expected {expected}): {said}"
        );
    }
    assert!(
        said.contains("Waiting for changeset to be created"),
        "{said}"
    );
    // The emulator refuses to execute the change set; on AWS the stack is created here.
    assert!(
        out.status.success() || said.contains("ExecuteChangeSet"),
        "failed before the change set was executed: {said}"
    );

    let image = format!(
        "123456789012.dkr.ecr.{REGION}.amazonaws.com/{}:t1",
        r.prefix
    );
    let docker = r.docker_log();
    assert!(docker[0].starts_with("docker login --username AWS --password-stdin"));
    assert!(docker[1].contains(&format!("-t {image} .")), "{docker:?}");
    assert_eq!(docker[2], format!("docker push {image}"));

    // The artifacts bucket, as made: private, encrypted, expiring; the template in it.
    let bucket = format!("{}-cfn-123456789012-{REGION}", r.prefix);
    let block = r.aws(&["s3api", "get-public-access-block", "--bucket", &bucket]);
    assert!(block.contains("\"BlockPublicPolicy\": true"), "{block}");
    let encryption = r.aws(&["s3api", "get-bucket-encryption", "--bucket", &bucket]);
    assert!(encryption.contains("AES256"), "{encryption}");
    let lifecycle = r.aws(&[
        "s3api",
        "get-bucket-lifecycle-configuration",
        "--bucket",
        &bucket,
    ]);
    assert!(lifecycle.contains("\"Days\": 30"), "{lifecycle}");
    let uploaded = r.aws(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        &bucket,
        "--prefix",
        &format!("{}/", r.prefix),
        "--query",
        "Contents[0].Size",
        "--output",
        "text",
    ]);
    let template = std::fs::metadata(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/cloudformation/imgflow.yaml"),
    )
    .unwrap()
    .len();
    assert_eq!(
        uploaded,
        template.to_string(),
        "the template, uploaded whole"
    );

    // The change set reached CloudFormation with every parameter given, and only those.
    let change_set = r.aws(&[
        "cloudformation",
        "list-change-sets",
        "--stack-name",
        &r.prefix,
        "--query",
        // Filtered here too: the emulator lists other stacks' change sets as well.
        &format!("Summaries[?StackName=='{}'] | [0].ChangeSetName", r.prefix),
        "--output",
        "text",
    ]);
    let parameters = r.aws(&[
        "cloudformation",
        "describe-change-set",
        "--stack-name",
        &r.prefix,
        "--change-set-name",
        &change_set,
        "--query",
        "Parameters",
        "--output",
        "json",
    ]);
    let parameters: Vec<serde_json::Value> = serde_json::from_str(&parameters).unwrap();
    let given = |key: &str| {
        parameters
            .iter()
            .find(|p| p["ParameterKey"] == key)
            .map(|p| p["ParameterValue"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(given("Image").as_deref(), Some(image.as_str()));
    assert_eq!(given("Prefix").as_deref(), Some(r.prefix.as_str()));
    assert_eq!(given("VpcId").as_deref(), Some(vpc.as_str()));
    assert_eq!(
        given("SubnetIds"),
        Some(format!("{},{}", subnets[0], subnets[2]))
    );
    assert_eq!(given("AllowedCidr").as_deref(), Some("203.0.113.0/24"));

    // The same tag again, now in the repository: nothing is built or pushed.
    r.aws(&[
        "ecr",
        "put-image",
        "--repository-name",
        &r.prefix,
        "--image-tag",
        "t1",
        "--image-manifest",
        r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#,
    ]);
    let again = r.deploy(&vpc, &subnets);
    let said = text(&again);
    assert!(
        said.contains("already in the repository; not built or pushed again"),
        "{said}"
    );
    assert_eq!(r.docker_log().len(), 3, "no second build or push");
    assert!(said.contains("+ aws cloudformation deploy"), "{said}");
    let _ = std::fs::remove_dir_all(&r.dir);
}
