//! The images table in memory.
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use imgflow_messages::{ImageLabeled, ImageRecord, ImageRef, ImageStatus};

use crate::{
    ports::{
        gone_reason, Branch, CompletionClaim, Ending, GoneImage, ImageTable, Join, LabelClaim,
        LabelsWrite, Revival, StoredLabels, ThumbnailOutcome, ThumbnailWrite, WriteOutcome,
        CLAIM_DONE, RELABEL_CLAIM_PREFIX,
    },
    PortError, PortErrorKind,
};

/// A recorded completion: the branch, whether it was announced, and the holder's claim.
type Completion = (Branch, bool, CompletionClaim);

/// The images table in memory, with the same conditions as DynamoDB's. Clones share one
/// table, as clients of one DynamoDB table do.
#[derive(Debug, Default, Clone)]
pub struct FakeTable {
    items: Arc<Mutex<HashMap<String, ImageRecord>>>,
    claims: Arc<Mutex<HashMap<String, (String, String)>>>,
    kept: Arc<Mutex<HashMap<String, String>>>,
    /// Per image: the branch that recorded the completion, whether it was announced, and the
    /// claim of the message that recorded it.
    completions: Arc<Mutex<HashMap<String, Completion>>>,
    /// The outcomes of the next writes: `None` succeeds, `Some` fails with that kind.
    failures: Arc<Mutex<VecDeque<Option<PortErrorKind>>>>,
}

impl FakeTable {
    /// Fails the next item writes (`record_*`) with these kinds, in order.
    pub fn failing_writes(self, kinds: impl IntoIterator<Item = PortErrorKind>) -> Self {
        self.failures
            .lock()
            .unwrap()
            .extend(kinds.into_iter().map(Some));
        self
    }

    /// Lets the next `ok` writes through, then fails the following ones with `kinds` (a
    /// process that dies between two writes). Clones share the schedule.
    pub fn fail_writes_after(&self, ok: usize, kinds: impl IntoIterator<Item = PortErrorKind>) {
        let mut failures = self.failures.lock().unwrap();
        failures.extend(std::iter::repeat_n(None, ok));
        failures.extend(kinds.into_iter().map(Some));
    }

    /// Drops the failures scheduled and not yet met.
    pub fn clear_failures(&self) {
        self.failures.lock().unwrap().clear();
    }

    /// Every item.
    pub fn items(&self) -> HashMap<String, ImageRecord> {
        self.items.lock().unwrap().clone()
    }

    /// The claim granted, with the detection a previous holder kept, if any.
    fn granted(&self, image_id: &str) -> LabelClaim {
        LabelClaim::Granted {
            pending: self.kept.lock().unwrap().get(image_id).cloned(),
        }
    }

    /// The join as `branch` sees it once its fact is in `record`.
    fn join(&self, branch: Branch, record: &ImageRecord) -> Join {
        let other_done = match branch {
            Branch::Labels => record.thumbnail.is_some() || record.thumbnail_error.is_some(),
            Branch::Thumbnail => record.labeled_at.is_some(),
        };
        let completions = self.completions.lock().unwrap();
        let completion = completions.get(&record.id);
        Join::after(
            branch,
            other_done,
            completion.map(|(by, _, _)| by.as_str()),
            completion.is_some_and(|(_, announced, _)| *announced),
        )
    }

    fn injected_failure(&self) -> Result<(), PortError> {
        match self.failures.lock().unwrap().pop_front().flatten() {
            Some(kind) => Err(PortError::new(
                kind,
                "fake:UpdateItem",
                format!("injected {}", kind.as_str()),
            )),
            None => Ok(()),
        }
    }
}

impl ImageTable for FakeTable {
    async fn write_verdict(&self, record: &ImageRecord) -> Result<WriteOutcome, PortError> {
        self.injected_failure()?;
        let mut items = self.items.lock().unwrap();
        if items
            .get(&record.id)
            .is_some_and(|r| r.status == ImageStatus::Labeled || r.status.is_gone())
        {
            return Ok(WriteOutcome::Superseded);
        }
        check_item_size(record)?;
        // An update of ingest's attributes: what other writers recorded stays.
        let mut record = record.clone();
        if let Some(old) = items.get(&record.id) {
            record.ledger_version = old.ledger_version;
            record.thumbnail = old.thumbnail.clone();
            record.thumbnail_error = old.thumbnail_error.clone();
            record.completed_at = old.completed_at.clone();
        }
        items.insert(record.id.clone(), record);
        Ok(WriteOutcome::Written)
    }

    async fn write_failure(
        &self,
        image: &ImageRef,
        status: ImageStatus,
        reason: &str,
    ) -> Result<WriteOutcome, PortError> {
        self.injected_failure()?;
        let mut items = self.items.lock().unwrap();
        match items.get_mut(&image.image_id) {
            Some(r) if r.status != ImageStatus::Labeled && !r.status.is_gone() => {
                r.status = status;
                r.reason = Some(reason.into());
                Ok(WriteOutcome::Written)
            }
            _ => Ok(WriteOutcome::Superseded),
        }
    }

    async fn write_labels(
        &self,
        labeled: &ImageLabeled,
        stored_at: &str,
    ) -> Result<LabelsWrite, PortError> {
        self.injected_failure()?;
        let mut items = self.items.lock().unwrap();
        let image = &labeled.image;
        let record = items.entry(image.image_id.clone()).or_insert_with(|| {
            let mut r = ImageRecord::new(
                image.image_id.clone(),
                image.bucket.clone(),
                image.key.clone(),
                image.etag.clone(),
                image.received_at.clone(),
                ImageStatus::Accepted,
            );
            r.version_id = image.version_id.clone();
            r.trace_id = Some(image.trace_id.clone());
            r
        });
        if record.status.is_gone()
            || record
                .labeled_at
                .as_ref()
                .is_some_and(|t| *t > labeled.labeled_at)
        {
            return Ok(LabelsWrite::Superseded);
        }
        let replaced = record
            .labeled_at
            .clone()
            .zip(record.labels.clone())
            .map(|(labeled_at, labels)| StoredLabels { labeled_at, labels });
        record.status = ImageStatus::Labeled;
        record.reason = None;
        record.labels = Some(labeled.labels.clone());
        record.detector = Some(labeled.detector.clone());
        record.label_model_version = Some(labeled.label_model_version.clone());
        record.labeled_at = Some(labeled.labeled_at.clone());
        record.duplicate_of = labeled.duplicate_of.clone();
        record.stored_at = Some(stored_at.to_owned());
        check_item_size(record)?;
        self.kept.lock().unwrap().remove(&image.image_id);
        let join = self.join(Branch::Labels, record);
        Ok(LabelsWrite::Written { replaced, join })
    }

    async fn claim_labeling(
        &self,
        image_id: &str,
        detector: &str,
        token: &str,
        now: &str,
        until: &str,
    ) -> Result<LabelClaim, PortError> {
        let items = self.items.lock().unwrap();
        if items.get(image_id).is_some_and(|r| r.status.is_gone()) {
            return Ok(LabelClaim::Deleted);
        }
        let labeled_by_me = items.get(image_id).is_some_and(|r| {
            r.status == ImageStatus::Labeled && r.detector.as_deref() == Some(detector)
        });
        if labeled_by_me {
            return Ok(LabelClaim::AlreadyLabeled);
        }
        let mut claims = self.claims.lock().unwrap();
        match claims.get(image_id) {
            // A completed claim, even our own: a redelivery after the labels went out must not
            // call the detector again.
            Some((_, lease)) if lease == CLAIM_DONE => Ok(LabelClaim::Done),
            Some((holder, lease)) if holder != token && lease.as_str() >= now => {
                Ok(LabelClaim::HeldByOther {
                    until: lease.clone(),
                })
            }
            _ => {
                claims.insert(image_id.to_owned(), (token.to_owned(), until.to_owned()));
                Ok(self.granted(image_id))
            }
        }
    }

    async fn claim_relabeling(
        &self,
        image_id: &str,
        token: &str,
        now: &str,
        until: &str,
    ) -> Result<LabelClaim, PortError> {
        let items = self.items.lock().unwrap();
        let status = match items.get(image_id).map(|r| r.status) {
            None => return Ok(LabelClaim::Granted { pending: None }),
            Some(status) if status.is_gone() => return Ok(LabelClaim::Deleted),
            Some(status) => status,
        };
        let mut claims = self.claims.lock().unwrap();
        match claims.get(image_id) {
            Some((holder, lease)) if holder == token && lease == CLAIM_DONE => Ok(LabelClaim::Done),
            // An upload's claim whose labels are stored is finished, completed or not.
            Some((holder, lease))
                if holder != token
                    && lease != CLAIM_DONE
                    && lease.as_str() >= now
                    && (holder.starts_with(RELABEL_CLAIM_PREFIX)
                        || status != ImageStatus::Labeled) =>
            {
                Ok(LabelClaim::HeldByOther {
                    until: lease.clone(),
                })
            }
            _ => {
                claims.insert(image_id.to_owned(), (token.to_owned(), until.to_owned()));
                Ok(self.granted(image_id))
            }
        }
    }

    async fn keep_detection(
        &self,
        image_id: &str,
        token: &str,
        labeled: &str,
    ) -> Result<(), PortError> {
        let claims = self.claims.lock().unwrap();
        if claims
            .get(image_id)
            .is_some_and(|(holder, _)| holder == token)
        {
            self.kept
                .lock()
                .unwrap()
                .insert(image_id.to_owned(), labeled.to_owned());
        }
        Ok(())
    }

    async fn complete_claim(&self, image_id: &str, token: &str) -> Result<(), PortError> {
        let mut claims = self.claims.lock().unwrap();
        if let Some((holder, lease)) = claims.get_mut(image_id) {
            if holder == token {
                *lease = CLAIM_DONE.to_owned();
                self.kept.lock().unwrap().remove(image_id);
            }
        }
        Ok(())
    }

    async fn release_claim(&self, image_id: &str, token: &str) -> Result<(), PortError> {
        let mut claims = self.claims.lock().unwrap();
        if claims
            .get(image_id)
            .is_some_and(|(holder, _)| holder == token)
        {
            claims.remove(image_id);
        }
        Ok(())
    }

    async fn write_thumbnail(
        &self,
        image_id: &str,
        outcome: &ThumbnailOutcome,
    ) -> Result<ThumbnailWrite, PortError> {
        self.injected_failure()?;
        let mut items = self.items.lock().unwrap();
        let Some(record) = items.get_mut(image_id).filter(|r| !r.status.is_gone()) else {
            return Ok(ThumbnailWrite::Refused);
        };
        match outcome {
            ThumbnailOutcome::Made(thumbnail) => {
                record.thumbnail = Some(thumbnail.clone());
                record.thumbnail_error = None;
            }
            ThumbnailOutcome::Failed(reason) => {
                record.thumbnail = None;
                record.thumbnail_error = Some(reason.clone());
            }
        }
        Ok(ThumbnailWrite::Written(
            self.join(Branch::Thumbnail, record),
        ))
    }

    async fn complete(
        &self,
        image_id: &str,
        branch: Branch,
        claim: &CompletionClaim,
    ) -> Result<Option<ImageRecord>, PortError> {
        self.injected_failure()?;
        let mut items = self.items.lock().unwrap();
        let Some(record) = items.get_mut(image_id) else {
            return Ok(None);
        };
        let both = record.labeled_at.is_some()
            && (record.thumbnail.is_some() || record.thumbnail_error.is_some());
        let mut completions = self.completions.lock().unwrap();
        let ours = match completions.get(image_id) {
            None => true,
            Some((by, announced, held)) => {
                *by == branch
                    && !announced
                    && (held.token == claim.token
                        || held.until < claim.now
                        || held.generation < claim.generation)
            }
        };
        if !both || !ours || record.status.is_gone() {
            return Ok(None);
        }
        completions.insert(image_id.to_owned(), (branch, false, claim.clone()));
        record.completed_at.get_or_insert_with(|| claim.now.clone());
        Ok(Some(record.clone()))
    }

    async fn completion_announced(&self, image_id: &str) -> Result<(), PortError> {
        self.injected_failure()?;
        if let Some((_, announced, _)) = self.completions.lock().unwrap().get_mut(image_id) {
            *announced = true;
        }
        Ok(())
    }

    async fn get(&self, image_id: &str) -> Result<Option<ImageRecord>, PortError> {
        Ok(self.items.lock().unwrap().get(image_id).cloned())
    }

    async fn get_with_kept(
        &self,
        image_id: &str,
    ) -> Result<Option<(ImageRecord, Option<String>)>, PortError> {
        let record = self.get(image_id).await?;
        let kept = self.kept.lock().unwrap().get(image_id).cloned();
        Ok(record.map(|r| (r, kept)))
    }

    async fn end(&self, gone: &GoneImage) -> Result<Ending, PortError> {
        self.injected_failure()?;
        let mut items = self.items.lock().unwrap();
        let record = items.entry(gone.image_id.clone()).or_insert_with(|| {
            ImageRecord::new(
                gone.image_id.clone(),
                gone.bucket.clone(),
                gone.key.clone(),
                String::new(),
                gone.at.clone(),
                gone.status,
            )
        });
        if record.ledger_version.is_some_and(|v| v > gone.version) {
            return Ok(Ending::Newer);
        }
        record.status = gone.status;
        record.ledger_version = Some(gone.version);
        record.reason = Some(gone_reason(gone.status).into());
        if gone.status == ImageStatus::Deleted {
            record.deleted_at.get_or_insert_with(|| gone.at.clone());
        }
        let labels = record
            .labeled_at
            .clone()
            .zip(record.labels.clone())
            .map(|(labeled_at, labels)| StoredLabels { labeled_at, labels });
        check_item_size(record)?;
        Ok(Ending::Ended(labels))
    }

    async fn live(&self, image_id: &str, version: u64) -> Result<Revival, PortError> {
        self.injected_failure()?;
        let mut items = self.items.lock().unwrap();
        let Some(record) = items.get_mut(image_id) else {
            return Ok(Revival::Newer);
        };
        if record.ledger_version.is_some_and(|v| v > version) {
            return Ok(Revival::Newer);
        }
        record.ledger_version = Some(version);
        if !record.status.is_gone() {
            return Ok(Revival::Current);
        }
        record.status = ImageStatus::Accepted;
        for field in [
            &mut record.reason,
            &mut record.detector,
            &mut record.label_model_version,
            &mut record.labeled_at,
            &mut record.duplicate_of,
            &mut record.stored_at,
            &mut record.deleted_at,
        ] {
            *field = None;
        }
        record.labels = None;
        record.thumbnail = None;
        record.thumbnail_error = None;
        record.completed_at = None;
        self.completions.lock().unwrap().remove(image_id);
        self.claims.lock().unwrap().remove(image_id);
        self.kept.lock().unwrap().remove(image_id);
        Ok(Revival::Revived)
    }
}

/// DynamoDB's item size limit (400 KB, names and values counted).
pub const ITEM_LIMIT_BYTES: usize = 400 * 1024;

/// Refuses an item over DynamoDB's limit as DynamoDB does (a ValidationException, fatal). The
/// JSON form is a close over-estimate of DynamoDB's own count.
pub fn check_item_size(record: &ImageRecord) -> Result<(), PortError> {
    let size = serde_json::to_vec(record).map_or(0, |v| v.len());
    if size > ITEM_LIMIT_BYTES {
        return Err(PortError::new(
            PortErrorKind::Fatal,
            "fake:UpdateItem",
            format!("Item size has exceeded the maximum allowed size ({size} bytes)"),
        ));
    }
    Ok(())
}
