//! rustic's progress reports: a redrawn line per operation on a terminal, nothing in the daemon's logs.
//!
//! rustic_core's default (`NoProgressBars`) logs every phase at info level
//! ("reading index...", "finished."), which would fill the daemon's journal
//! with lines nobody acts on; the daemon records its runs instead.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustic_core::{Progress, ProgressBars, ProgressType, RusticProgress};

/// Progress for one process: drawn on stderr when it is a terminal, else hidden.
#[derive(Debug, Clone, Copy)]
pub struct Bars {
    pub draw: bool,
}

impl Bars {
    /// Bars for a CLI run: drawn only when stderr is a terminal.
    pub fn for_terminal() -> Bars {
        Bars {
            draw: std::io::stderr().is_terminal(),
        }
    }

    /// A bar this crate drives itself (the restore writer).
    pub fn bytes(&self, prefix: &str) -> Progress {
        self.progress(ProgressType::Bytes, prefix)
    }
}

impl ProgressBars for Bars {
    fn progress(&self, kind: ProgressType, prefix: &str) -> Progress {
        if !self.draw {
            return Progress::hidden();
        }
        Progress::new(Line {
            kind,
            state: Mutex::new(State {
                prefix: prefix.trim_end_matches('.').trim_end().to_string(),
                title: String::new(),
                len: None,
                pos: 0,
                start: Instant::now(),
                drawn: None,
            }),
        })
    }
}

#[derive(Debug)]
struct Line {
    kind: ProgressType,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    prefix: String,
    title: String,
    len: Option<u64>,
    pos: u64,
    start: Instant,
    drawn: Option<Instant>,
}

/// Redraws at most this often: a terminal, not a benchmark of stderr.
const REDRAW: Duration = Duration::from_millis(100);

impl Line {
    fn update(&self, f: impl FnOnce(&mut State), force: bool) {
        let Ok(mut s) = self.state.lock() else { return };
        f(&mut s);
        if !force && s.drawn.is_some_and(|t| t.elapsed() < REDRAW) {
            return;
        }
        s.drawn = Some(Instant::now());
        let text = render(self.kind, &s);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{text}");
        let _ = err.flush();
    }
}

fn render(kind: ProgressType, s: &State) -> String {
    let secs = s.start.elapsed().as_secs_f64();
    let head = if s.title.is_empty() {
        s.prefix.clone()
    } else {
        format!("{}: {}", s.prefix, s.title)
    };
    match kind {
        ProgressType::Spinner => format!("{head} [{secs:.0}s]"),
        ProgressType::Counter => match s.len {
            Some(len) => format!("{head} {}/{len} [{secs:.0}s]", s.pos),
            None => format!("{head} {} [{secs:.0}s]", s.pos),
        },
        ProgressType::Bytes => {
            let rate = if secs > 0.0 { s.pos as f64 / secs } else { 0.0 };
            match s.len {
                Some(len) if len > 0 => format!(
                    "{head} {} {} / {} {:>3.0}% {}/s [{secs:.0}s]",
                    bar(s.pos, len),
                    size(s.pos as f64),
                    size(len as f64),
                    100.0 * s.pos as f64 / len as f64,
                    size(rate)
                ),
                _ => format!(
                    "{head} {} {}/s [{secs:.0}s]",
                    size(s.pos as f64),
                    size(rate)
                ),
            }
        }
    }
}

fn bar(pos: u64, len: u64) -> String {
    const WIDTH: u64 = 24;
    let full = (pos.min(len) * WIDTH / len) as usize;
    format!(
        "[{}{}]",
        "#".repeat(full),
        "-".repeat(WIDTH as usize - full)
    )
}

fn size(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl RusticProgress for Line {
    fn is_hidden(&self) -> bool {
        false
    }
    fn set_length(&self, len: u64) {
        self.update(|s| s.len = Some(len), false);
    }
    fn set_title(&self, title: &str) {
        self.update(|s| s.title = title.to_string(), true);
    }
    fn inc(&self, inc: u64) {
        self.update(|s| s.pos += inc, false);
    }
    fn finish(&self) {
        self.update(|_| {}, true);
        let _ = writeln!(std::io::stderr());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(pos: u64, len: Option<u64>) -> State {
        State {
            prefix: "restoring file contents".into(),
            title: String::new(),
            len,
            pos,
            start: Instant::now(),
            drawn: None,
        }
    }

    #[test]
    fn a_bytes_line_shows_the_share_done_and_both_sizes() {
        let line = render(ProgressType::Bytes, &state(3 << 20, Some(12 << 20)));
        assert!(
            line.starts_with("restoring file contents [######"),
            "{line}"
        );
        assert!(line.contains("3.0 MiB / 12.0 MiB  25%"), "{line}");
    }

    #[test]
    fn a_counter_without_length_shows_the_count() {
        let line = render(ProgressType::Counter, &state(42, None));
        assert!(line.starts_with("restoring file contents 42 ["), "{line}");
    }

    #[test]
    fn hidden_bars_draw_nothing() {
        assert!(Bars { draw: false }.bytes("x").is_hidden());
        assert!(!Bars { draw: true }.bytes("x").is_hidden());
    }
}
