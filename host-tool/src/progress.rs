//! Progress on stderr for long packs, only when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Progress {
    enabled: bool,
    last: Mutex<Option<Instant>>,
}

impl Progress {
    /// Shown when stderr is a terminal, unless `quiet`.
    pub fn new(quiet: bool) -> Progress {
        Progress { enabled: !quiet && std::io::stderr().is_terminal(), last: Mutex::new(None) }
    }

    pub fn hidden() -> Progress {
        Progress { enabled: false, last: Mutex::new(None) }
    }

    pub fn update(&self, phase: &str, done: u64, total: u64) {
        if !self.enabled {
            return;
        }
        let mut last = self.last.lock().unwrap();
        let now = Instant::now();
        if done < total && last.is_some_and(|t| now - t < Duration::from_millis(100)) {
            return;
        }
        *last = Some(now);
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{phase}: {done}/{total} ({pct}%)");
        let _ = err.flush();
    }

    /// Clear the progress line.
    pub fn finish(&self) {
        if self.enabled {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}
