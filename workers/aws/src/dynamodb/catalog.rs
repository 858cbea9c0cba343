//! The [`ImageCatalog`] port on DynamoDB: the gallery reads the images table's `by_day` and
//! `by_status` indexes day by day, newest first; label search reads the index table. Neither
//! scans; both read every shard of a partition at once and merge (`keys::merge_newest`). Both then read the page's items with one BatchGetItem (the indexes hold keys only, so
//! they cost one small write per status change rather than a copy of every item).
use std::collections::HashMap;

use std::sync::Arc;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use chrono::NaiveDate;
use imgflow_catalog::{
    keys::{
        day_partitions, merge_newest, status_day_partitions, Cursor, BY_DAY_INDEX, BY_STATUS_INDEX,
        MAX_PAGE,
    },
    ports::{ImageCatalog, ImagePage, ImageQuery},
};
use imgflow_messages::{ImageRecord, ImageStatus};
use imgflow_runtime::{PortError, PortErrorKind};

use super::dynamodb_error;
use super::{codec::item_to_record, index::IndexTable, query_newest, DynamoImageTable, Partition};

/// Days one page request may walk back through before it answers (with a cursor to go on).
const DAYS_PER_REQUEST: usize = 31;

fn invalid_cursor(detail: impl std::fmt::Display) -> PortError {
    PortError::new(
        PortErrorKind::Invalid,
        "reading the page cursor",
        detail.to_string(),
    )
}

/// The console's catalog: the images table for the gallery, the index table for labels.
#[derive(Debug, Clone)]
pub struct DynamoCatalog {
    images: DynamoImageTable,
    index: IndexTable,
    /// When the images table was created (`YYYY-MM-DD`): the gallery never walks back
    /// before it.
    created_day: Arc<tokio::sync::OnceCell<String>>,
}

impl DynamoCatalog {
    /// Lists `images`, searching labels in `index`.
    pub fn new(images: DynamoImageTable, index: IndexTable) -> Self {
        Self {
            images,
            index,
            created_day: Arc::default(),
        }
    }
}

impl ImageCatalog for DynamoCatalog {
    async fn list(&self, query: &ImageQuery) -> Result<ImagePage, PortError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        let cursor = query
            .cursor
            .as_deref()
            .map(Cursor::decode)
            .transpose()
            .map_err(invalid_cursor)?;
        match (&query.label, cursor) {
            (Some(label), None) => self.list_label(label, query.status, None, limit).await,
            (Some(label), Some(Cursor::Label { after })) => {
                self.list_label(label, query.status, Some(after), limit)
                    .await
            }
            (None, None) => self.list_days(query.status, None, limit).await,
            (None, Some(Cursor::Day { day, after })) => {
                let day = NaiveDate::parse_from_str(&day, "%Y-%m-%d").map_err(invalid_cursor)?;
                self.list_days(query.status, Some((day, after)), limit)
                    .await
            }
            _ => Err(invalid_cursor("the cursor belongs to a different listing")),
        }
    }
}

impl DynamoCatalog {
    async fn list_label(
        &self,
        label: &str,
        status: Option<ImageStatus>,
        after: Option<String>,
        limit: usize,
    ) -> Result<ImagePage, PortError> {
        let hits = self
            .index
            .images_with_label(label, after.as_deref(), limit)
            .await?;
        let ids: Vec<String> = hits.hits.iter().map(|(id, _)| id.clone()).collect();
        let mut records = self.batch_get(&ids).await?;
        // An entry whose labeled_at differs from the item's is left from labels since
        // replaced (its clean-up failed), one of a deleted image from labels stored while the
        // deletion ran: the item is the truth.
        let images = hits
            .hits
            .iter()
            .filter_map(|(id, labeled_at)| {
                let record = records.remove(id)?;
                let current = record.labeled_at.as_deref() == Some(labeled_at.as_str());
                let wanted = status.is_none_or(|s| s == record.status) && !record.status.is_gone();
                (current && wanted).then_some(record)
            })
            .collect();
        Ok(ImagePage {
            images,
            next: hits.next.map(|after| Cursor::Label { after }.encode()),
        })
    }

    async fn list_days(
        &self,
        status: Option<ImageStatus>,
        from: Option<(NaiveDate, Option<String>)>,
        limit: usize,
    ) -> Result<ImagePage, PortError> {
        let oldest = self.created_day().await;
        // Where to read next: a day, and the sort key to continue after within it.
        let mut cursor = Some(from.unwrap_or((chrono::Utc::now().date_naive(), None)));
        let mut ids: Vec<String> = Vec::new();
        for _ in 0..DAYS_PER_REQUEST {
            let Some((day, after)) = cursor.take() else {
                break;
            };
            let (found, rest_of_day) = self
                .query_day(status, day, after, limit - ids.len())
                .await?;
            ids.extend(found);
            cursor = match rest_of_day {
                Some(key) => Some((day, Some(key))),
                None => day.pred_opt().filter(|d| *d >= oldest).map(|d| (d, None)),
            };
            if ids.len() >= limit {
                break;
            }
        }
        let mut records = self.batch_get(&ids).await?;
        let images = ids.iter().filter_map(|id| records.remove(id)).collect();
        Ok(ImagePage {
            images,
            next: cursor.map(|(day, after)| {
                Cursor::Day {
                    day: day.format("%Y-%m-%d").to_string(),
                    after,
                }
                .encode()
            }),
        })
    }

    /// Up to `limit` ids received on `day` (in `status`, if given), newest first, below the
    /// sort key `after`; and the sort key to continue below when the day holds more. One
    /// Query per shard of the day, at once, merged.
    async fn query_day(
        &self,
        status: Option<ImageStatus>,
        day: NaiveDate,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>), PortError> {
        let day = day.format("%Y-%m-%d").to_string();
        let (index, attribute, partitions) = match status {
            Some(s) => (
                BY_STATUS_INDEX,
                "status_day",
                status_day_partitions(s, &day),
            ),
            None => (BY_DAY_INDEX, "day", day_partitions(&day)),
        };
        let pages = futures::future::try_join_all(partitions.into_iter().map(|value| {
            let partition = Partition {
                table: &self.images.table,
                index: Some(index),
                key: (attribute, value),
                sort_key: "received_key",
            };
            query_newest(
                &self.images.client,
                partition,
                after.as_deref(),
                limit,
                |item| item.get("id")?.as_s().ok().cloned(),
            )
        }))
        .await?;
        Ok(merge_newest(pages, limit))
    }

    /// The table's creation day; on failure, a year ago (the gallery then walks further back
    /// than it needs to, a page at a time).
    async fn created_day(&self) -> NaiveDate {
        let created = self
            .created_day
            .get_or_try_init(|| async {
                let output = self
                    .images
                    .client
                    .describe_table()
                    .table_name(&self.images.table)
                    .send()
                    .await
                    .map_err(|e| {
                        dynamodb_error(format!("dynamodb:DescribeTable {}", self.images.table), e)
                    })?;
                let seconds = output
                    .table
                    .and_then(|t| t.creation_date_time)
                    .map_or(0, |t| t.secs());
                let day = chrono::DateTime::from_timestamp(seconds, 0)
                    .unwrap_or_default()
                    .date_naive();
                Ok::<_, PortError>(day.format("%Y-%m-%d").to_string())
            })
            .await;
        match created {
            Ok(day) => NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "table creation time unknown; assuming a year");
                chrono::Utc::now().date_naive() - chrono::Days::new(366)
            }
        }
    }

    /// The items of `ids` that exist, in one BatchGetItem per 100 ids (DynamoDB's limit; more
    /// only for keys DynamoDB left unprocessed).
    pub async fn batch_get(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, ImageRecord>, PortError> {
        let mut unique = ids.to_vec();
        unique.sort();
        unique.dedup();
        let mut records = HashMap::new();
        for chunk in unique.chunks(MAX_PAGE) {
            records.extend(self.batch_get_page(chunk).await?);
        }
        Ok(records)
    }

    /// [`DynamoCatalog::batch_get`] of at most [`MAX_PAGE`] distinct ids.
    async fn batch_get_page(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, ImageRecord>, PortError> {
        let mut records = HashMap::new();
        if ids.is_empty() {
            return Ok(records);
        }
        let keys: Vec<_> = ids
            .iter()
            .map(|id| HashMap::from([("id".to_owned(), AttributeValue::S(id.clone()))]))
            .collect();
        let mut request = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .build()
                .expect("keys are set"),
        );
        // Unprocessed keys are DynamoDB shedding load: ask again for those only.
        for attempt in 0..6u32 {
            let Some(keys) = request.take() else {
                break;
            };
            let output = self
                .images
                .client
                .batch_get_item()
                .request_items(&self.images.table, keys)
                .send()
                .await
                .map_err(|e| {
                    dynamodb_error(format!("dynamodb:BatchGetItem {}", self.images.table), e)
                })?;
            for item in output
                .responses
                .and_then(|mut r| r.remove(&self.images.table))
                .unwrap_or_default()
            {
                let record = item_to_record(item)?;
                records.insert(record.id.clone(), record);
            }
            request = output
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.images.table))
                .filter(|k| !k.keys.is_empty());
            if request.is_some() {
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
            }
        }
        if request.is_some() {
            return Err(PortError::new(
                PortErrorKind::Throttled,
                format!("dynamodb:BatchGetItem {}", self.images.table),
                "keys still unprocessed after retries",
            ));
        }
        Ok(records)
    }
}
