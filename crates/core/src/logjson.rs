//! `--log-format json`: one JSON object per event and line (feature
//! `app`).

use serde_json::{Map, Value};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::registry::LookupSpan;

/// A `tracing` layer writing each event as one line of JSON:
/// `timestamp` (RFC 3339, UTC, milliseconds), `level`, `target`,
/// `message`, then the fields of the event's spans from the outermost in
/// and the event's own (the nearer wins), and `span`, the innermost
/// span's name. So a line inside a camera's span carries `"camera": 3`
/// as a field a collector can filter on.
#[derive(Debug)]
pub struct JsonLayer<W> {
    writer: W,
}

impl<W> JsonLayer<W> {
    /// A layer writing to `writer`.
    pub fn new(writer: W) -> Self {
        JsonLayer { writer }
    }
}

/// A span's fields, kept in its extensions.
struct SpanFields(Map<String, Value>);

impl<S, W> tracing_subscriber::Layer<S> for JsonLayer<W>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = Fields(Map::new());
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().replace(SpanFields(fields.0));
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        let mut fields = Fields(ext.remove::<SpanFields>().map(|f| f.0).unwrap_or_default());
        values.record(&mut fields);
        ext.insert(SpanFields(fields.0));
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert("timestamp".into(), Value::String(now_rfc3339()));
        line.insert("level".into(), Value::String(meta.level().to_string()));
        line.insert("target".into(), Value::String(meta.target().to_owned()));
        let mut innermost = None;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(map)) = span.extensions().get::<SpanFields>() {
                    line.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                innermost = Some(span.name());
            }
        }
        if let Some(name) = innermost {
            line.insert("span".into(), Value::String(name.to_owned()));
        }
        let mut fields = Fields(line);
        event.record(&mut fields);
        let mut bytes = match serde_json::to_vec(&Value::Object(fields.0)) {
            Ok(b) => b,
            Err(_) => return,
        };
        bytes.push(b'\n');
        // One write per line, so lines from several threads never interleave.
        let _ = std::io::Write::write_all(&mut self.writer.make_writer(), &bytes);
    }
}

/// Collects fields as JSON values: numbers and booleans as themselves,
/// everything else as the string the text format shows. `log.*` fields
/// (the origin of a bridged `log` record) are left out, as the text
/// format leaves them out.
struct Fields(Map<String, Value>);

impl Fields {
    fn put(&mut self, field: &tracing::field::Field, value: Value) {
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.0.insert(name.to_owned(), value);
    }
}

impl tracing::field::Visit for Fields {
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.put(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.put(field, Value::from(value));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.put(field, Value::from(value));
    }

    fn record_error(
        &mut self,
        field: &tracing::field::Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}

/// Now, as `2026-12-06T21:30:00.123Z`.
fn now_rfc3339() -> String {
    let ns = crate::time::UtcNs::now().since_epoch().as_nanos();
    crate::time::rfc3339_ms(i64::try_from(ns).unwrap_or(i64::MAX))
}
