//! Read pipeline columns (`id`, `_op`) out of record batches.

use std::collections::HashSet;

use arrow::array::{Array, AsArray, RecordBatch};

use crate::model::columns;

/// (ids present, ids removed) in a batch of any table, by its `id` and `_op` columns.
pub fn folder_changes(batch: &RecordBatch) -> (HashSet<String>, HashSet<String>) {
    let mut present = HashSet::new();
    let mut removed = HashSet::new();
    let (Some(ids), Some(ops)) = (batch.column_by_name(columns::ID), batch.column_by_name(columns::OP)) else {
        return (present, removed);
    };
    let (Some(ids), Some(ops)) = (ids.as_string_opt::<i32>(), ops.as_string_opt::<i32>()) else {
        return (present, removed);
    };
    for i in 0..batch.num_rows() {
        if ids.is_null(i) {
            continue;
        }
        let id = ids.value(i).to_string();
        if ops.value(i) == columns::OP_DELETE {
            present.remove(&id);
            removed.insert(id);
        } else {
            removed.remove(&id);
            present.insert(id);
        }
    }
    (present, removed)
}

/// Sum of a non-negative integer column (e.g. `total_item_count`), 0 when absent.
pub fn sum_column(batch: &RecordBatch, name: &str) -> u64 {
    let Some(col) = batch.column_by_name(name) else { return 0 };
    let Some(values) = col.as_primitive_opt::<arrow::datatypes::Int64Type>() else { return 0 };
    values.iter().flatten().filter(|v| *v > 0).map(|v| v as u64).sum()
}

/// A mask that keeps every row except upserts for which `changed(id, change_key)` is false.
/// `None` when the batch has no `change_key` column (nothing can be skipped).
pub fn changed_rows(batch: &RecordBatch, changed: impl Fn(&str, &str) -> bool) -> Option<arrow::array::BooleanArray> {
    let ids = batch.column_by_name(columns::ID)?.as_string_opt::<i32>()?;
    let ops = batch.column_by_name(columns::OP)?.as_string_opt::<i32>()?;
    let keys = batch.column_by_name(columns::CHANGE_KEY)?.as_string_opt::<i32>()?;
    Some(
        (0..batch.num_rows())
            .map(|i| {
                let upsert = !ops.is_null(i) && ops.value(i) == columns::OP_UPSERT;
                let skippable = upsert && !ids.is_null(i) && !keys.is_null(i);
                Some(!skippable || changed(ids.value(i), keys.value(i)))
            })
            .collect(),
    )
}
