//! The AWS SDK's CPU per request, with nothing else in the way: DynamoDB GetItem against an
//! in-process server that answers at once (another thread), the client on this thread's
//! one-thread runtime as in the workers, its CPU (kernel time included) from
//! `/proc/thread-self/schedstat`. Linux only.
//!
//! `cargo run --release -p imgflow-aws --example request_cost -- [VARIANT,...]` where a variant
//! turns off one SDK layer to see what it costs: `nostall` (stalled-stream protection),
//! `noretry` (the retry layer), `notimeout` (the timeouts), `bare` (imgflow's call-counting
//! interceptor). The README's performance section quotes it.
use aws_config::BehaviorVersion;

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn serve() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().fallback(|| async {
                (
                    [("content-type", "application/x-amz-json-1.0")],
                    r#"{"Item":{"id":{"S":"x"},"status":{"S":"labeled"}}}"#,
                )
            });
            axum::serve(listener, app).await.unwrap();
        });
    });
    port
}

fn main() {
    let port = serve();
    let variant = std::env::args().nth(1).unwrap_or_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "k", "s", None, None, "t",
            ))
            .timeout_config(imgflow_aws::timeouts());
        for v in variant.split(',') {
            loader = match v {
                "nostall" => loader.stalled_stream_protection(
                    aws_config::stalled_stream_protection::StalledStreamProtectionConfig::disabled(
                    ),
                ),
                "noretry" => loader.retry_config(aws_config::retry::RetryConfig::disabled()),
                "notimeout" => {
                    loader.timeout_config(aws_config::timeout::TimeoutConfig::disabled())
                }
                "" | "base" | "bare" => loader,
                other => panic!("unknown variant {other}: nostall, noretry, notimeout or bare"),
            };
        }
        let config = loader.load().await;
        let client = if variant.contains("bare") {
            aws_sdk_dynamodb::Client::new(&config)
        } else {
            imgflow_aws::AwsClients::new(&config).dynamodb
        };
        let get = || {
            client
                .get_item()
                .table_name("t")
                .key("id", aws_sdk_dynamodb::types::AttributeValue::S("x".into()))
                .send()
        };
        for _ in 0..500 {
            get().await.unwrap();
        }
        let n = 5000;
        let (cpu, wall) = (thread_cpu_ns(), std::time::Instant::now());
        for _ in 0..n {
            get().await.unwrap();
        }
        let cpu = thread_cpu_ns() - cpu;
        println!(
            "{variant:>24}: {:.1} µs CPU per GetItem ({:.1} µs wall)",
            cpu as f64 / n as f64 / 1e3,
            wall.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    });
}
