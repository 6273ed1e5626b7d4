//! Standard output that a closed pipe ends quietly (`retl schema | head -1`), instead of the
//! panic `println!` gives.

use std::io::Write;

/// Writes `text` as it is.
pub fn text(text: &str) {
    write(text.as_bytes());
}

/// Writes `line` and a newline.
pub fn line(line: &str) {
    let mut s = String::with_capacity(line.len() + 1);
    s.push_str(line);
    s.push('\n');
    write(s.as_bytes());
}

fn write(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // The reader has all it wanted; nothing is wrong.
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}
