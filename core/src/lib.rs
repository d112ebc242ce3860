//! annostream_core: Label Studio tasks and Dataloop items to the five tables' Arrow batches, at
//! the speed of the parse. The Python readers (stream/formats/labelstudio.py, dataloop.py) are
//! the specification and the fallback: a task this crate is not sure about is declined and
//! converted there. The loop (engine.rs) is one for both platforms (rows.rs `Platform`).

mod cols;
mod dl;
mod engine;
mod json;
mod ls;
mod rows;
mod tables;

use arrow_array::{Array, StructArray};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyList, PyTuple};
use engine::{brackets, run, Brackets, Status, RETURN_AFTER};
use std::panic::{catch_unwind, AssertUnwindSafe};

// Parsing makes many small, short-lived objects: mimalloc halves the time glibc malloc takes.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Where a JSON container that starts `data` ends, found by bracket counting alone (no
/// parse): `state` (depth, in a string, after a backslash) carries over from the bytes before.
/// Returns (complete, state). The caller reads the rest of one huge element in pieces with it
/// and converts the element once, rather than parsing it again after every doubling.
#[pyfunction]
#[pyo3(signature = (data, state=None))]
fn scan(data: &[u8], state: Option<Brackets>) -> (bool, Brackets) {
    brackets(data, state.unwrap_or_default())
}

fn capsules<'py>(py: Python<'py>, sa: StructArray) -> PyResult<Bound<'py, PyTuple>> {
    let data = sa.into_data();
    let (arr, sch) = arrow_array::ffi::to_ffi(&data)
        .map_err(|e| PyRuntimeError::new_err(format!("annostream_core: Arrow export failed: {e}")))?;
    let sc = PyCapsule::new_with_value(py, sch, c"arrow_schema")?;
    let ac = PyCapsule::new_with_value(py, arr, c"arrow_array")?;
    PyTuple::new(py, [sc.into_any(), ac.into_any()])
}

/// Convert the tasks (Label Studio) or items of `platform` in `data`.
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
#[pyo3(signature = (data, file, position, container, array, eof, first, limit=None,
                    platform="labelstudio"))]
#[allow(clippy::too_many_arguments)]
fn convert<'py>(py: Python<'py>, data: &[u8], file: &str, position: i64, container: &str,
                array: bool, eof: bool, first: bool, limit: Option<usize>,
                platform: &str) -> PyResult<Bound<'py, PyTuple>> {
    let run = match platform {
        "labelstudio" => run::<ls::Ls>,
        "dataloop" => run::<dl::Dl>,
        _ => return Err(PyValueError::new_err(format!("annostream_core: no platform {platform:?}"))),
    };
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
                // a table without rows is None: one-task files leave most tables empty
                if sa.is_empty() {
                    list.append(py.None())?;
                } else {
                    list.append(capsules(py, sa)?)?;
                }
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

