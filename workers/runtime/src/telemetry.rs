//! Logging: `tracing` with `RUST_LOG` filters and `IMGFLOW_LOG_FORMAT=json` for log pipelines.
//!
//! JSON lines are flat: the message span's fields (`stage`, `image_id`, `trace_id`, `key`,
//! `message_id`) sit beside the event's own, so a log pipeline indexes them without
//! unpacking nested `span`/`spans` objects.
use std::fmt;

use serde_json::{Map, Value};
use tracing::{field::Field, Event, Subscriber};
use tracing_subscriber::{
    field::Visit,
    fmt::{
        format::{JsonFields, Writer},
        FmtContext, FormatEvent, FormatFields, FormattedFields,
    },
    registry::LookupSpan,
    EnvFilter,
};

/// The log filter without `RUST_LOG`.
pub const DEFAULT_FILTER: &str =
    "info,ort=warn,aws_config::imds::region=error,aws_config::meta::credentials::chain=error";

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(json: bool) {
    // ONNX Runtime's loader logs at info that the library is newer than the API imgflow asks
    // for ("may have compatibility issues"), which is expected and would only alarm an
    // operator; the label stage logs the engine and library it loaded itself. Off EC2, the
    // SDK's instance-metadata lookups (region, credentials) warn with a dump for each miss;
    // a missing region or credentials is refused at start in one line instead.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if json {
        builder
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .init();
    } else {
        builder.fmt_fields(text_fields()).init();
    }
}

/// Text-mode fields with every control character escaped: an S3 key (or any other value from
/// outside) holding a newline or an escape sequence cannot forge a log line or repaint the
/// terminal.
pub fn text_fields() -> impl for<'w> FormatFields<'w> {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        let raw = format!("{value:?}");
        let text = escape_controls(&raw);
        match field.name() {
            "message" => write!(writer, "{text}"),
            name => write!(writer, "{name}={text}"),
        }
    })
    .delimited(" ")
}

/// `text` with control characters written as Rust escapes (`\n`, `\u{1b}`).
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| match c.is_control() {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect::<String>()
        .into()
}

/// One JSON object per event: time, level, target, the enclosing spans' fields (inner ones
/// win), then the event's fields.
struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        line.insert("timestamp".into(), crate::clock::now_rfc3339().into());
        line.insert("level".into(), event.metadata().level().as_str().into());
        line.insert("target".into(), event.metadata().target().into());
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields) {
                    line.extend(fields);
                }
            }
        }
        event.record(&mut Fields(&mut line));
        writeln!(writer, "{}", Value::Object(line))
    }
}

struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn json_lines_carry_the_span_fields_flat() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Buffer(sink.clone()))
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span =
                tracing::info_span!("message", stage = "label", image_id = tracing::field::Empty);
            let _entered = span.enter();
            span.record("image_id", "abc");
            tracing::info!(labels = 2, top = %"Dog, Animal", "image labeled");
        });
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["stage"], "label");
        assert_eq!(line["image_id"], "abc");
        assert_eq!(line["labels"], 2);
        assert_eq!(line["top"], "Dog, Animal");
        assert_eq!(line["message"], "image labeled");
        assert_eq!(line["level"], "INFO");
        assert!(line.get("span").is_none() && line.get("spans").is_none());
    }

    /// A key with a newline and an escape sequence stays on its own line, escaped, whether it
    /// is a span field, recorded later, or an event field shown with `%`.
    #[test]
    fn text_lines_cannot_be_forged_by_a_key() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Buffer(sink.clone()))
            .with_ansi(false)
            .fmt_fields(text_fields())
            .finish();
        let key = "incoming/a.png\n2026-12-07T00:00:00Z  INFO imgflow: forged\u{1b}[2J";
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("message", key = %key, image_id = tracing::field::Empty);
            let _entered = span.enter();
            span.record("image_id", key);
            tracing::info!(%key, "image accepted");
        });
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("a.png\\n2026"), "{text}");
        assert!(text.contains("image accepted"), "{text}");
    }

    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
