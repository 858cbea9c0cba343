//! Label: `ImageAccepted` → detector → `ImageLabeled`.
use std::{sync::Arc, time::Duration};

use backon::{ExponentialBuilder, Retryable};
use imgflow_messages::{
    bound_labels, ImageAccepted, ImageLabeled, ImageRef, ImageStatus, StageMessage, SCHEMA_VERSION,
};
use imgflow_runtime::{
    clock,
    consumer::{HandleError, Handler},
    ports::{
        DetectRequest, Detection, ImageTable, LabelClaim, LabelDetector, ObjectLocation, Publisher,
        ReceivedMessage, RELABEL_CLAIM_PREFIX,
    },
    PortError, PortErrorKind,
};
use tracing::Span;

use crate::{
    adaptive::AdaptiveLimit,
    copies::{Copies, NoCopies, Reuse},
    spend::{Spending, Unlimited},
};

/// How the stage asks for labels.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelSettings {
    /// DetectLabels' MaxLabels.
    pub max_labels: u32,
    /// DetectLabels' MinConfidence (percent).
    pub min_confidence: f32,
    /// Detector calls per delivery before the message goes back to the queue.
    pub attempts: usize,
    /// First in-handler retry delay; doubles per attempt, with jitter.
    pub retry_min_delay: Duration,
    /// How long one message holds the right to label an image before a duplicate may take
    /// over; the label queue's visibility timeout, so a crashed holder's redelivery can.
    pub claim_lease: Duration,
    /// Most detector calls at once in this process; throttling lowers the actual limit.
    pub max_detector_concurrency: usize,
}

impl Default for LabelSettings {
    fn default() -> Self {
        Self {
            max_labels: 10,
            min_confidence: 55.0,
            attempts: 4,
            retry_min_delay: Duration::from_millis(200),
            claim_lease: imgflow_runtime::config::Stage::Label.visibility_timeout(),
            max_detector_concurrency: 10,
        }
    }
}

/// Whose claim a message takes: its own (duplicates of an upload then cost one call), or, for
/// `imgflow relabel`, the relabel's (so the relabel gets past stored labels, once).
enum ClaimToken {
    Message(String),
    Relabel(String),
}

impl ClaimToken {
    fn of(accepted: &ImageAccepted, message: &ReceivedMessage) -> Self {
        match &accepted.relabel {
            Some(generation) => Self::Relabel(format!("{RELABEL_CLAIM_PREFIX}{generation}")),
            None => Self::Message(message.message_id.clone()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Self::Message(t) | Self::Relabel(t) => t,
        }
    }
}

/// The label stage's logic. `C` finds exact copies whose labels are reused; `B` says what
/// the detector may spend.
pub struct LabelHandler<D, T, P, C = NoCopies, B = Unlimited> {
    detector: Arc<D>,
    table: Arc<T>,
    publisher: Arc<P>,
    copies: C,
    spending: B,
    settings: LabelSettings,
    limit: AdaptiveLimit,
}

impl<D: LabelDetector, T: ImageTable, P: Publisher> LabelHandler<D, T, P> {
    /// A handler calling `detector`, reading `table`, publishing to `publisher`; every image
    /// labelled by the detector until [`LabelHandler::reusing`] says otherwise.
    pub fn new(
        detector: Arc<D>,
        table: Arc<T>,
        publisher: Arc<P>,
        settings: LabelSettings,
    ) -> Self {
        Self {
            detector,
            table,
            publisher,
            copies: NoCopies,
            spending: Unlimited,
            limit: AdaptiveLimit::new(settings.max_detector_concurrency),
            settings,
        }
    }
}

impl<D, T, P, C, B> LabelHandler<D, T, P, C, B> {
    /// The handler, labelling the exact copies `copies` finds from their originals' labels.
    pub fn reusing<C2: Copies>(self, copies: C2) -> LabelHandler<D, T, P, C2, B> {
        LabelHandler {
            detector: self.detector,
            table: self.table,
            publisher: self.publisher,
            copies,
            spending: self.spending,
            settings: self.settings,
            limit: self.limit,
        }
    }

    /// The handler, its detector calls counted against `spending`'s budget and rate.
    pub fn spending<B2: Spending>(self, spending: B2) -> LabelHandler<D, T, P, C, B2> {
        LabelHandler {
            detector: self.detector,
            table: self.table,
            publisher: self.publisher,
            copies: self.copies,
            spending,
            settings: self.settings,
            limit: self.limit,
        }
    }
}

impl<D: LabelDetector, T: ImageTable, P: Publisher, C: Copies, B: Spending>
    LabelHandler<D, T, P, C, B>
{
    /// The current adaptive limit on detector calls.
    pub fn detector_limit(&self) -> f64 {
        self.limit.limit()
    }

    /// One detector call under the adaptive limit.
    async fn detect_once(&self, request: &DetectRequest) -> Result<Detection, PortError> {
        let _slot = self.limit.acquire().await;
        let result = self.detector.detect(request).await;
        let outcome = match &result {
            Ok(_) => {
                self.limit.on_success();
                "ok"
            }
            Err(e) if e.kind == PortErrorKind::Throttled => {
                self.limit.on_throttle();
                "throttled"
            }
            Err(e) => e.kind.as_str(),
        };
        metrics::counter!(
            "imgflow_detector_calls_total",
            "detector" => self.detector.name().to_owned(),
            "outcome" => outcome
        )
        .increment(1);
        result
    }

    /// Gives up this message's claim so a replay or re-upload is not held off by it.
    async fn release_claim(&self, image_id: &str, token: &ClaimToken) {
        if let Err(e) = self.table.release_claim(image_id, token.as_str()).await {
            tracing::warn!(error = %e, "could not release the label claim; it expires with its lease");
        }
    }

    /// Whether this message may call the detector: duplicates of one image (repeated S3
    /// events, redeliveries) cost one paid call. A failed claim only costs that call.
    async fn claim(&self, image_id: &str, token: &ClaimToken) -> LabelClaim {
        let now = clock::now_rfc3339();
        let until = clock::rfc3339_after(self.settings.claim_lease);
        let claim = match token {
            ClaimToken::Message(token) => {
                self.table
                    .claim_labeling(image_id, self.detector.name(), token, &now, &until)
                    .await
            }
            ClaimToken::Relabel(token) => {
                self.table
                    .claim_relabeling(image_id, token, &now, &until)
                    .await
            }
        };
        claim.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not claim the image; calling the detector anyway");
            LabelClaim::Granted { pending: None }
        })
    }

    /// A detection kept by an earlier holder of the claim, when it came from this detector.
    fn kept_detection(&self, pending: Option<String>) -> Option<ImageLabeled> {
        let labeled = ImageLabeled::decode(&pending?)
            .inspect_err(|e| tracing::warn!(error = %e, "ignoring an unreadable kept detection"))
            .ok()?;
        (labeled.detector == self.detector.name()).then_some(labeled)
    }

    /// Calls the detector, retrying throttles and outages while the message is still ours,
    /// and records what the image's own faults mean (`rejected`, `missing`).
    async fn detect(&self, image: &ImageRef) -> Result<Option<Detection>, HandleError> {
        let request = DetectRequest {
            object: ObjectLocation {
                bucket: image.bucket.clone(),
                key: image.key.clone(),
                version_id: image.version_id.clone(),
            },
            max_labels: self.settings.max_labels,
            min_confidence: self.settings.min_confidence,
        };
        // Retried here, while the message is still ours, so a brief throttle does not spend
        // a receive on the way to the dead-letter queue.
        let backoff = ExponentialBuilder::new()
            .with_min_delay(self.settings.retry_min_delay)
            .with_max_delay(Duration::from_secs(10))
            .with_jitter()
            .with_max_times(self.settings.attempts.saturating_sub(1));
        let detection = (|| self.detect_once(&request))
            .retry(backoff)
            .when(|e| e.is_transient())
            .notify(|e, delay| tracing::info!(error = %e, retry_in = ?delay, "detector call failed; retrying"))
            .await;
        match detection {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind == PortErrorKind::Invalid => {
                let reason = format!("the detector could not read the image: {}", e.message);
                self.table
                    .write_failure(image, ImageStatus::Rejected, &reason)
                    .await
                    .map_err(|e| HandleError::from_port("table_write_failed", e))?;
                metrics::counter!("imgflow_images_rejected_total", "stage" => "label", "status" => "rejected")
                    .increment(1);
                tracing::info!(%reason, "image rejected by the detector");
                Ok(None)
            }
            Err(e) if e.kind == PortErrorKind::NotFound => {
                // Gone after ingest accepted it: recorded as missing, and dead-lettered so the
                // message can be replayed once the object is back.
                let reason = "object was deleted after it was accepted".to_owned();
                self.table
                    .write_failure(image, ImageStatus::Missing, &reason)
                    .await
                    .map_err(|e| HandleError::from_port("table_write_failed", e))?;
                metrics::counter!("imgflow_images_rejected_total", "stage" => "label", "status" => "missing")
                    .increment(1);
                Err(HandleError::dead_letter("object_missing", e))
            }
            Err(e) if e.kind == PortErrorKind::Throttled => {
                Err(HandleError::retry("detector_throttled", e))
            }
            Err(e) => Err(HandleError::from_port("detector_failed", e)),
        }
    }

    /// Labels from the detector, kept before they are published: a publish that fails now
    /// costs a republish later, not another paid call. `None`: the image was rejected.
    async fn labeled_by_detector(
        &self,
        image: ImageRef,
        token: &ClaimToken,
    ) -> Result<Option<ImageLabeled>, HandleError> {
        let taken = self.spending.take().await?;
        let detection = self.detect(&image).await;
        if !matches!(detection, Ok(Some(_))) {
            // Failed or refused calls are not billed: not counted either.
            self.spending.give_back(taken).await;
        }
        let Some(detection) = detection? else {
            // Rejected: nothing to hold off.
            self.release_claim(&image.image_id, token).await;
            return Ok(None);
        };
        let mut labels = detection.labels;
        let trimmed = bound_labels(&mut labels);
        if trimmed != Default::default() {
            tracing::warn!(
                labels_dropped = trimmed.labels,
                parts_dropped = trimmed.parts,
                "the detection was larger than an item holds; the least confident parts dropped"
            );
        }
        let labeled = ImageLabeled {
            schema_version: SCHEMA_VERSION,
            image,
            labels,
            detector: self.detector.name().to_owned(),
            label_model_version: detection.label_model_version,
            labeled_at: clock::now_rfc3339(),
            duplicate_of: None,
        };
        if let Err(e) = self
            .table
            .keep_detection(&labeled.image.image_id, token.as_str(), &labeled.encode())
            .await
        {
            tracing::warn!(error = %e, "could not keep the detection; publishing anyway");
        }
        Ok(Some(labeled))
    }

    /// The work done while this message holds the claim: reuse a kept detection or an exact
    /// copy's labels, or detect and keep; then publish.
    async fn label_claimed(
        &self,
        accepted: ImageAccepted,
        pending: Option<String>,
        token: &ClaimToken,
    ) -> Result<(), HandleError> {
        let started = std::time::Instant::now();
        let reuse = match self.kept_detection(pending) {
            Some(kept) => {
                tracing::info!("republishing the kept detection; detector not called");
                Err(kept)
            }
            None => Ok(self.copies.reuse(&accepted, self.detector.name()).await?),
        };
        let image = accepted.image;
        let labeled = match reuse {
            Err(kept) => kept,
            Ok(Reuse::Copy(copied)) => {
                metrics::counter!("imgflow_exact_copies_total", "detector" => self.detector.name().to_owned())
                    .increment(1);
                tracing::info!(original = %copied.original, original_key = %copied.original_key, "an exact copy (SHA-256) of a labelled image: its labels copied; detector not called");
                ImageLabeled {
                    schema_version: SCHEMA_VERSION,
                    image,
                    labels: copied.labels,
                    detector: self.detector.name().to_owned(),
                    label_model_version: copied.label_model_version,
                    labeled_at: clock::now_rfc3339(),
                    duplicate_of: Some(copied.original),
                }
            }
            Ok(Reuse::Wait { original, delay }) => {
                return Err(HandleError::requeue(
                    "original_being_labelled",
                    format!(
                        "an exact copy of image {original}, which is being labelled now; \
                         its labels are copied once the detector answered; detector not called"
                    ),
                    delay,
                ));
            }
            Ok(Reuse::Detect) => match self.labeled_by_detector(image, token).await? {
                Some(labeled) => labeled,
                None => return Ok(()),
            },
        };
        let count = labeled.labels.len();
        let top: Vec<&str> = labeled
            .labels
            .iter()
            .take(3)
            .map(|l| l.name.as_str())
            .collect();
        let labeled_id = labeled.image.image_id.clone();
        self.publisher
            .publish(labeled.encode())
            .await
            .map_err(|e| HandleError::from_port("publish_failed", e))?;
        // An upload's claim needs no completion write: the store stage's labels write refuses
        // every later claim (`AlreadyLabeled`), and until then the kept detection answers any
        // claim past the lease without a paid call. A relabel gets past stored labels, so only
        // its completed claim stops its duplicates: one UpdateItem saved per image.
        if let ClaimToken::Relabel(_) = token {
            if let Err(e) = self.table.complete_claim(&labeled_id, token.as_str()).await {
                // Only duplicates arriving after the lease could then call the detector again.
                tracing::warn!(error = %e, "could not mark the relabel's claim done");
            }
        }
        tracing::info!(
            labels = count,
            top = %top.join(", "),
            detector = self.detector.name(),
            ms = started.elapsed().as_millis() as u64,
            "image labeled"
        );
        Ok(())
    }
}

impl<D: LabelDetector, T: ImageTable, P: Publisher, C: Copies, B: Spending> Handler
    for LabelHandler<D, T, P, C, B>
{
    async fn admission(&self) -> imgflow_runtime::consumer::Admission {
        self.spending.admission()
    }

    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandleError> {
        let accepted = ImageAccepted::decode(&message.body)?;
        let token = ClaimToken::of(&accepted, message);
        let image = &accepted.image;
        Span::current().record("image_id", image.image_id.as_str());
        Span::current().record("trace_id", image.trace_id.as_str());
        Span::current().record("key", image.key.as_str());

        let pending = match self.claim(&image.image_id, &token).await {
            LabelClaim::Granted { pending } => pending,
            LabelClaim::AlreadyLabeled | LabelClaim::Done => {
                tracing::info!("labels from this detector are already stored or on their way; detector not called");
                return Ok(());
            }
            LabelClaim::Deleted => {
                tracing::info!("the image's object was deleted; detector not called");
                return Ok(());
            }
            LabelClaim::HeldByOther { until } => {
                // Not dropped: the holder may still fail (and give the claim up), and this copy
                // may be an operator's replay. It comes back once the holder's lease has ended.
                // (The consumer logs the wait, at info: it is a duplicate, not a failure.)
                let delay = clock::until(&until) + Duration::from_secs(1);
                return Err(HandleError::retry_after(
                    "label_claim_held",
                    format!(
                        "a duplicate: another message is labelling this image (its claim \
                         holds until {until}); detector not called"
                    ),
                    delay,
                ));
            }
        };
        let image_id = image.image_id.clone();
        let result = self.label_claimed(accepted, pending, &token).await;
        if result.is_err() {
            // Whatever comes next (a retry, the dead-letter queue, a replay), no claim of a
            // message that gave up may hold off the copy that will finish the work.
            self.release_claim(&image_id, &token).await;
        }
        result
    }
}
