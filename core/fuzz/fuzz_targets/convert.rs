//! The core's conversion loop (engine::run, what `annostream_core.convert` calls) on any bytes:
//! the first byte picks the call's flags and the platform (bit 32: Dataloop, else Label
//! Studio). Besides "no panic", the checks the Python side relies on: the byte counts stay
//! within the input, every table's columns come out with its row count, no column is written
//! out of order, and the tasks table has one row per task.
#![no_main]
#![allow(dead_code)]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/cols.rs"]
mod cols;
#[path = "../../src/dl.rs"]
mod dl;
#[path = "../../src/engine.rs"]
mod engine;
#[path = "../../src/json.rs"]
mod json;
#[path = "../../src/ls.rs"]
mod ls;
#[path = "../../src/rows.rs"]
mod rows;
#[path = "../../src/tables.rs"]
mod tables;

use arrow_array::Array;

fuzz_target!(|input: &[u8]| {
    let Some((&flags, data)) = input.split_first() else { return };
    let (array, eof, first) = (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0);
    let container = if flags & 8 != 0 { "object" } else { "array" };
    let limit = (flags & 16 != 0).then_some(data.len() / 2);
    let mut out = rows::Out::default();
    let r = if flags & 32 != 0 {
        engine::run::<dl::Dl>(&mut out, data, "f.json", 0, container, array, eof, first, limit)
    } else {
        engine::run::<ls::Ls>(&mut out, data, "f.json", 0, container, array, eof, first, limit)
    };
    assert!(r.consumed <= data.len());
    if let Some((s, e)) = r.declined {
        assert!(s < e && e <= data.len());
    }
    assert!(!out.misuse.0, "a column written out of order");
    assert_eq!(out.t.n as i64, r.tasks);
    let n = out.marks();
    let tables = [out.t.finish(), out.a.finish(), out.r.finish(), out.rel.finish(), out.k.finish()];
    for (t, rows) in tables.iter().zip(n) {
        assert_eq!(t.len(), rows);
    }
});
