//! annostream_core: Label Studio tasks to the five tables' Arrow batches, at the speed of the
//! parse. The Python reader (stream/formats/labelstudio.py) is the specification and the
//! fallback: a task this crate is not sure about is declined and converted there.

mod cols;
mod json;
mod ls;
mod tables;

use arrow_array::{Array, StructArray};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyList, PyTuple};
use std::panic::{catch_unwind, AssertUnwindSafe};

// Parsing makes many small, short-lived objects: mimalloc halves the time glibc malloc takes.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Elements larger than this are left to the Python reader (stream/formats/core.py BIG): the
/// JSON text of one element (at most a few times its bytes) stays well within the 2 GB of an
/// Arrow string column's i32 offsets.
const MAX_ELEMENT: usize = 256 << 20;

/// After a call this long (one huge task), the memory its parse freed goes back to the system
/// at once: mimalloc would keep it (its pages are purged only when this thread allocates
/// again), while the batches are written.
const RETURN_AFTER: usize = 32 << 20;

fn skip_ws(data: &[u8], mut at: usize) -> usize {
    while at < data.len() && matches!(data[at], b' ' | b'\t' | b'\r' | b'\n') {
        at += 1;
    }
    at
}

/// Where a call stopped.
#[derive(Debug, PartialEq)]
enum Status {
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

struct Run {
    status: Status,
    consumed: usize,
    tasks: i64,
    declined: Option<(usize, usize)>,
    out: ls::Out,
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

#[allow(clippy::too_many_arguments)]
fn run(data: &[u8], file: &str, position: i64, container: &str, array: bool, eof: bool,
       first: bool, limit: Option<usize>) -> Run {
    let mut r = Run { status: Status::End, consumed: 0, tasks: 0, declined: None, out: ls::Out::default() };
    let mut cx = ls::Ctx::new(file, container);
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
        let (v, used, unsure) = match json::parse_one::<ls::Shape>(&data[pos..]) {
            Ok(x) => x,
            Err(e) => {
                // skipping a container kept as text, serde_json calls a number cut at the end
                // ("44.") invalid, not incomplete: incomplete is where its brackets do not close
                let cut = e.is_eof() || !brackets(&data[pos..], Brackets::default()).0;
                r.status = if cut && !eof { Status::More } else { Status::Error };
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
            r.out.reserve(used);
        }
        let declined = unsure || used > MAX_ELEMENT || json::long_digits(&data[pos..end])
            || r.out.add(&v, &mut cx).is_err();
        r.consumed = next;
        if declined {
            r.declined = Some((pos, end));
            r.status = status;
            return r;
        }
        r.tasks += 1;
        if status == Status::End {
            r.status = Status::End;
            return r;
        }
        pos = next;
    }
}

/// Where a JSON container that starts `data` ends, found by bracket counting alone (no
/// parse): `state` (depth, in a string, after a backslash) carries over from the bytes before.
/// Returns (complete, state). The caller reads the rest of one huge element in pieces with it
/// and converts the element once, rather than parsing it again after every doubling.
#[pyfunction]
#[pyo3(signature = (data, state=None))]
fn scan(data: &[u8], state: Option<Brackets>) -> (bool, Brackets) {
    brackets(data, state.unwrap_or_default())
}

/// (depth, in a string, after a backslash)
type Brackets = (usize, bool, bool);

fn brackets(data: &[u8], state: Brackets) -> (bool, Brackets) {
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

fn capsules<'py>(py: Python<'py>, sa: StructArray) -> PyResult<Bound<'py, PyTuple>> {
    let data = sa.into_data();
    let (arr, sch) = arrow_array::ffi::to_ffi(&data)
        .map_err(|e| PyRuntimeError::new_err(format!("annostream_core: Arrow export failed: {e}")))?;
    let sc = PyCapsule::new_with_value(py, sch, c"arrow_schema")?;
    let ac = PyCapsule::new_with_value(py, arr, c"arrow_array")?;
    PyTuple::new(py, [sc.into_any(), ac.into_any()])
}

/// Convert the Label Studio tasks in `data`.
///
/// `data` starts at an element (or, with `first`, right after the array's `[`); `array`:
/// elements are separated by commas and the array closes with `]` (else: values separated by
/// whitespace, as in NDJSON); `eof`: no bytes follow `data`; `limit`: stop at the element
/// starting there. Returns (status, consumed, tasks, declined, batches): status 'next'
/// (call again from `consumed`), 'end', 'more' (the element at `consumed` needs more bytes)
/// or 'error' (the Python reader takes over at `consumed`); `declined` is the (start, end)
/// byte span of a task left to the Python reader (it comes after the `tasks` converted
/// ones); `batches` the five tables as (schema, array) Arrow PyCapsule pairs, or None.
#[pyfunction]
#[pyo3(signature = (data, file, position, container, array, eof, first, limit=None))]
#[allow(clippy::too_many_arguments)]
fn convert<'py>(py: Python<'py>, data: &[u8], file: &str, position: i64, container: &str,
                array: bool, eof: bool, first: bool, limit: Option<usize>) -> PyResult<Bound<'py, PyTuple>> {
    // the GIL is released while parsing: Python writes the previous batches meanwhile
    let result = py.detach(|| catch_unwind(AssertUnwindSafe(|| {
        let mut r = run(data, file, position, container, array, eof, first, limit);
        let rows = r.out.marks().iter().sum::<usize>();
        let tables = if rows > 0 {
            Some([r.out.t.finish(), r.out.a.finish(), r.out.r.finish(), r.out.rel.finish(), r.out.k.finish()])
        } else {
            None
        };
        if data.len() > RETURN_AFTER {
            // ok: mi_collect only hands mimalloc's free pages back to the system
            unsafe { libmimalloc_sys::mi_collect(true) };
        }
        (r.status, r.consumed, r.tasks, r.declined, tables, r.out.misuse.0)
    })));
    let (status, consumed, tasks, declined, tables, misuse) = match result {
        Ok(x) => x,
        Err(panic) => {
            let msg = panic.downcast_ref::<&str>().map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            return Err(PyRuntimeError::new_err(format!("annostream_core failed on {file}: {msg}")));
        }
    };
    if misuse {
        return Err(PyRuntimeError::new_err(format!(
            "annostream_core failed on {file}: a column was written out of order (a bug)")));
    }
    let status = match status {
        Status::Next => "next",
        Status::End => "end",
        Status::More => "more",
        Status::Error => "error",
    };
    let batches = match tables {
        Some(ts) => {
            let list = PyList::empty(py);
            for sa in ts {
                list.append(capsules(py, sa)?)?;
            }
            list.into_any()
        }
        None => py.None().into_bound(py),
    };
    let declined = match declined {
        Some((s, e)) => (s, e).into_pyobject(py)?.into_any(),
        None => py.None().into_bound(py),
    };
    PyTuple::new(py, [status.into_pyobject(py)?.into_any(), consumed.into_pyobject(py)?.into_any(),
                      tasks.into_pyobject(py)?.into_any(), declined, batches])
}

#[pymodule]
fn annostream_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(convert, m)?)?;
    m.add_function(wrap_pyfunction!(scan, m)?)?;
    Ok(())
}

