//! # imgflow-local-detector: labels with no AWS at all
//!
//! Two small models run in-process, on `tract` (pure Rust, the default) or on ONNX Runtime
//! loaded from its shared library ([`engine`]):
//! - **NanoDet-m** (COCO, 80 classes) finds objects and their boxes → `Instances`;
//! - **EfficientNet-Lite0** (ImageNet, 1,000 classes) says what the picture shows, and WordNet
//!   hypernyms turn its classes into parents (`Tabby` → `Cat` → `Mammal` → `Animal`), whose
//!   confidence is the summed probability of their classes.
//!
//! The answer has exactly Rekognition DetectLabels' shape, so everything downstream reads it
//! the same way. Models load once per process; inference runs on the blocking pool, at most one
//! per core, so the async runtime never stalls.
//!
//! # Layout
//! - [`image_input`]: decode, EXIF orientation, downscale, model tensors.
//! - [`classifier`], [`objects`]: the two models and their outputs.
//! - [`engine`]: tract or ONNX Runtime under both.
//! - [`vocabulary`]: the label map (`models/labels.json`) and how the answers merge.

pub mod classifier;
pub mod engine;
pub mod image_input;
pub mod objects;
pub mod vocabulary;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use imgflow_runtime::{
    ports::{DetectRequest, Detection, LabelDetector, ObjectStore},
    PortError, PortErrorKind,
};
use tokio::sync::Semaphore;

/// Why the local models could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A model file could not be loaded or optimised.
    #[error("loading model {path}: {message}")]
    Model {
        /// The file.
        path: PathBuf,
        /// What tract said.
        message: String,
    },
    /// The engine could not be started (ONNX Runtime's library missing or too old).
    #[error("{0}")]
    Engine(String),
    /// The label map could not be read.
    #[error("reading label map {path}")]
    Labels {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The label map is not valid.
    #[error("parsing label map {path}")]
    LabelsFormat {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// The models folder shipped with the crate (`workers/local-detector/models`), or
/// `IMGFLOW_MODELS_DIR` (the container image puts them elsewhere).
pub fn default_models_dir() -> PathBuf {
    std::env::var_os("IMGFLOW_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"))
}

/// Both models and the label map, loaded once; cheap to share.
pub struct Models {
    /// EfficientNet-Lite0.
    pub classifier: classifier::Classifier,
    /// NanoDet-m.
    pub objects: objects::ObjectDetector,
    /// The label map.
    pub vocabulary: vocabulary::Vocabulary,
    /// The engine running both models.
    pub engine: engine::EngineChoice,
    /// Most bytes of pixels one decode may hold (`IMGFLOW_MAX_DECODED_BYTES`).
    pub decode_budget: u64,
}

impl std::fmt::Debug for Models {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Models")
            .field("version", &self.version())
            .field("engine", &self.engine.name())
            .finish()
    }
}

impl Models {
    /// Loads `nanodet-m.onnx`, `efficientnet-lite0.onnx` and `labels.json` from `dir`, on tract.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        Self::load_on(dir, engine::EngineChoice::Tract)
    }

    /// Loads the models from `dir` on `engine`.
    pub fn load_on(dir: &Path, engine: engine::EngineChoice) -> Result<Self, LoadError> {
        Ok(Self {
            classifier: classifier::Classifier::load(
                &engine,
                &dir.join("efficientnet-lite0.onnx"),
            )?,
            objects: objects::ObjectDetector::load(&engine, &dir.join("nanodet-m.onnx"))?,
            vocabulary: vocabulary::Vocabulary::load(&dir.join("labels.json"))?,
            decode_budget: imgflow_imaging::DEFAULT_MAX_DECODED_BYTES,
            engine,
        })
    }

    /// The `LabelModelVersion` reported with every answer. The engine is not part of it: both
    /// run the same models and give the same labels (checked on the test photos), so a change
    /// of engine is not a reason to relabel.
    pub fn version(&self) -> String {
        format!("nanodet-m+efficientnet-lite0/{}", self.vocabulary.version())
    }

    /// Labels one encoded image (blocking: call from a blocking thread).
    pub fn label(
        &self,
        encoded: &[u8],
        max_labels: u32,
        min_confidence: f32,
    ) -> Result<Detection, PortError> {
        let image = image_input::decode(encoded, self.decode_budget)
            .map_err(|e| PortError::new(PortErrorKind::Invalid, "local:decode", e.to_string()))?;
        let model_error = |e: String| PortError::new(PortErrorKind::Fatal, "local:inference", e);
        let probabilities = self.classifier.classify(&image).map_err(model_error)?;
        let boxes = self.objects.detect(&image).map_err(model_error)?;
        Ok(Detection {
            labels: self.vocabulary.labels(
                &probabilities,
                &boxes,
                max_labels as usize,
                min_confidence,
            ),
            label_model_version: self.version(),
        })
    }
}

/// The local detector behind the label stage's `LabelDetector` port: reads the object from
/// the store, then labels it with [`Models`] on the blocking pool.
pub struct LocalDetector<S> {
    store: Arc<S>,
    models: Arc<Models>,
    slots: Arc<Semaphore>,
}

impl<S> std::fmt::Debug for LocalDetector<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalDetector")
            .field("models", &self.models)
            .finish()
    }
}

impl<S: ObjectStore> LocalDetector<S> {
    /// A detector reading images from `store`, running at most one inference per core.
    pub fn new(store: Arc<S>, models: Arc<Models>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            store,
            models,
            slots: Arc::new(Semaphore::new(cores)),
        }
    }
}

impl<S: ObjectStore> LabelDetector for LocalDetector<S> {
    fn name(&self) -> &str {
        "local"
    }

    async fn detect(&self, request: &DetectRequest) -> Result<Detection, PortError> {
        // The permit bounds work to the cores, so a burst of messages waits here (cheaply,
        // before its bytes are fetched) rather than piling images into memory and threads onto
        // the blocking pool. It moves into the blocking task: should this future be dropped,
        // the slot stays taken until the decode really ends.
        let slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("semaphore is never closed");
        let encoded = self.store.get(&request.object).await?;
        let models = Arc::clone(&self.models);
        let (max, min) = (request.max_labels, request.min_confidence);
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            models.label(&encoded, max, min)
        })
        .await
        .map_err(|e| PortError::new(PortErrorKind::Retryable, "local:inference", e.to_string()))?
    }
}
