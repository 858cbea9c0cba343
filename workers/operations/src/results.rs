//! `imgflow results`: items as a table, and waiting for submitted images to finish.
use std::time::{Duration, Instant};

use imgflow_catalog::ports::{ImageCatalog, ImageQuery};
use imgflow_messages::ImageRecord;
use imgflow_runtime::{ports::ImageTable, PortError};

/// Up to `query.limit` images, newest first, reading as many pages as that takes.
pub async fn newest<C: ImageCatalog>(
    catalog: &C,
    query: &ImageQuery,
) -> Result<Vec<ImageRecord>, PortError> {
    let mut records = Vec::new();
    let mut page_query = query.clone();
    while records.len() < query.limit {
        page_query.limit = (query.limit - records.len()).min(100);
        let page = catalog.list(&page_query).await?;
        records.extend(page.images);
        match page.next {
            Some(next) => page_query.cursor = Some(next),
            None => break,
        }
    }
    Ok(records)
}

/// Renders items as an aligned table: key, status, and top labels or the reason.
pub fn table(records: &[ImageRecord]) -> String {
    if records.is_empty() {
        return "no matching images\n".into();
    }
    let rows: Vec<[String; 4]> = records
        .iter()
        .map(|r| {
            let detail = match &r.reason {
                Some(reason) => reason.clone(),
                None => labels_text(r),
            };
            // Whole: an id pastes into the API's and the console's /images/{id} as it is.
            [
                r.id.clone(),
                shorten(&r.key, 60),
                r.status.to_string(),
                detail,
            ]
        })
        .collect();
    let key_width = rows
        .iter()
        .map(|r| r[1].chars().count())
        .max()
        .unwrap_or(0)
        .max(3);
    let id_width = rows.iter().map(|r| r[0].len()).max().unwrap_or(0).max(2);
    let mut out = format!(
        "{:<id_width$}  {:<key_width$}  {:<8}  LABELS / REASON\n",
        "ID", "KEY", "STATUS"
    );
    for [id, key, status, detail] in rows {
        out.push_str(&format!(
            "{id:<id_width$}  {key:<key_width$}  {status:<8}  {detail}\n"
        ));
    }
    out
}

fn labels_text(record: &ImageRecord) -> String {
    let mut labels: Vec<_> = record.labels.iter().flatten().collect();
    labels.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    labels
        .iter()
        .take(5)
        .map(|l| format!("{} ({:.0}%)", l.name, l.confidence))
        .collect::<Vec<_>>()
        .join(", ")
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let tail: String = text
        .chars()
        .rev()
        .take(max - 1)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

/// For each submitted `(id, key)` not final in `records`, where it is waiting: no item yet
/// means ingest has not recorded it; `accepted` means labelling or storing is pending.
pub fn unfinished(submitted: &[(String, String)], records: &[ImageRecord]) -> Vec<String> {
    submitted
        .iter()
        .filter_map(|(id, key)| match records.iter().find(|r| &r.id == id) {
            None => Some(format!("{key}: waiting in ingest (no item yet)")),
            Some(r) if !r.status.is_final() => Some(format!(
                "{key}: {}, waiting for its labels (the label stage) and thumbnail (the thumbnail \
                 stage) to be stored (the store stage)",
                r.status
            )),
            Some(_) => None,
        })
        .collect()
}

/// For each stage with messages waiting and none being worked on: that no worker seems to
/// be receiving (what keeps a `submit --wait` waiting when a stage is not running).
pub fn stalled(stages: &[crate::status::StageStatus]) -> Vec<String> {
    stages
        .iter()
        .filter(|s| s.visible > 0 && s.in_flight == 0)
        .map(|s| {
            format!(
                "{stage}: {n} message(s) waiting in its queue and none being worked on: is an \
                 imgflow-{stage} worker running for this prefix?",
                stage = s.stage,
                n = s.visible
            )
        })
        .collect()
}

/// Polls until every id has a final status, or `timeout`. Returns the items in `ids` order
/// (absent ones omitted) and whether all finished.
pub async fn wait_for_final<T: ImageTable>(
    table: &T,
    ids: &[String],
    timeout: Duration,
) -> Result<(Vec<ImageRecord>, bool), PortError> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut records = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(record) = table.get(id).await? {
                records.push(record);
            }
        }
        let done = records.len() == ids.len() && records.iter().all(|r| r.status.is_final());
        if done || Instant::now() >= deadline {
            return Ok((records, done));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgflow_messages::ImageStatus;

    #[test]
    fn a_stage_with_waiting_messages_and_none_in_flight_is_named() {
        use crate::status::StageStatus;
        use imgflow_runtime::config::Stage;
        let stages = [
            StageStatus {
                stage: Stage::Ingest,
                delayed: 0,
                visible: 0,
                in_flight: 0,
                dead_lettered: 0,
            },
            StageStatus {
                stage: Stage::Label,
                delayed: 0,
                visible: 3,
                in_flight: 0,
                dead_lettered: 0,
            },
            StageStatus {
                stage: Stage::Store,
                delayed: 0,
                visible: 2,
                in_flight: 1,
                dead_lettered: 0,
            },
        ];
        assert_eq!(
            stalled(&stages),
            [
                "label: 3 message(s) waiting in its queue and none being worked on: is an \
              imgflow-label worker running for this prefix?"
            ]
        );
    }

    #[test]
    fn unfinished_images_name_the_stage_they_wait_in() {
        let accepted = ImageRecord::new(
            "b".into(),
            "bucket".into(),
            "incoming/b.png".into(),
            "e".into(),
            "2026-11-27T05:00:00.000000Z".into(),
            ImageStatus::Accepted,
        );
        let labeled = ImageRecord {
            id: "c".into(),
            status: ImageStatus::Labeled,
            ..accepted.clone()
        };
        let submitted = [
            ("a".to_owned(), "incoming/a.png".to_owned()),
            ("b".to_owned(), "incoming/b.png".to_owned()),
            ("c".to_owned(), "incoming/c.png".to_owned()),
        ];
        assert_eq!(
            unfinished(&submitted, &[accepted, labeled]),
            [
                "incoming/a.png: waiting in ingest (no item yet)",
                "incoming/b.png: accepted, waiting for its labels (the label stage) and thumbnail (the thumbnail stage) to be stored (the store stage)",
            ]
        );
        assert_eq!(table(&[]), "no matching images\n");
    }
}
