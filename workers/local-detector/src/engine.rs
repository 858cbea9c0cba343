//! The engines that run the two ONNX models.
//!
//! - **tract** (pure Rust, the default): nothing to install, runs wherever the binary does.
//! - **ONNX Runtime**, loaded at run time from its shared library (`IMGFLOW_LOCAL_ENGINE=onnxruntime`,
//!   `IMGFLOW_ONNXRUNTIME_LIB`; `scripts/onnxruntime` takes it from the onnxruntime wheel on
//!   PyPI). About twice as fast on these models, because it rewrites their convolutions to a
//!   channel-blocked layout (NCHWc) that tract does not have; at the same graph level without
//!   that rewrite the two are on a par (see the README's local detector figures).
//!
//! Both take the same NCHW `f32` input and give the same outputs, so the models' code above
//! them is shared.
use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
};

use tract_onnx::prelude::*;

use crate::LoadError;

/// Which engine runs the models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineChoice {
    /// tract, compiled in.
    Tract,
    /// ONNX Runtime from this shared library (`libonnxruntime.so.1.x`).
    OnnxRuntime {
        /// The library file.
        library: PathBuf,
    },
}

impl EngineChoice {
    /// `IMGFLOW_LOCAL_ENGINE` (`tract`, the default, or `onnxruntime`) and, for ONNX Runtime,
    /// `IMGFLOW_ONNXRUNTIME_LIB`.
    pub fn from_env() -> Result<Self, String> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Self::parse(
            var("IMGFLOW_LOCAL_ENGINE").as_deref(),
            var("IMGFLOW_ONNXRUNTIME_LIB").map(PathBuf::from),
        )
    }

    fn parse(engine: Option<&str>, library: Option<PathBuf>) -> Result<Self, String> {
        match (engine.unwrap_or("tract"), library) {
            ("tract", _) => Ok(Self::Tract),
            ("onnxruntime", Some(library)) => Ok(Self::OnnxRuntime { library }),
            ("onnxruntime", None) => Err(
                "IMGFLOW_LOCAL_ENGINE=onnxruntime needs IMGFLOW_ONNXRUNTIME_LIB, \
                 the path of libonnxruntime.so (scripts/onnxruntime prints it)"
                    .to_owned(),
            ),
            (other, _) => Err(format!(
                "IMGFLOW_LOCAL_ENGINE is {other:?}: expected tract or onnxruntime"
            )),
        }
    }

    /// `tract` or `onnxruntime`, for logs and benchmarks (not part of the model version).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tract => "tract",
            Self::OnnxRuntime { .. } => "onnxruntime",
        }
    }
}

/// One image as a model input: NCHW, batch of one, `side`×`side`, three channels.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// Width and height.
    pub side: usize,
    /// `3 × side × side` values, channel by channel.
    pub values: Vec<f32>,
}

/// One output of a model run.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Its dimensions.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub values: Vec<f32>,
}

/// A model loaded on one engine, for a fixed `side`×`side` input.
pub enum Plan {
    /// tract's optimised plan: shared, runs concurrently.
    Tract(Arc<TypedRunnableModel>),
    /// ONNX Runtime sessions, one per concurrent run (a session runs one input at a time).
    OnnxRuntime(SessionPool),
}

impl Plan {
    /// Loads and optimises the ONNX file at `path` for a `side`×`side` input.
    pub fn load(engine: &EngineChoice, path: &Path, side: usize) -> Result<Self, LoadError> {
        let model_error = |message: String| LoadError::Model {
            path: path.to_owned(),
            message,
        };
        match engine {
            EngineChoice::Tract => tract_onnx::onnx()
                .model_for_path(path)
                .and_then(|m| m.with_input_fact(0, f32::fact([1, 3, side, side]).into()))
                .and_then(|m| m.into_optimized())
                .and_then(|m| m.into_runnable())
                .map(Self::Tract)
                .map_err(|e| model_error(format!("{e:#}"))),
            EngineChoice::OnnxRuntime { library } => {
                let environment = onnxruntime(library).map_err(LoadError::Engine)?;
                let pool = SessionPool {
                    environment,
                    model: path.to_owned(),
                    idle: Mutex::new(Vec::new()),
                };
                // One session now, so a model ONNX Runtime cannot load stops the worker at start.
                let first = pool.session().map_err(model_error)?;
                pool.put_back(first);
                Ok(Self::OnnxRuntime(pool))
            }
        }
    }

    /// Runs the model on one input.
    pub fn run(&self, input: Input) -> Result<Vec<Output>, String> {
        let shape = [1, 3, input.side, input.side];
        match self {
            Self::Tract(plan) => {
                let tensor =
                    Tensor::from_shape(&shape, &input.values).map_err(|e| format!("{e:#}"))?;
                let outputs = plan
                    .run(tvec!(tensor.into()))
                    .map_err(|e| format!("{e:#}"))?;
                outputs
                    .iter()
                    .map(|o| {
                        let view = o
                            .to_plain_array_view::<f32>()
                            .map_err(|e| format!("{e:#}"))?;
                        Ok(Output {
                            shape: view.shape().to_vec(),
                            values: view.iter().copied().collect(),
                        })
                    })
                    .collect()
            }
            Self::OnnxRuntime(pool) => {
                let mut session = pool.session()?;
                let outputs = run_session(&mut session, shape, input.values);
                // A session that failed on one input is still good for the next.
                pool.put_back(session);
                outputs
            }
        }
    }
}

/// ONNX Runtime sessions of one model, created on demand: the detector runs at most one
/// inference per core, so there are at most that many.
pub struct SessionPool {
    environment: ort::environment::Environment,
    model: PathBuf,
    idle: Mutex<Vec<ort::session::Session>>,
}

impl SessionPool {
    fn session(&self) -> Result<ort::session::Session, String> {
        if let Some(session) = self.idle.lock().expect("pool lock").pop() {
            return Ok(session);
        }
        use ort::session::{builder::GraphOptimizationLevel, Session};
        // One thread per session: concurrency comes from running one image per core, as with
        // tract, and ONNX Runtime's own pool would only compete with the other sessions.
        Session::builder(&self.environment)
            .and_then(|b| {
                b.with_optimization_level(GraphOptimizationLevel::All)
                    .map_err(Into::into)
            })
            .and_then(|b| b.with_intra_threads(1).map_err(Into::into))
            .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
            .and_then(|mut b| b.commit_from_file(&self.model))
            .map_err(|e| format!("ONNX Runtime: {e}"))
    }

    fn put_back(&self, session: ort::session::Session) {
        self.idle.lock().expect("pool lock").push(session);
    }
}

fn run_session(
    session: &mut ort::session::Session,
    shape: [usize; 4],
    values: Vec<f32>,
) -> Result<Vec<Output>, String> {
    let error = |e: ort::Error| format!("ONNX Runtime: {e}");
    let input = ort::value::Tensor::from_array((shape, values)).map_err(error)?;
    let outputs = session.run(ort::inputs![input]).map_err(error)?;
    outputs
        .values()
        .map(|value| {
            let (shape, values) = value.try_extract_tensor::<f32>().map_err(error)?;
            Ok(Output {
                shape: shape.iter().map(|&d| d as usize).collect(),
                values: values.to_vec(),
            })
        })
        .collect()
}

/// The process's one ONNX Runtime environment, from the first library asked for. ONNX Runtime
/// allows one environment per process, and a library once loaded stays.
fn onnxruntime(library: &Path) -> Result<ort::environment::Environment, String> {
    static ENVIRONMENT: OnceLock<(PathBuf, Result<ort::environment::Environment, String>)> =
        OnceLock::new();
    let (loaded, environment) = ENVIRONMENT.get_or_init(|| {
        let environment = ort::init_from(library)
            .map_err(|e| format!("loading ONNX Runtime: {e}"))
            .and_then(|builder| {
                builder
                    .with_name("imgflow")
                    .with_telemetry(false)
                    .build()
                    .map_err(|e| format!("starting ONNX Runtime from {}: {e}", library.display()))
            });
        (library.to_owned(), environment)
    });
    if loaded != library {
        return Err(format!(
            "ONNX Runtime is already loaded from {} in this process; cannot load {}",
            loaded.display(),
            library.display()
        ));
    }
    environment.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tract_is_the_default_and_onnxruntime_needs_its_library() {
        assert_eq!(EngineChoice::parse(None, None), Ok(EngineChoice::Tract));
        assert_eq!(
            EngineChoice::parse(Some("onnxruntime"), Some("/lib/ort.so".into())),
            Ok(EngineChoice::OnnxRuntime {
                library: "/lib/ort.so".into()
            })
        );
        let missing = EngineChoice::parse(Some("onnxruntime"), None).unwrap_err();
        assert!(missing.contains("IMGFLOW_ONNXRUNTIME_LIB"), "{missing}");
        let typo = EngineChoice::parse(Some("onnx"), None).unwrap_err();
        assert!(typo.contains("tract or onnxruntime"), "{typo}");
    }

    #[test]
    fn a_library_that_is_not_onnxruntime_is_a_load_error_not_a_crash() {
        let err = Plan::load(
            &EngineChoice::OnnxRuntime {
                library: "/nonexistent/libonnxruntime.so".into(),
            },
            Path::new("model.onnx"),
            8,
        )
        .err()
        .expect("no library there");
        assert!(err.to_string().contains("libonnxruntime.so"), "{err}");
    }
}
