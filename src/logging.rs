//! What `mswitch run` logs by default: its own lines from `info` up, and of the libraries
//! under it only what an operator must act on (issue 15: rtc-dtls warned
//! "Unsupported Extension Type" twice per handshake, hiding real warnings). `RUST_LOG`
//! replaces the whole default.

/// The default filter directives (tracing-subscriber's `EnvFilter` syntax).
pub const DEFAULT_FILTER: &str =
    "info,rtc_dtls=error,rtc_shared=error,rtc_srtp=error,webrtc_srtp=error,rustls=error";

/// `[log]`: how lines are written.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (one line for a person) or `json` (one JSON object per line, for log
    /// shippers; the message, a seed line among them, is its `fields.message` verbatim).
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "text".into(),
        }
    }
}

impl LogConfig {
    /// Whether lines are JSON; an error names the key.
    pub fn json(&self) -> Result<bool, String> {
        match self.format.as_str() {
            "text" => Ok(false),
            "json" => Ok(true),
            other => Err(format!("`{other}`: expected text or json")),
        }
    }
}

/// Installs the process's subscriber: stderr, [`filter`], text or JSON lines.
pub fn init(json: bool) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr);
    if json {
        builder.json().with_current_span(false).init();
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

/// The filter: `RUST_LOG` when set and valid, else [`DEFAULT_FILTER`].
pub fn filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn library_warnings_are_filtered_down_and_ours_are_kept() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new(super::DEFAULT_FILTER))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || writer.clone()),
            );
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "rtc_dtls::handshaker", "Unsupported Extension Type 0 22");
            tracing::error!(target: "rtc_dtls::conn", "a library error");
            tracing::warn!(target: "mswitch::app", "our warning");
            tracing::info!(target: "sip::driver", "our info");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("Unsupported Extension Type"), "{text}");
        assert!(text.contains("a library error"), "{text}");
        assert!(
            text.contains("our warning") && text.contains("our info"),
            "{text}"
        );
    }
}
