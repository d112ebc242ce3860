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
use rows::Out;
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

/// Rows held across the calls of one job: a folder of one-task files would otherwise make one
/// set of five small Arrow batches per file, whose import, join and write cost more than the
/// conversion (10,000 one-item files: 6.1 s against the Python reader's 2.5 s).
const HOLD: usize = 1 << 20;

/// The core's conversion state for one job: the five tables' column buffers, which keep rows
/// across calls until asked for, or until they hold rows of `HOLD` bytes of input.
#[pyclass(module = "annostream_core")]
#[derive(Default)]
struct Converter {
    out: Out,
    /// bytes of input whose rows `out` holds
    held: usize,
}

/// Every row of `out` as the five tables' struct arrays (`out` is emptied), or None.
fn finish(o: &mut Out) -> Option<[StructArray; 5]> {
    o.marks().iter().any(|n| *n > 0)
        .then(|| [o.t.finish(), o.a.finish(), o.r.finish(), o.rel.finish(), o.k.finish()])
}

/// The tables as (schema, array) PyCapsule pairs, None for a table without rows (one-task
/// files leave most tables empty); None for no tables.
fn batches<'py>(py: Python<'py>, tables: Option<[StructArray; 5]>) -> PyResult<Bound<'py, PyAny>> {
    let Some(tables) = tables else { return Ok(py.None().into_bound(py)) };
    let list = PyList::empty(py);
    for sa in tables {
        if sa.is_empty() {
            list.append(py.None())?;
        } else {
            list.append(capsules(py, sa)?)?;
        }
    }
    Ok(list.into_any())
}

fn status_name(s: &Status) -> &'static str {
    match s {
        Status::Next => "next",
        Status::End => "end",
        Status::More => "more",
        Status::Error => "error",
    }
}

#[pymethods]
impl Converter {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Convert the tasks (Label Studio) or items of `platform` in `data`.
    ///
    /// `data` starts at an element (or, with `first`, right after the array's `[`); `array`:
    /// elements are separated by commas and the array closes with `]` (else: values separated
    /// by whitespace, as in NDJSON); `eof`: no bytes follow `data`; `limit`: stop at the
    /// element starting there; `keep`: hold the rows for a later call (unless they come from
    /// HOLD bytes or more, a task was declined or the input is not the core's: the rows of
    /// the tasks before such a task go first). Returns (status, consumed, tasks, declined,
    /// batches, held): status 'next' (call again from `consumed`), 'end', 'more' (the element
    /// at `consumed` needs more bytes) or 'error' (the Python reader takes over at
    /// `consumed`); `declined` is the (start, end) byte span of a task left to the Python
    /// reader (it comes after the `tasks` converted ones); `batches` every row held until now
    /// (`take`), or None; `held`: rows stay held.
    #[pyo3(signature = (data, file, position, container, array, eof, first, limit=None,
                        platform="labelstudio", keep=false))]
    #[allow(clippy::too_many_arguments)]
    fn convert<'py>(&mut self, py: Python<'py>, data: &[u8], file: &str, position: i64,
                    container: &str, array: bool, eof: bool, first: bool, limit: Option<usize>,
                    platform: &str, keep: bool) -> PyResult<Bound<'py, PyTuple>> {
        let run = match platform {
            "labelstudio" => run::<ls::Ls>,
            "dataloop" => run::<dl::Dl>,
            _ => return Err(PyValueError::new_err(format!("annostream_core: no platform {platform:?}"))),
        };
        let (out, held) = (&mut self.out, &mut self.held);
        // the GIL is released while parsing: Python writes the previous batches meanwhile
        let result = py.detach(|| catch_unwind(AssertUnwindSafe(|| {
            let r = run(out, data, file, position, container, array, eof, first, limit);
            *held += r.consumed;
            let hold = keep && *held < HOLD && r.declined.is_none() && r.status != Status::Error;
            let tables = if hold || out.misuse.0 { None } else { finish(out) };
            if !hold {
                *held = 0;
            }
            if data.len() > RETURN_AFTER {
                // ok: mi_collect only hands mimalloc's free pages back to the system
                unsafe { libmimalloc_sys::mi_collect(true) };
            }
            (r, tables)
        })));
        let (r, tables) = match result {
            Ok(x) if !self.out.misuse.0 => x,
            failed => {
                self.out = Out::default(); // rows of a failed call are not to be trusted
                self.held = 0;
                let msg = match failed {
                    Err(panic) => panic.downcast_ref::<&str>().map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into()),
                    Ok(_) => "a column was written out of order (a bug)".into(),
                };
                return Err(PyRuntimeError::new_err(format!("annostream_core failed on {file}: {msg}")));
            }
        };
        let held = tables.is_none() && self.out.marks().iter().any(|n| *n > 0);
        let batches = batches(py, tables)?;
        let declined = match r.declined {
            Some((s, e)) => (s, e).into_pyobject(py)?.into_any(),
            None => py.None().into_bound(py),
        };
        PyTuple::new(py, [status_name(&r.status).into_pyobject(py)?.into_any(),
                          r.consumed.into_pyobject(py)?.into_any(),
                          r.tasks.into_pyobject(py)?.into_any(), declined, batches,
                          held.into_pyobject(py)?.to_owned().into_any()])
    }

    /// Every held row (as `convert`'s batches), or None when no row is held.
    fn take<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.held = 0;
        batches(py, finish(&mut self.out))
    }
}

#[pymodule]
fn annostream_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Converter>()?;
    m.add_function(wrap_pyfunction!(scan, m)?)?;
    Ok(())
}

