//! Progress of a long import on stderr: a bar redrawn in place on a
//! terminal (at most ten times a second), plain count lines otherwise (one
//! per [`LINE_EVERY`] entries, so a log or a pipe gets a few lines, not one
//! per entry). Small imports (under [`QUIET_BELOW`] entries) say nothing
//! until the command's own summary.

use std::io::Write;
use std::time::{Duration, Instant};

/// Entries below which no progress is shown.
pub const QUIET_BELOW: usize = 1_000;
/// Entries between two plain count lines.
pub const LINE_EVERY: usize = 1_000;
/// Time between two redraws of the bar.
const REDRAW: Duration = Duration::from_millis(100);
/// Cells of the bar.
const WIDTH: usize = 30;

/// The progress of one import of `total` entries of `what` ("tokens").
pub struct Progress<W: Write> {
    out: W,
    terminal: bool,
    what: &'static str,
    total: usize,
    done: usize,
    drawn: Option<Instant>,
}

impl<W: Write> std::fmt::Debug for Progress<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("what", &self.what)
            .field("done", &self.done)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl Progress<std::io::Stderr> {
    /// On stderr, a bar if it is a terminal.
    pub fn stderr(what: &'static str, total: usize) -> Self {
        use std::io::IsTerminal;
        let err = std::io::stderr();
        let terminal = err.is_terminal();
        Progress::new(err, terminal, what, total)
    }
}

impl<W: Write> Progress<W> {
    pub fn new(out: W, terminal: bool, what: &'static str, total: usize) -> Self {
        Progress {
            out,
            terminal,
            what,
            total,
            done: 0,
            drawn: None,
        }
    }

    /// One more entry handled (imported or refused), at `now`.
    pub fn tick(&mut self, now: Instant) {
        self.done += 1;
        if self.total < QUIET_BELOW {
            return;
        }
        if self.terminal {
            if self.drawn.is_none_or(|at| now.duration_since(at) >= REDRAW) {
                self.drawn = Some(now);
                self.draw();
            }
        } else if self.done % LINE_EVERY == 0 {
            // Progress is a courtesy: a closed stderr does not stop the import.
            let _ = writeln!(self.out, "{}/{} {}", self.done, self.total, self.what);
        }
    }

    /// Entries handled so far.
    pub fn done(&self) -> usize {
        self.done
    }

    /// The import is over: the bar is drawn full and its line ended.
    pub fn finish(mut self) {
        if self.total >= QUIET_BELOW && self.terminal {
            self.draw();
            let _ = writeln!(self.out);
        }
    }

    fn draw(&mut self) {
        let full = (self.done * WIDTH)
            .checked_div(self.total)
            .unwrap_or(WIDTH)
            .min(WIDTH);
        let bar = format!("{}{}", "#".repeat(full), "-".repeat(WIDTH - full));
        let _ = write!(
            self.out,
            "\r[{bar}] {}/{} {}",
            self.done, self.total, self.what
        );
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(terminal: bool, total: usize, step: Duration) -> String {
        let mut out = Vec::new();
        let mut p = Progress::new(&mut out, terminal, "tokens", total);
        let t0 = Instant::now();
        for i in 0..total {
            p.tick(t0 + step * i as u32);
        }
        p.finish();
        String::from_utf8(out).expect("text")
    }

    #[test]
    fn a_bar_on_a_terminal_at_most_ten_times_a_second() {
        // 2,000 entries over 2 s: drawn every 100 ms, then once full.
        let out = run(true, 2_000, Duration::from_millis(1));
        let draws: Vec<&str> = out.split('\r').filter(|s| !s.is_empty()).collect();
        assert_eq!(draws.len(), 21, "{draws:?}");
        assert_eq!(draws[0], "[------------------------------] 1/2000 tokens");
        assert_eq!(
            draws[20],
            "[##############################] 2000/2000 tokens\n"
        );
        assert_eq!(
            draws[10],
            "[###############---------------] 1001/2000 tokens"
        );
    }

    #[test]
    fn plain_count_lines_otherwise_and_nothing_for_small_imports() {
        let out = run(false, 2_500, Duration::ZERO);
        assert_eq!(out, "1000/2500 tokens\n2000/2500 tokens\n");
        assert_eq!(run(true, 999, Duration::from_secs(1)), "");
        assert_eq!(run(false, 999, Duration::ZERO), "");
    }
}
