//! The five tables' columns in the order and types of stream/tables.py (the Python side
//! checks every batch's schema against it, so a drift is an error, never a silent mismatch).

use crate::cols::*;
use arrow_array::{ArrayRef, StructArray};
use arrow_schema::{Field, Fields};

/// What links a row to its task (`task_position` is the task's `position`) and, for the rows
/// of an annotation's results, to that annotation.
#[derive(Clone, Copy)]
pub struct Link<'a> {
    pub source: &'a str,
    pub task_id: &'a str,
    pub file: &'a str,
    pub task_position: i64,
    pub kind: &'a str,
    pub annotation_id: &'a str,
    pub annotation_position: i64,
}

macro_rules! table {
    // the link columns, declared once: they lead the table, in stream/tables.py's order
    ($name:ident links to task { $($rest:tt)* }) => {
        table!($name {
            source: StrCol = d(),
            task_id: StrCol = d(),
            file: StrCol = d(),
            task_position: I64Col = d(),
            kind: StrCol = d(),
            $($rest)*
        });
        impl $name {
            /// Rows i..i+count belong to the task of `l`.
            pub fn link_task(&mut self, i: usize, count: usize, l: &Link, m: &mut Misuse) {
                self.source.fill(i, count, l.source, m);
                self.task_id.fill(i, count, l.task_id, m);
                self.file.fill(i, count, l.file, m);
                self.task_position.fill(i, count, l.task_position, m);
                self.kind.fill(i, count, l.kind, m);
            }
        }
    };
    ($name:ident links to annotation { $($rest:tt)* }) => {
        table!($name links to task {
            annotation_id: StrCol = d(),
            annotation_position: I64Col = d(),
            $($rest)*
        });
        impl $name {
            /// Rows i..i+count belong to the annotation of `l`.
            pub fn link(&mut self, i: usize, count: usize, l: &Link, m: &mut Misuse) {
                self.link_task(i, count, l, m);
                self.annotation_id.fill(i, count, l.annotation_id, m);
                self.annotation_position.fill(i, count, l.annotation_position, m);
            }
        }
    };
    ($name:ident { $($field:ident : $ty:ty = $init:expr),* $(,)? }) => {
        pub struct $name {
            pub n: usize,
            $(pub $field: $ty,)*
        }
        impl Default for $name {
            fn default() -> Self {
                $name { n: 0, $($field: $init,)* }
            }
        }
        impl $name {
            pub fn truncate(&mut self, n: usize) {
                $(Finish::truncate(&mut self.$field, n);)*
                self.n = n;
            }
            /// The rows so far as one struct array (a record batch); the table is emptied.
            pub fn finish(&mut self) -> StructArray {
                let n = self.n;
                self.n = 0;
                let arrays: Vec<ArrayRef> = vec![$(Finish::finish(&mut self.$field, n),)*];
                let names = [$(stringify!($field),)*];
                let fields: Fields = names
                    .iter()
                    .zip(&arrays)
                    .map(|(name, a)| Field::new(name.trim_start_matches("r#"), a.data_type().clone(), true))
                    .collect();
                StructArray::new(fields, arrays, None)
            }
        }
    };
}

fn d<T: Default>() -> T {
    T::default()
}

use arrow_array::Array;

table!(Tasks {
    source: StrCol = d(),
    task_id: StrCol = d(),
    project_id: StrCol = d(),
    position: I64Col = d(),
    file: StrCol = d(),
    container: StrCol = d(),
    form: StrCol = d(),
    data: StrCol = d(),
    meta: StrCol = d(),
    created_at: TsCol = d(),
    updated_at: TsCol = d(),
    total_annotations: I64Col = d(),
    cancelled_annotations: I64Col = d(),
    total_predictions: I64Col = d(),
    media_name: StrCol = d(),
    mimetype: StrCol = d(),
    width: I64Col = d(),
    height: I64Col = d(),
    fps: F64Col = d(),
    duration: F64Col = d(),
    list_keys: StrListCol = d(),
    extra: StrCol = d(),
});

table!(Annotations links to task {
    position: I64Col = d(),
    annotation_id: StrCol = d(),
    form: StrCol = d(),
    completed_by: StrCol = d(),
    completed_by_email: StrCol = d(),
    was_cancelled: BoolCol = d(),
    ground_truth: BoolCol = d(),
    lead_time: F64Col = d(),
    model_version: StrCol = d(),
    score: F64Col = d(),
    created_at: TsCol = d(),
    updated_at: TsCol = d(),
    updated_by: StrCol = d(),
    automated: BoolCol = d(),
    origin: StrCol = d(),
    result_count: I64Col = d(),
    list_keys: StrListCol = d(),
    extra: StrCol = d(),
});

table!(Results links to annotation {
    position: I64Col = d(),
    region_id: StrCol = d(),
    from_name: StrCol = d(),
    to_name: StrCol = d(),
    r#type: StrCol = d(),
    origin: StrCol = d(),
    score: F64Col = d(),
    parent_id: StrCol = d(),
    readonly: BoolCol = d(),
    original_width: I64Col = d(),
    original_height: I64Col = d(),
    image_rotation: F64Col = d(),
    labels: StrListCol = d(),
    choices: StrListCol = d(),
    texts: StrListCol = d(),
    text: StrCol = d(),
    x: F64Col = d(),
    y: F64Col = d(),
    width: F64Col = d(),
    height: F64Col = d(),
    rotation: F64Col = d(),
    unit: StrCol = d(),
    points: PointsCol = d(),
    span_start: I64Col = d(),
    span_end: I64Col = d(),
    time_start: F64Col = d(),
    time_end: F64Col = d(),
    number: F64Col = d(),
    frame_start: I64Col = d(),
    frame_end: I64Col = d(),
    attributes: StrCol = d(),
    value: StrCol = d(),
    extra: StrCol = d(),
});

table!(Relations links to annotation {
    position: I64Col = d(),
    from_id: StrCol = d(),
    to_id: StrCol = d(),
    direction: StrCol = d(),
    labels: StrListCol = d(),
    extra: StrCol = d(),
});

table!(Keyframes links to annotation {
    region_id: StrCol = d(),
    result_position: I64Col = d(),
    position: I64Col = d(),
    frame: I64Col = d(),
    time: F64Col = d(),
    enabled: BoolCol = d(),
    x: F64Col = d(),
    y: F64Col = d(),
    width: F64Col = d(),
    height: F64Col = d(),
    rotation: F64Col = d(),
    points: PointsCol = d(),
    auto: BoolCol = d(),
    label: StrCol = d(),
    attributes: StrCol = d(),
    fixed: BoolCol = d(),
    r#type: StrCol = d(),
    extra: StrCol = d(),
});

