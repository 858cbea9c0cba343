//! The web console in a real browser: Debian's headless Chromium, driven over chromedriver,
//! against the worker binaries (local detector) and `imgflow-api` on the emulator. Screenshots
//! of every page land in `target/console/`.
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use base64::Engine;
use fantoccini::{Client, ClientBuilder, Locator};
use imgflow_e2e::{
    free_port, http_ok, local_detector_on_onnxruntime, log_dir, photo, spawn_binary, spawn_worker,
    until, TestPipeline,
};
use imgflow_runtime::config::Stage;
use serde_json::json;
use tokio::process::Child;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// chromedriver on a loopback port, and a headless Chromium session through it.
async fn open_browser(logs: &Path) -> (Child, Client) {
    for binary in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(binary).exists(),
            "{binary} is missing: install Debian's chromium and chromium-driver (scripts/test does)"
        );
    }
    let port = free_port();
    let log = std::fs::File::create(logs.join("chromedriver.log")).unwrap();
    let driver = tokio::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg("--verbose")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    until("chromedriver", Duration::from_secs(30), || async {
        http_ok(&format!("{url}/status")).await.then_some(())
    })
    .await;
    // A fresh, empty profile, named without `..` (chromedriver reads the browser's port from
    // a file in it).
    let profile = logs.join("chromium-profile");
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).unwrap();
    let profile = profile.canonicalize().unwrap();
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                "--window-size=1280,1500",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&url)
        .await
        .expect("a chromium session");
    (driver, client)
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

async fn count(browser: &Client, css: &str) -> usize {
    browser
        .find_all(Locator::Css(css))
        .await
        .map_or(0, |v| v.len())
}

/// Drops `files` on the element `#upload` as a user dragging them from a file manager would:
/// a DataTransfer holding real File objects, through dragenter, dragover and drop.
async fn drop_files(browser: &Client, files: &[(&str, &str, Vec<u8>)]) {
    let files: Vec<_> = files
        .iter()
        .map(|(name, mime, bytes)| {
            json!({
                "name": name,
                "type": mime,
                "data": base64::engine::general_purpose::STANDARD.encode(bytes),
            })
        })
        .collect();
    browser
        .execute(
            r#"
            const transfer = new DataTransfer();
            for (const f of arguments[0]) {
                const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], f.name, { type: f.type }));
            }
            const zone = document.getElementById("upload");
            for (const type of ["dragenter", "dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(type, {
                    bubbles: true, cancelable: true, dataTransfer: transfer,
                }));
            }
            "#,
            vec![json!(files)],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_uploads_boxes_search_and_the_pipeline_in_a_real_browser() {
    let p = TestPipeline::new("e2e-console").await;
    let prefix = p.names.prefix.clone();
    let logs = log_dir(&prefix);
    std::fs::create_dir_all(&logs).unwrap();
    let quiet = [("IMGFLOW_METRICS_ADDR", "off".to_owned())];
    // The local detector on ONNX Runtime here (tract in the other end-to-end tests), so the
    // label binary's second engine is exercised end to end.
    let [detector, engine, library] = local_detector_on_onnxruntime();
    let local = [quiet[0].clone(), detector, engine, library];
    let api_port = free_port();
    let _processes = [
        spawn_worker(Stage::Ingest, &prefix, &logs, &quiet),
        spawn_worker(Stage::Label, &prefix, &logs, &local),
        spawn_worker(Stage::Store, &prefix, &logs, &quiet),
        spawn_worker(Stage::Thumbnail, &prefix, &logs, &quiet),
        spawn_binary(
            "imgflow-api",
            &prefix,
            &logs,
            &[("IMGFLOW_API_ADDR", format!("127.0.0.1:{api_port}"))],
        ),
    ];
    let api = format!("http://127.0.0.1:{api_port}");
    until("the API", Duration::from_secs(30), || async {
        http_ok(&format!("{api}/healthz")).await.then_some(())
    })
    .await;
    // A poison message, so the label stage has a dead letter to show.
    p.send(Stage::Label, "this is not an ImageAccepted message")
        .await;
    // And a key that is markup: it must show as text.
    let hostile_key = "incoming/<script>alert('owned')</script>.jpg";
    let hostile_id = p.put(hostile_key, photo("rocket.jpg")).await;

    let (_driver, browser) = open_browser(&logs).await;

    // Upload two photos by drag and drop onto the gallery.
    browser.goto(&format!("{api}/images")).await.unwrap();
    drop_files(
        &browser,
        &[
            ("dog.jpg", "image/jpeg", photo("dog.jpg")),
            ("giraffe.jpg", "image/jpeg", photo("giraffe.jpg")),
        ],
    )
    .await;
    until(
        "both uploads to finish",
        Duration::from_secs(60),
        || async { (count(&browser, "#uploads li.ok").await == 2).then_some(()) },
    )
    .await;
    assert_eq!(count(&browser, "#uploads li.failed").await, 0);

    // The gallery refreshes itself until all three are labeled (no reload by the test).
    until("three labeled cards", Duration::from_secs(180), || async {
        (count(&browser, "#grid .card [data-status=labeled]").await >= 3).then_some(())
    })
    .await;
    let cards = browser.find_all(Locator::Css("#grid .card")).await.unwrap();
    let mut texts = Vec::new();
    for card in &cards {
        texts.push(card.text().await.unwrap());
    }
    assert!(
        texts
            .iter()
            .any(|t| t.contains("<script>alert('owned')</script>.jpg")),
        "the hostile key shows as text: {texts:?}"
    );
    assert!(browser.get_alert_text().await.is_err(), "no script ran");
    // Thumbnails really load (served by the API, decoded by the browser).
    until("thumbnails", Duration::from_secs(30), || async {
        let loaded = browser
            .execute(
                "return [...document.querySelectorAll('#grid .card img')]\
                 .filter((i) => i.complete && i.naturalWidth > 0).length",
                vec![],
            )
            .await
            .ok()?;
        (loaded.as_u64()? >= 3).then_some(())
    })
    .await;
    screenshot(&browser, "gallery").await;
    // Each is the thumbnail stage's stored JPEG, not a placeholder.
    for card in &cards {
        let href = card.attr("href").await.unwrap().unwrap();
        let url = format!("{api}{href}/thumbnail");
        until("a stored thumbnail", Duration::from_secs(60), || async {
            let answer = reqwest::get(&url).await.ok()?;
            (answer.headers().get("content-type")? == "image/jpeg").then_some(())
        })
        .await;
    }

    // Open the dog: its boxes are drawn over the photo, each named.
    let dog_href = {
        let mut href = None;
        for card in &cards {
            if card.text().await.unwrap().contains("api/") {
                let link = card.attr("href").await.unwrap().unwrap();
                let record: serde_json::Value = reqwest::get(format!("{api}{link}"))
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let has_dog = record["labels"]
                    .as_array()
                    .is_some_and(|ls| ls.iter().any(|l| l["Name"] == "Dog"));
                if has_dog {
                    href = Some(link);
                }
            }
        }
        href.expect("the uploaded dog photo is labeled Dog")
    };
    browser.goto(&format!("{api}{dog_href}")).await.unwrap();
    until("the photo", Duration::from_secs(30), || async {
        let v = browser
            .execute(
                "const i = document.querySelector('.photo img'); return i && i.complete && i.naturalWidth",
                vec![],
            )
            .await
            .ok()?;
        (v.as_u64()? > 0).then_some(())
    })
    .await;
    let boxes = browser.find_all(Locator::Css(".photo .box")).await.unwrap();
    assert!(!boxes.is_empty(), "the dog photo has instance boxes");
    let mut box_labels = Vec::new();
    for b in &boxes {
        let (_, _, width, height) = b.rectangle().await.unwrap();
        assert!(width > 5.0 && height > 5.0, "a box is drawn with a size");
        box_labels.push(b.attr("data-label").await.unwrap().unwrap());
    }
    assert!(box_labels.iter().any(|l| l == "Dog"), "{box_labels:?}");
    // The two branches side by side, then the join's completion (the page reloads itself
    // until the thumbnail branch has finished).
    assert_eq!(count(&browser, ".timeline [data-branch]").await, 2);
    until(
        "the completed timeline",
        Duration::from_secs(60),
        || async { (count(&browser, ".timeline li.done").await == 6).then_some(()) },
    )
    .await;
    assert_eq!(
        count(&browser, ".timeline [data-branch=thumbnail] li.done").await,
        1
    );
    screenshot(&browser, "image").await;

    // Search by one of its labels through the gallery's filter, in another case, by parent.
    let parent = browser
        .execute(
            "return [...document.querySelectorAll('table.labels tbody tr')]\
             .find((r) => r.cells[0].textContent === 'Dog').cells[2].querySelector('a').textContent",
            vec![],
        )
        .await
        .unwrap();
    let parent = parent.as_str().expect("Dog has a parent").to_owned();
    browser.goto(&format!("{api}/images")).await.unwrap();
    let field = browser
        .find(Locator::Css("input[name=label]"))
        .await
        .unwrap();
    field.send_keys(&parent.to_uppercase()).await.unwrap();
    browser
        .find(Locator::Css("form.filters button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until("search results", Duration::from_secs(30), || async {
        let url = browser.current_url().await.ok()?;
        url.query()?.contains("label=").then_some(())
    })
    .await;
    let found = browser.find_all(Locator::Css("#grid .card")).await.unwrap();
    let mut hrefs = Vec::new();
    for card in &found {
        hrefs.push(card.attr("href").await.unwrap().unwrap());
    }
    assert!(
        hrefs.contains(&dog_href),
        "{parent:?} finds the dog: {hrefs:?}"
    );
    screenshot(&browser, "search").await;

    // The pipeline page counts them, refreshing itself, and marks the label stage's DLQ.
    browser.goto(&format!("{api}/")).await.unwrap();
    until(
        "the store and thumbnail stages to count 3",
        Duration::from_secs(60),
        || async {
            let n = browser
                .find(Locator::Css("[data-stage=store] [data-field=recent_total]"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let thumbnails = browser
                .find(Locator::Css(
                    "[data-stage=thumbnail] [data-field=recent_total]",
                ))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            (n.parse::<u64>().ok()? >= 3 && thumbnails.parse::<u64>().ok()? >= 3).then_some(())
        },
    )
    .await;
    assert_eq!(
        count(&browser, ".fork .lane").await,
        2,
        "two branches after ingest"
    );
    let ingest = browser
        .find(Locator::Css(
            "[data-stage=ingest] [data-field=recent_total]",
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(ingest.parse::<u64>().unwrap() >= 3);
    until(
        "the label stage's DLQ mark",
        Duration::from_secs(30),
        || async { (count(&browser, "[data-stage=label].has-dlq").await == 1).then_some(()) },
    )
    .await;
    assert_eq!(count(&browser, ".has-dlq").await, 1, "only the label stage");
    screenshot(&browser, "pipeline").await;

    browser
        .find(Locator::Css("[data-stage=label] a.dlq"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The GET shows the count only; reading samples is an explicit same-origin POST.
    until("the dead letters page", Duration::from_secs(30), || async {
        browser.find(Locator::Css("form.sample button")).await.ok()
    })
    .await
    .click()
    .await
    .unwrap();
    until(
        "the dead letters' samples",
        Duration::from_secs(30),
        || async {
            let body = browser
                .find(Locator::Css("main"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            body.contains("malformed").then_some(())
        },
    )
    .await;
    screenshot(&browser, "dead-letters").await;

    // Deleting an object takes its image out of the gallery, with its thumbnail.
    p.aws
        .s3
        .delete_object()
        .bucket(&p.names.bucket)
        .key(hostile_key)
        .send()
        .await
        .unwrap();
    browser.goto(&format!("{api}/images")).await.unwrap();
    until(
        "the deleted image gone from the gallery",
        Duration::from_secs(60),
        || async {
            let grid = browser
                .find(Locator::Css("#grid"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            (!grid.contains("<script>")).then_some(())
        },
    )
    .await;
    let record: serde_json::Value = reqwest::get(format!("{api}/images/{hostile_id}?format=json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(record["status"], "deleted", "{record}");
    let thumbnail = p
        .aws
        .s3
        .head_object()
        .bucket(&p.names.bucket)
        .key(imgflow_messages::thumbnail_key(&hostile_id))
        .send()
        .await;
    assert!(
        thumbnail.is_err(),
        "the thumbnail was deleted with its object"
    );
    browser
        .goto(&format!("{api}/images/{hostile_id}"))
        .await
        .unwrap();
    screenshot(&browser, "deleted").await;

    browser.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_to_listen_beyond_loopback_without_a_key_and_enforces_one_it_has() {
    let p = TestPipeline::new("e2e-api-key").await;
    let logs = log_dir(&p.names.prefix);
    // Refused before it binds anything.
    let mut open = spawn_binary(
        "imgflow-api",
        &p.names.prefix,
        &logs,
        &[("IMGFLOW_API_ADDR", "0.0.0.0:0".into())],
    );
    let status = tokio::time::timeout(Duration::from_secs(30), open.wait())
        .await
        .expect("exits at once")
        .unwrap();
    assert!(!status.success());
    let log = std::fs::read_to_string(logs.join("imgflow-api.log")).unwrap();
    assert!(log.contains("IMGFLOW_API_KEY"), "{log}");

    let port = free_port();
    let key = "a-long-enough-test-key";
    let _api = spawn_binary(
        "imgflow-api",
        &p.names.prefix,
        &logs,
        &[
            ("IMGFLOW_API_ADDR", format!("127.0.0.1:{port}")),
            ("IMGFLOW_API_KEY", key.into()),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    until("the API", Duration::from_secs(30), || async {
        http_ok(&format!("{base}/healthz")).await.then_some(())
    })
    .await;
    let http = reqwest::Client::new();
    let without = http.get(format!("{base}/images")).send().await.unwrap();
    assert_eq!(without.status(), reqwest::StatusCode::UNAUTHORIZED);
    let with = http
        .get(format!("{base}/images"))
        .basic_auth("anyone", Some(key))
        .send()
        .await
        .unwrap();
    assert_eq!(with.status(), reqwest::StatusCode::OK);
}
