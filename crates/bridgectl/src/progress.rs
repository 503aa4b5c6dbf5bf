//! Progress bars for long commands, on standard error: drawn only on a terminal and for
//! text output, so scripts and `--output json` read clean standard output.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::Output;

/// A bar of `len` steps labelled `what`; hidden when not wanted.
pub fn bar(len: u64, what: &str, output: Output) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if output == Output::Json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}
