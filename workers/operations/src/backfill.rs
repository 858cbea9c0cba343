//! `imgflow backfill`: the objects that were in the bucket before the pipeline existed (or
//! whose events were lost) get the S3 event they never had.
//!
//! The objects come from listing the incoming prefix in key order, 100 keys a page, or, for
//! buckets too large to list, from an S3 Inventory report ([`inventory`]). For every 100
//! objects one BatchGetItem tells which already have a final item (skipped); the rest go to
//! the ingest queue as S3-shaped `ObjectCreated:Put` notifications, 10 per SendMessageBatch.
//! Ingest treats them as any event and duplicates are harmless, so a run interrupted anywhere
//! is resumed with `--start-after` (the last key of the last page done), and a second run
//! enqueues nothing.
use std::time::{Duration, Instant};

use imgflow_aws::{
    dynamodb::catalog::DynamoCatalog,
    s3::{ListedObject, S3Store},
    sqs::QueueAdmin,
};
use imgflow_messages::{created_notification, image_id};
use imgflow_runtime::PortError;

pub mod inventory;

/// Keys per page: BatchGetItem's limit, so a page costs one read request.
pub const PAGE: usize = 100;
/// `eventSource` of the notifications backfill sends.
pub const SOURCE: &str = "imgflow:backfill";

/// What to backfill.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    /// Keys under this prefix (inside the incoming prefix).
    pub prefix: String,
    /// Only keys after this one (resuming).
    pub start_after: Option<String>,
    /// At most this many messages per second.
    pub rate_per_sec: Option<f64>,
    /// Count only; send nothing.
    pub dry_run: bool,
}

/// Where a run is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Objects listed.
    pub listed: u64,
    /// Objects whose item is already final.
    pub skipped: u64,
    /// Objects sent to ingest (or that would be, in a dry run).
    pub enqueued: u64,
    /// In a dry run, objects with the ETag, size and checksum algorithm of one counted before:
    /// most likely exact copies (S3's ETag is the MD5 of a single-part upload without KMS),
    /// which the label stage labels from their original with no detector call (it finds copies
    /// by checksum, so only with the same algorithm). Copies of pictures labelled before the
    /// run, and copies whose ETags differ (multipart, SSE-KMS), are not counted.
    pub likely_copies: u64,
    /// The last key of the last page done: `--start-after` resumes after it.
    pub last_key: Option<String>,
}

/// A run that stopped part-way: what was done, and why it stopped.
#[derive(Debug, thiserror::Error)]
#[error("{error}{}", resume_hint(.done))]
pub struct Interrupted {
    /// What was done before the failure.
    pub done: Progress,
    /// The failure.
    #[source]
    pub error: PortError,
}

fn resume_hint(done: &Progress) -> String {
    match &done.last_key {
        Some(key) => format!(" (resume with --start-after {key:?})"),
        None => String::new(),
    }
}

/// The adapters a backfill uses.
pub struct Target<'a> {
    /// The image bucket.
    pub s3: &'a S3Store,
    /// Its name.
    pub bucket: &'a str,
    /// The items, to skip final ones.
    pub catalog: &'a DynamoCatalog,
    /// The ingest queue.
    pub ingest: &'a QueueAdmin,
    /// Its URL.
    pub ingest_url: &'a str,
}

/// One run: sends pages of objects, counting as it goes.
struct Run<'a, F> {
    target: &'a Target<'a>,
    options: &'a Options,
    started: Instant,
    done: Progress,
    /// In a dry run, hashes of the (ETag, size, algorithm) of the objects counted: 8 bytes an
    /// object (a real run keeps none, whatever the bucket's size).
    seen: std::collections::HashSet<u64>,
    on_page: F,
}

impl<'a, F: FnMut(&Progress)> Run<'a, F> {
    fn new(target: &'a Target<'a>, options: &'a Options, on_page: F) -> Self {
        Self {
            target,
            options,
            started: Instant::now(),
            done: Progress {
                last_key: options.start_after.clone(),
                ..Progress::default()
            },
            seen: Default::default(),
            on_page,
        }
    }

    /// Skips the objects whose item is final and sends the rest; `last_key` is where a resumed
    /// run would start.
    async fn page(
        &mut self,
        objects: &[ListedObject],
        last_key: Option<String>,
    ) -> Result<(), PortError> {
        let bucket = self.target.bucket;
        let ids: Vec<String> = objects
            .iter()
            .map(|o| image_id(bucket, &o.key, o.version_id.as_deref().unwrap_or(&o.etag)))
            .collect();
        let items = self.target.catalog.batch_get(&ids).await?;
        let sent: Vec<&ListedObject> = objects
            .iter()
            .zip(&ids)
            .filter(|(_, id)| !items.get(*id).is_some_and(|r| r.status.is_final()))
            .map(|(o, _)| o)
            .collect();
        for o in sent.iter().filter(|_| self.options.dry_run) {
            use std::hash::{DefaultHasher, Hash, Hasher};
            let mut h = DefaultHasher::new();
            (&o.etag, o.size, &o.checksum_algorithm).hash(&mut h);
            if !o.etag.is_empty() && !self.seen.insert(h.finish()) {
                self.done.likely_copies += 1;
            }
        }
        let bodies: Vec<String> = sent
            .iter()
            .map(|o| {
                created_notification(
                    bucket,
                    &o.key,
                    o.size,
                    &o.etag,
                    o.version_id.as_deref(),
                    &o.last_modified,
                    SOURCE,
                )
            })
            .collect();
        self.done.listed += objects.len() as u64;
        self.done.skipped += (objects.len() - bodies.len()) as u64;
        for chunk in bodies.chunks(10) {
            if !self.options.dry_run {
                if let Some(rate) = self.options.rate_per_sec {
                    pace(self.started, self.done.enqueued, rate).await;
                }
                self.target
                    .ingest
                    .send_batch(self.target.ingest_url, chunk)
                    .await?;
            }
            self.done.enqueued += chunk.len() as u64;
        }
        if last_key.is_some() {
            self.done.last_key = last_key;
        }
        (self.on_page)(&self.done);
        Ok(())
    }

    fn interrupted(self, error: PortError) -> Interrupted {
        Interrupted {
            done: self.done,
            error,
        }
    }
}

/// Whether backfill sends this object: under the prefix, after `--start-after`, not a folder
/// placeholder (ingest would only reject it).
fn wanted(key: &str, options: &Options) -> bool {
    key.starts_with(&options.prefix)
        && !key.ends_with('/')
        && options
            .start_after
            .as_deref()
            .is_none_or(|after| key > after)
}

/// Backfills from a listing of the prefix, calling `on_page` after every page.
pub async fn run(
    target: &Target<'_>,
    options: &Options,
    on_page: impl FnMut(&Progress),
) -> Result<Progress, Interrupted> {
    let mut run = Run::new(target, options, on_page);
    loop {
        let listing = target
            .s3
            .list_page(
                target.bucket,
                &options.prefix,
                run.done.last_key.as_deref(),
                PAGE as i32,
            )
            .await;
        let listing = match listing {
            Ok(listing) => listing,
            Err(error) => return Err(run.interrupted(error)),
        };
        let objects: Vec<ListedObject> = listing
            .objects
            .into_iter()
            .filter(|o| wanted(&o.key, options))
            .collect();
        let more = listing.next_after.is_some();
        let last_key = listing
            .next_after
            .or_else(|| objects.last().map(|o| o.key.clone()));
        if let Err(error) = run.page(&objects, last_key).await {
            return Err(run.interrupted(error));
        }
        if !more {
            return Ok(run.done);
        }
    }
}

/// Backfills the objects an S3 Inventory report lists (current versions under the prefix),
/// reading its data files from the inventory's destination bucket one at a time.
pub async fn run_inventory(
    target: &Target<'_>,
    manifest: &inventory::Manifest,
    options: &Options,
    on_page: impl FnMut(&Progress),
) -> Result<Progress, Interrupted> {
    let mut run = Run::new(target, options, on_page);
    // Inventory rows are not in key order: no resume point to name.
    run.done.last_key = None;
    for file in &manifest.files {
        // Rows stream in; a page is sent as soon as it is full, so memory holds one page.
        let mut rows = inventory::read_file(target.s3, manifest, file);
        let mut page = Vec::with_capacity(PAGE);
        loop {
            let row = rows.recv().await;
            let done = row.is_none();
            match row {
                Some(Err(error)) => return Err(run.interrupted(error)),
                Some(Ok(object)) if wanted(&object.key, options) => page.push(object),
                Some(Ok(_)) => continue,
                None => {}
            }
            if page.len() == PAGE || (done && !page.is_empty()) {
                if let Err(error) = run.page(&page, None).await {
                    return Err(run.interrupted(error));
                }
                page.clear();
            }
            if done {
                break;
            }
        }
    }
    Ok(run.done)
}

/// Waits until sending `sent` messages at `rate` per second would be on schedule.
pub(crate) async fn pace(started: Instant, sent: u64, rate: f64) {
    let due = started + Duration::from_secs_f64(sent as f64 / rate.max(0.001));
    tokio::time::sleep_until(due.into()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_under_the_prefix_after_the_resume_point_and_no_folders() {
        let options = Options {
            prefix: "incoming/2024/".into(),
            start_after: Some("incoming/2024/b.png".into()),
            ..Options::default()
        };
        assert!(wanted("incoming/2024/c.png", &options));
        assert!(!wanted("incoming/2024/b.png", &options));
        assert!(!wanted("incoming/2024/a.png", &options));
        assert!(!wanted("incoming/2025/c.png", &options));
        assert!(!wanted("incoming/2024/z/", &options));
    }
}
