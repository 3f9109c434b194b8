//! What the program prints, on stdout ([`outln!`]) and as messages on stderr ([`errln!`]).
//!
//! Two rules for every line. Text that came from files (class names in a checkpoint, folder
//! names, paths) is printed with its control characters escaped, so a name cannot move the
//! cursor, retitle the terminal or hide a line. And a stdout that is gone (`gpu-cnn train | head`
//! after head exits, a full disk under `> log`) ends the command as Ctrl-C does
//! ([`crate::interrupt::request`]: a training run stops with a resumable checkpoint) instead of
//! the panic `println!` gives; nothing more is printed there. Messages that quote a file's
//! contents clip them ([`clipped`]).

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write to stdout failed: the reader is gone.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// `text` with every control character but newline and tab escaped (`\u{1b}`, `\r`, ...).
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let escaped = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(escaped) {
        return text.into();
    }
    text.chars().map(|c| if escaped(c) { c.escape_default().to_string() } else { c.to_string() }).collect::<String>().into()
}

/// `text` with each word (a run without whitespace or backquotes) longer than 100 characters,
/// then each line longer than 1,000, cut short, saying how long it was: for messages that echo
/// what a file holds (a key, a value, a quoted line), which may be megabytes.
pub fn clipped(text: &str) -> String {
    let words = cut_pieces(text, |c| c.is_whitespace() || c == '`', MAX_WORD);
    cut_pieces(&words, |c| c == '\n', MAX_LINE)
}

const MAX_WORD: usize = 100;
const MAX_LINE: usize = 1000;

/// `text` split after each `end` character, each piece's text before it cut to `max`.
fn cut_pieces(text: &str, end: impl Fn(char) -> bool + Copy, max: usize) -> String {
    let piece = |p: &str| {
        let body = p.char_indices().last().filter(|&(_, c)| end(c)).map_or(p.len(), |(i, _)| i);
        format!("{}{}", cut(&p[..body], max), &p[body..])
    };
    text.split_inclusive(end).map(piece).collect()
}

fn cut(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => text.into(),
        Some((end, _)) => format!("{}... ({} characters)", &text[..end], text.chars().count()).into(),
    }
}

/// Prints on stdout (see the module's rules). Use through [`out!`] and [`outln!`].
pub fn out(args: fmt::Arguments) {
    if CLOSED.load(Ordering::SeqCst) {
        return;
    }
    let text = printable(&args.to_string()).into_owned();
    if let Err(e) = std::io::stdout().lock().write_all(text.as_bytes()) {
        // Only the first failure asks for the stop; any later print is dropped above.
        if !CLOSED.swap(true, Ordering::SeqCst) {
            crate::interrupt::request(&format!("Standard output closed ({e})"));
        }
    }
}

/// Prints a line on stderr (see the module's rules); a stderr that is gone loses the line. Use
/// through [`errln!`].
pub fn err(args: fmt::Arguments) {
    let _ = std::io::stderr().lock().write_all(format!("{}\n", printable(&args.to_string())).as_bytes());
}

/// `print!` for the program's output: control characters escaped, a closed stdout a stop
/// request (see [`crate::console`]).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::console::out(format_args!($($arg)*)) };
}

/// `println!` for the program's output (see [`out!`]).
#[macro_export]
macro_rules! outln {
    () => { $crate::console::out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` for the program's messages: control characters escaped, never a panic.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::console::err(format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_text_clipped() {
        assert_eq!(printable("cats\u{1b}]0;pwned\u{7}\r\n\tdogs"), "cats\\u{1b}]0;pwned\\u{7}\\r\n\tdogs");
        assert!(matches!(printable("plain ünïcode"), std::borrow::Cow::Borrowed(_)));
        let long = "é".repeat(MAX_WORD + 1);
        assert_eq!(clipped(&format!("unknown field `{long}`, expected `name`\n1 | {long} = 1")), format!("unknown field `{}... ({} characters)`, expected `name`\n1 | {}... ({} characters) = 1", &long[..2 * MAX_WORD], MAX_WORD + 1, &long[..2 * MAX_WORD], MAX_WORD + 1));
        let line = "ab ".repeat(MAX_LINE);
        assert_eq!(clipped(&format!("{line}\nshort")), format!("{}... ({} characters)\nshort", &line[..MAX_LINE], 3 * MAX_LINE));
    }
}
