//! Renderings of a run's results: terminal text, JSON, SARIF 2.1.0 and a self-contained HTML page.

pub mod html;
pub mod json;
pub mod sarif;
pub mod terminal;

/// What the terminal rendering shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct View {
    pub hide_ok: bool,
    pub show_skipped: bool,
    /// ANSI colours (the caller sets this only on a TTY).
    pub color: bool,
}
