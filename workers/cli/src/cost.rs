//! `imgflow cost`: the measured calls and CPU per image (from `scripts/bench pipeline`) priced
//! with public list prices (`prices.json`, with sources and date), next to the Step Functions +
//! Lambda design imgflow replaces.
use serde::Deserialize;

/// Where `scripts/bench pipeline` writes its summary; used when present.
pub const FRESH_SUMMARY: &str = "target/bench/pipeline-summary.json";

/// The summary of the benchmark run whose figures the README shows, kept so that `imgflow
/// cost` answers on a fresh clone and anywhere else.
pub const RECORDED_SUMMARY: &str = include_str!("pipeline-summary.json");

/// List prices, recorded with their source and date in `prices.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Prices {
    /// When the prices were read.
    pub recorded: String,
    /// Region they apply to.
    pub region: String,
    sqs_per_million_requests: f64,
    sns_per_million_publishes: f64,
    s3_get_per_thousand: f64,
    s3_put_per_thousand: f64,
    dynamodb_per_million_write_units: f64,
    dynamodb_per_million_read_units: f64,
    rekognition_per_image_first_million: f64,
    fargate_per_vcpu_hour: f64,
    fargate_per_gb_hour: f64,
    step_functions_per_thousand_transitions: f64,
    lambda_per_million_requests: f64,
    lambda_per_gb_second: f64,
    api_gateway_rest_per_million: f64,
}

impl Prices {
    /// The prices shipped with this build.
    pub fn builtin() -> Self {
        serde_json::from_str(include_str!("prices.json")).expect("prices.json is valid")
    }
}

/// Rekognition's default DetectLabels quota, requests per second: in us-east-1, us-west-2 and
/// eu-west-1, and in every other region (the service quotas page; raise it there).
pub const REKOGNITION_QUOTA_MAIN: f64 = 50.0;
/// See [`REKOGNITION_QUOTA_MAIN`].
pub const REKOGNITION_QUOTA_OTHER: f64 = 5.0;

/// What `calls` detector calls cost at Rekognition's list price and how long they take: at
/// `rate` per second when one is given, else at the default quotas. One line, for dry runs.
pub fn detector_preview(calls: u64, rate: Option<f64>, prices: &Prices) -> String {
    let dollars = calls as f64 * prices.rekognition_per_image_first_million;
    let time = |per_second: f64| duration_text(calls as f64 / per_second);
    let pace = match rate {
        Some(rate) => format!("about {} at --rate {rate}/s", time(rate)),
        None => format!(
            "about {} at Rekognition's default quota of {REKOGNITION_QUOTA_MAIN}/s (us-east-1, \
             us-west-2, eu-west-1), {} at its {REKOGNITION_QUOTA_OTHER}/s elsewhere",
            time(REKOGNITION_QUOTA_MAIN),
            time(REKOGNITION_QUOTA_OTHER)
        ),
    };
    format!(
        "{calls} detector call(s): ${dollars:.2} with Rekognition (${}/1,000 images, {} list \
         price), nothing with the local detector; {pace}",
        prices.rekognition_per_image_first_million * 1000.0,
        prices.recorded
    )
}

/// Seconds as a person reads them: `45 s`, `12 min`, `3.5 h`, `2.1 days`.
fn duration_text(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("{} s", seconds.ceil())
    } else if seconds < 90.0 * 60.0 {
        format!("{} min", (seconds / 60.0).ceil())
    } else if seconds < 48.0 * 3600.0 {
        format!("{:.1} h", seconds / 3600.0)
    } else {
        format!("{:.1} days", seconds / 86400.0)
    }
}

/// Per image, summed over the stages, as measured by the benchmark.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measured {
    /// SQS requests.
    pub sqs: f64,
    /// SNS publishes.
    pub sns: f64,
    /// S3 reads (GET and HEAD; the user's upload is counted separately).
    pub s3_reads: f64,
    /// S3 writes by the workers (the thumbnail stage's PUT).
    pub s3_writes: f64,
    /// The stages the benchmark measured.
    pub stages: Vec<String>,
    /// DynamoDB writes (PutItem, UpdateItem).
    pub dynamodb_writes: f64,
    /// DynamoDB reads (GetItem).
    pub dynamodb_reads: f64,
    /// Worker CPU seconds.
    pub cpu_seconds: f64,
}

#[derive(Deserialize)]
struct Summary {
    name: String,
    stages: Vec<StageRow>,
}

#[derive(Deserialize)]
struct StageRow {
    stage: String,
    sqs_per_image: f64,
    sns_per_image: f64,
    s3_per_image: f64,
    /// Absent from summaries recorded before the thumbnail stage.
    #[serde(default)]
    s3_writes_per_image: f64,
    dynamodb_writes_per_image: f64,
    dynamodb_reads_per_image: f64,
    cpu_ms_per_image: f64,
}

/// Reads `pipeline-summary.json`: the fixed-detector steady run (the plumbing) and the local
/// detector run, if present.
pub fn read_summary(text: &str) -> Result<(Measured, Option<Measured>), serde_json::Error> {
    let runs: Vec<Summary> = serde_json::from_str(text)?;
    let total = |s: &Summary| Measured {
        sqs: s.stages.iter().map(|r| r.sqs_per_image).sum(),
        sns: s.stages.iter().map(|r| r.sns_per_image).sum(),
        s3_reads: s.stages.iter().map(|r| r.s3_per_image).sum(),
        s3_writes: s.stages.iter().map(|r| r.s3_writes_per_image).sum(),
        stages: s.stages.iter().map(|r| r.stage.clone()).collect(),
        dynamodb_writes: s.stages.iter().map(|r| r.dynamodb_writes_per_image).sum(),
        dynamodb_reads: s.stages.iter().map(|r| r.dynamodb_reads_per_image).sum(),
        cpu_seconds: s.stages.iter().map(|r| r.cpu_ms_per_image).sum::<f64>() / 1000.0,
    };
    let plumbing = runs
        .iter()
        .find(|s| {
            s.name.starts_with("fixed") && s.name.contains("steady") && !s.name.contains("window")
        })
        .or(runs.first())
        .map(total)
        .unwrap_or_default();
    let local = runs.iter().find(|s| s.name.starts_with("local")).map(total);
    Ok((plumbing, local))
}

/// One line of the table: a cost item in dollars for `images` images, per design.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// What is paid for.
    pub item: &'static str,
    /// imgflow with Rekognition.
    pub rekognition: f64,
    /// imgflow with the local detector.
    pub local: f64,
    /// The Step Functions + Lambda tutorial design.
    pub step_functions: f64,
}

/// Prices `images` images three ways. Assumptions: one upload (S3 PUT) and one API request per
/// image in every design; the store's write of the labels is up to 3 KB (3 write units), every
/// other write 1 unit;
/// Fargate memory at 2 GB per vCPU; the Step Functions design as in the tutorial: API Gateway →
/// a Lambda that starts the execution → 4 state transitions → 3 Lambdas of 128 MB running
/// 300 ms each, then DetectLabels and one PutItem. The web console's indexes cost
/// `index_entries` label entries per image (one write unit each) plus four index writes (the
/// gallery's keys at ingest, the status partition moved at store). A share `copies` of the
/// images are exact copies of another: no detector call, but finding them costs every image a
/// HEAD (an upper bound: none where ingest passed the ETag on as the bytes' MD5, a single-part
/// upload to a versioned SSE-S3 bucket such as the stack's) and a content-index write, and every copy a read of its original's item and of its own
/// bytes (the SHA-256 that confirms it).
pub fn table(
    p: &Prices,
    plumbing: &Measured,
    local: Option<&Measured>,
    images: f64,
    index_entries: f64,
    copies: f64,
) -> Vec<Line> {
    let per = |unit_price: f64, per_unit: f64| images * unit_price / per_unit;
    let finding_copies = per(p.s3_get_per_thousand, 1e3) * (1.0 + copies)
        + per(p.dynamodb_per_million_write_units, 1e6)
        + per(p.dynamodb_per_million_read_units, 1e6) * copies;
    let queueing = per(p.sqs_per_million_requests, 1e6) * plumbing.sqs
        + per(p.sns_per_million_publishes, 1e6) * plumbing.sns;
    let s3 = per(p.s3_get_per_thousand, 1e3) * plumbing.s3_reads
        + per(p.s3_put_per_thousand, 1e3) * (1.0 + plumbing.s3_writes);
    let dynamodb = per(p.dynamodb_per_million_write_units, 1e6) * (plumbing.dynamodb_writes + 2.0)
        + per(p.dynamodb_per_million_read_units, 1e6) * plumbing.dynamodb_reads;
    let compute =
        |cpu: f64| images * cpu / 3600.0 * (p.fargate_per_vcpu_hour + 2.0 * p.fargate_per_gb_hour);
    let local_cpu = local.map_or(0.0, |m| m.cpu_seconds);
    let lambda_gb_seconds = 4.0 * 0.3 * 0.128;
    let console = per(p.dynamodb_per_million_write_units, 1e6) * (index_entries + 4.0);
    vec![
        Line {
            item: "SQS + SNS requests",
            rekognition: queueing,
            local: queueing,
            step_functions: 0.0,
        },
        Line {
            item: "S3 requests (upload, reads, thumbnails)",
            rekognition: s3,
            local: s3,
            step_functions: per(p.s3_put_per_thousand, 1e3),
        },
        Line {
            item: "DynamoDB on-demand",
            rekognition: dynamodb,
            local: dynamodb,
            step_functions: per(p.dynamodb_per_million_write_units, 1e6) * 3.0,
        },
        Line {
            item: "Rekognition DetectLabels (exact copies not called)",
            rekognition: per(p.rekognition_per_image_first_million, 1.0) * (1.0 - copies),
            local: 0.0,
            step_functions: per(p.rekognition_per_image_first_million, 1.0),
        },
        Line {
            item: "Finding exact copies (HEAD, content index, SHA-256 reads)",
            rekognition: finding_copies,
            local: finding_copies,
            step_functions: 0.0,
        },
        Line {
            item: "Compute (Fargate for the measured worker CPU; Lambda)",
            rekognition: compute(plumbing.cpu_seconds),
            local: compute(plumbing.cpu_seconds + local_cpu),
            step_functions: per(p.lambda_per_million_requests, 1e6) * 4.0
                + images * lambda_gb_seconds * p.lambda_per_gb_second,
        },
        Line {
            item: "Step Functions state transitions (4 per image)",
            rekognition: 0.0,
            local: 0.0,
            step_functions: per(p.step_functions_per_thousand_transitions, 1e3) * 4.0,
        },
        Line {
            item: "API Gateway (one upload request)",
            rekognition: per(p.api_gateway_rest_per_million, 1e6),
            local: per(p.api_gateway_rest_per_million, 1e6),
            step_functions: per(p.api_gateway_rest_per_million, 1e6),
        },
        Line {
            item: "Web console indexes (label entries, gallery keys)",
            rekognition: console,
            local: console,
            step_functions: 0.0,
        },
    ]
}

/// The table as Markdown, with a total row.
pub fn markdown(lines: &[Line], images: f64, prices: &Prices) -> String {
    let mut out = format!(
        "Cost of {images:.0} images (list prices, {}, recorded {}):\n\n| item | imgflow + Rekognition | imgflow + local detector | Step Functions + Lambda |\n|---|---:|---:|---:|\n",
        prices.region, prices.recorded
    );
    let (mut a, mut b, mut c) = (0.0, 0.0, 0.0);
    for l in lines {
        out.push_str(&format!(
            "| {} | ${:.2} | ${:.2} | ${:.2} |\n",
            l.item, l.rekognition, l.local, l.step_functions
        ));
        a += l.rekognition;
        b += l.local;
        c += l.step_functions;
    }
    out.push_str(&format!(
        "| **total** | **${a:.2}** | **${b:.2}** | **${c:.2}** |\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preview_prices_the_calls_and_says_how_long_they_take() {
        let prices = Prices::builtin();
        let line = detector_preview(1_000_000, None, &prices);
        assert!(
            line.starts_with("1000000 detector call(s): $1000.00 with Rekognition"),
            "{line}"
        );
        assert!(
            line.contains("about 5.6 h at Rekognition's default quota of 50/s"),
            "{line}"
        );
        assert!(line.contains("2.3 days at its 5/s elsewhere"), "{line}");
        let line = detector_preview(120, Some(2.0), &prices);
        assert!(line.contains("$0.12"), "{line}");
        assert!(line.ends_with("about 60 s at --rate 2/s"), "{line}");
    }

    /// The README's cost table is what `imgflow cost` prints from the recorded figures.
    #[test]
    fn the_readme_shows_what_the_command_prints() {
        let readme = include_str!("../../../README.md");
        let prices = Prices::builtin();
        let (plumbing, local) = read_summary(RECORDED_SUMMARY).unwrap();
        let printed = markdown(
            &table(&prices, &plumbing, local.as_ref(), 1e6, 15.0, 0.0),
            1e6,
            &prices,
        );
        let rows = &printed[printed.find("| item").unwrap()..];
        assert!(
            readme.contains(rows),
            "the README's cost table differs from `imgflow cost`; paste:\n{rows}"
        );
    }

    #[test]
    fn a_workers_s3_put_is_priced_as_a_put_and_old_summaries_read_without_one() {
        let prices = Prices::builtin();
        let without = table(&prices, &Measured::default(), None, 1e6, 0.0, 0.0)[1].local;
        let with = Measured {
            s3_writes: 1.0,
            ..Measured::default()
        };
        let with = table(&prices, &with, None, 1e6, 0.0, 0.0)[1].local;
        assert!((with - without - prices.s3_put_per_thousand * 1e3).abs() < 1e-9);
        let (recorded, _) = read_summary(RECORDED_SUMMARY).unwrap();
        assert_eq!(recorded.s3_writes, 1.0, "the thumbnail's PUT");
        assert!(recorded.stages.iter().any(|s| s == "thumbnail"));
        // A summary from before the thumbnail stage has no S3 writes column.
        let old = r#"[{"name": "fixed detector, steady 20/s", "stages": [{"stage": "ingest",
            "sqs_per_image": 1.0, "sns_per_image": 0.1, "s3_per_image": 3.0,
            "dynamodb_writes_per_image": 1.0, "dynamodb_reads_per_image": 0.0,
            "cpu_ms_per_image": 6.0}]}]"#;
        let (old, _) = read_summary(old).unwrap();
        assert_eq!((old.s3_writes, old.s3_reads), (0.0, 3.0));
    }

    #[test]
    fn rekognition_dominates_and_the_local_detector_removes_it() {
        let prices = Prices::builtin();
        let plumbing = Measured {
            sqs: 1.2,
            sns: 3.0,
            s3_reads: 3.0,
            dynamodb_writes: 4.0,
            dynamodb_reads: 0.0,
            cpu_seconds: 0.006,
            ..Measured::default()
        };
        let local = Measured {
            cpu_seconds: 0.1,
            ..Measured::default()
        };
        let lines = table(&prices, &plumbing, Some(&local), 1e6, 15.0, 0.0);
        assert!(
            (lines[8].local - 19.0 * 0.625).abs() < 1e-9,
            "15 entries + 4 index writes at $0.625/M write units"
        );
        let total = |f: fn(&Line) -> f64| lines.iter().map(f).sum::<f64>();
        assert!(
            (lines[3].rekognition - 1000.0).abs() < 1e-6,
            "$1 per 1,000 images"
        );
        assert!(
            (lines[6].step_functions - 100.0).abs() < 1e-6,
            "4 transitions × $0.025/1,000"
        );
        assert!(
            (lines[0].rekognition - 1.98).abs() < 1e-9,
            "1.2 × $0.40/M + 3 × $0.50/M"
        );
        assert!(total(|l| l.local) < total(|l| l.rekognition) / 10.0);
        assert!(total(|l| l.step_functions) > total(|l| l.rekognition));
    }

    #[test]
    fn exact_copies_cost_no_detector_call_but_every_image_pays_for_finding_them() {
        let prices = Prices::builtin();
        let none = table(&prices, &Measured::default(), None, 1e6, 0.0, 0.0);
        let quarter = table(&prices, &Measured::default(), None, 1e6, 0.0, 0.25);
        assert!((none[3].rekognition - 1000.0).abs() < 1e-6);
        assert!(
            (quarter[3].rekognition - 750.0).abs() < 1e-6,
            "a quarter not called"
        );
        assert_eq!(quarter[3].step_functions, none[3].step_functions);
        let finding = prices.s3_get_per_thousand * 1e3 * 1.25
            + prices.dynamodb_per_million_write_units
            + prices.dynamodb_per_million_read_units * 0.25;
        assert!((quarter[4].rekognition - finding).abs() < 1e-9);
        assert!(
            finding < 0.01 * 250.0,
            "finding copies costs under 1 % of the calls it saves"
        );
    }
}
