//! The conversion loop over one call's bytes, without Python (the PyO3 glue is lib.rs), so
//! that a fuzz target (core/fuzz) drives it as the extension does.

use bumpalo::Bump;

use crate::json;
use crate::rows::{Ctx, Out, Platform};

/// Elements larger than this are left to the Python reader (stream/formats/core.py BIG): the
/// JSON text of one element (at most a few times its bytes) stays well within the 2 GB of an
/// Arrow string column's i32 offsets.
pub const MAX_ELEMENT: usize = 256 << 20;

/// After a call this long (one huge task), the memory its parse freed goes back to the system
/// at once: mimalloc would keep it (its pages are purged only when this thread allocates
/// again), while the batches are written.
pub const RETURN_AFTER: usize = 32 << 20;

/// A call this long holds one big element (a feed is about 1 MB): json::LATER.
const LATER_FROM: usize = 8 << 20;

fn skip_ws(data: &[u8], mut at: usize) -> usize {
    while at < data.len() && matches!(data[at], b' ' | b'\t' | b'\r' | b'\n') {
        at += 1;
    }
    at
}

/// Where a call stopped.
#[derive(Debug, PartialEq)]
pub enum Status {
    /// Call again from `consumed` (after a declined task).
    Next,
    /// No element after `consumed`: the array closed, or the values' stream ended.
    End,
    /// The element at `consumed` is not complete in `data`: call again with more bytes.
    More,
    /// The input at `consumed` is not what this crate reads: the Python reader takes the
    /// rest of the stream from there (and reports the error, if it is one).
    Error,
}

enum Sep {
    Next(usize),
    End(usize),
    More,
    Error,
}

pub struct Run {
    pub status: Status,
    pub consumed: usize,
    pub tasks: i64,
    pub declined: Option<(usize, usize)>,
}

/// The separator after an element ending at `end`.
fn separator(data: &[u8], end: usize, array: bool, eof: bool, limit: Option<usize>) -> Sep {
    let at = skip_ws(data, end);
    if !array {
        return if at < data.len() { Sep::Next(at) } else if eof { Sep::End(at) } else { Sep::More };
    }
    if at == data.len() {
        return if eof { Sep::Error } else { Sep::More };
    }
    match data[at] {
        b']' => Sep::End(at + 1),
        b',' => {
            let next = skip_ws(data, at + 1);
            if limit == Some(next) {
                Sep::Next(next)
            } else if next == data.len() {
                if eof { Sep::Error } else { Sep::More }
            } else if data[next] == b']' {
                Sep::Error // a trailing comma
            } else {
                Sep::Next(next)
            }
        }
        _ => Sep::Error,
    }
}

/// The elements of `data` into rows appended to `out` (which may hold rows of earlier calls).
#[allow(clippy::too_many_arguments)]
pub fn run<P: Platform>(out: &mut Out, data: &[u8], file: &str, position: i64, container: &str,
       array: bool, eof: bool, first: bool, limit: Option<usize>) -> Run {
    let mut r = Run { status: Status::End, consumed: 0, tasks: 0, declined: None };
    let mut cx = Ctx::new(file, container);
    // UTF-8 is checked once for the call, and the parser reads str; invalid bytes end the
    // text the parser sees, and the element holding them goes to Python
    let (text, bad_utf8) = match std::str::from_utf8(data) {
        Ok(text) => (text, false),
        Err(e) => {
            // valid_up_to ends the valid text by definition (so never the default)
            let text = std::str::from_utf8(&data[..e.valid_up_to()]).unwrap_or_default();
            (text, e.error_len().is_some()) // else a character cut by the end of `data`
        }
    };
    json::LATER.set(data.len() >= LATER_FROM);
    // one element's tree at a time: the arena's memory is reused from element to element
    let mut bump = Bump::new();
    let mut pos = skip_ws(data, 0);
    if array && first && pos < data.len() && data[pos] == b']' {
        r.consumed = pos + 1;
        return r;
    }
    loop {
        r.consumed = pos;
        if limit.is_some_and(|l| pos >= l) {
            r.status = Status::End;
            return r;
        }
        if pos >= data.len() {
            r.status = if !eof { Status::More } else if array { Status::Error } else { Status::End };
            return r;
        }
        let Some(rest) = text.get(pos..) else {
            r.status = Status::Error; // an element starting inside invalid UTF-8
            return r;
        };
        bump.reset();
        let (v, used, unsure) = match json::parse_one::<P::Shape>(rest, &bump) {
            Ok(x) => x,
            Err(e) => {
                // with invalid UTF-8, the text ends there: an element cut by it is invalid
                r.status = if e.is_eof() && !eof && !bad_utf8 { Status::More } else { Status::Error };
                return r;
            }
        };
        let end = pos + used;
        let (next, status) = match separator(data, end, array, eof, limit) {
            Sep::Next(n) => (n, Status::Next),
            Sep::End(n) => (n, Status::End),
            Sep::More => {
                r.status = Status::More;
                return r;
            }
            Sep::Error => {
                r.status = Status::Error;
                return r;
            }
        };
        cx.position = position + r.tasks;
        if used > RETURN_AFTER {
            // one huge task: its JSON text comes from the input, at most about its length,
            // reserved at once (untouched pages cost nothing) rather than doubled into
            out.reserve(used);
        }
        let added = if unsure || used > MAX_ELEMENT { None } else { out.add::<P>(&v, &mut cx).ok() };
        r.consumed = next;
        let Some(added) = added else {
            r.declined = Some((pos, end));
            r.status = status;
            return r;
        };
        r.tasks += added as i64;
        if status == Status::End {
            r.status = Status::End;
            return r;
        }
        pos = next;
    }
}

/// (depth, in a string, after a backslash)
pub type Brackets = (usize, bool, bool);

pub fn brackets(data: &[u8], state: Brackets) -> (bool, Brackets) {
    let (mut depth, mut in_str, mut escaped) = state;
    for &b in data {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                if depth <= 1 {
                    return (true, (0, false, false));
                }
                depth -= 1;
            }
            _ => {}
        }
    }
    (false, (depth, in_str, escaped))
}
