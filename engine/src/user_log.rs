//! The engine's messages for the user (`tracing` target [`crate::USER`])
//! as `[INFO] …` / `[WARN] …` lines on stderr, whatever `RUST_LOG` says —
//! what the `weir` CLI prints, and [`init_logging`] installs for programs
//! without a subscriber of their own.

use std::fmt::Write as _;
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Prints user-facing events, one line each.
pub struct UserLines;

/// Collects an event's message (and any other fields, after it).
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let text = format!("{value:?}");
            self.0.insert_str(0, &text);
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for UserLines {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if meta.target() != crate::USER {
            return;
        }
        let level = match *meta.level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARN",
            _ => "INFO",
        };
        let mut message = Message::default();
        event.record(&mut message);
        let _ = writeln!(std::io::stderr().lock(), "[{level}] {}", message.0);
    }
}

/// Installs a `tracing` subscriber: the engine's messages for the user as
/// `[INFO] …` / `[WARN] …` lines on stderr, and everything else filtered by
/// `RUST_LOG` (or `WEIR_LOG`; off when neither is set). Does nothing when
/// the program has a subscriber already.
pub fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("WEIR_LOG"))
        .unwrap_or_else(|_| "off".into());
    let diagnosis = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(tracing_subscriber::EnvFilter::new(format!(
            "{filter},{}=off",
            crate::USER
        )));
    let _ = tracing_subscriber::registry()
        .with(UserLines)
        .with(diagnosis)
        .try_init();
}
