//! Graph delta pages (and calendars listing pages) → Arrow record batches, in one pass over the
//! response body.
//!
//! Contract of [`normalize_page`]:
//! - The body must be a JSON object. `value` must be an array (a page without `value` is
//!   refused). `@odata.nextLink` and `@odata.deltaLink` are returned as given; other top-level
//!   keys are ignored.
//! - Each item of `value` must be an object with a string `id`. An item carrying `@removed`
//!   becomes a `_op = 'delete'` row with only the key columns set (for messages,
//!   `parent_folder_id` = the partition's folder). Every other item becomes an `upsert` row.
//!   Calendars listings have no removals: every item is an upsert.
//! - Events rows (upserts and deletes alike) carry `calendar_id` = the partition's calendar
//!   (`NormalizeContext::folder_id`; null for the legacy single events partition).
//! - **Leniency rule.** Unknown properties are ignored. A missing property or `null` is null. A
//!   property of the wrong JSON type, or a timestamp / time zone that cannot be read, is written
//!   as null and the item is counted once in `malformed_items`; the row is still written.
//! - **Page failures.** JSON that is not an object, a `value` that is not an array, an item that
//!   is not an object or whose `id` is missing or not a string: the whole page fails with
//!   [`NormalizeErrorKind::Invalid`] naming the item index and field; nothing of it is returned.
//!   Truncated or syntactically invalid JSON fails with [`NormalizeErrorKind::Syntax`], which the
//!   client retries (a body cut mid-stream).
//! - `_seq` comes from one `SeqGen::next_block(rows)` per page, in item order.
//!
//! Strings borrow from the body where they have no escapes and go straight into Arrow builders;
//! there is no owned per-item struct.

pub mod calendars;
pub mod events;
pub mod mail_folders;
pub mod mailboxes;
pub mod messages;
pub mod timestamp;
pub mod timezones;

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int64Array, ListArray, ListBuilder, NullBufferBuilder, RecordBatch, StringArray, StringBuilder, StructArray,
    TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields};
use chrono::{DateTime, Utc};
use outlake_pipeline::model::{Stream, columns};
use outlake_pipeline::seq::SeqGen;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::schema::{CALENDAR_ID, schema};
use super::wire::{LStr, take_malformed};

/// What a page is normalized for.
#[derive(Debug, Clone)]
pub struct NormalizeContext {
    /// The Graph user id (`mailbox_id` column).
    pub mailbox_id: String,
    /// The partition's folder id. Messages: `parent_folder_id` of delete rows and of upserts
    /// that lack it. Events: the calendar id, written to `calendar_id` of every row (`None` for
    /// the legacy single events partition, whose rows have a null `calendar_id`). Unused for
    /// `mail_folders` and `calendars`.
    pub folder_id: Option<String>,
    /// `_extracted_at` of every row of the page.
    pub extracted_at: DateTime<Utc>,
    pub run_id: String,
    /// Fill `body_content_type` / `body_content` (messages).
    pub fetch_bodies: bool,
}

/// One normalized page.
#[derive(Debug)]
pub struct NormalizedPage {
    pub batch: RecordBatch,
    pub next_link: Option<String>,
    pub delta_link: Option<String>,
    pub upserted_ids: Vec<String>,
    pub removed: usize,
    pub malformed_items: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormalizeErrorKind {
    /// Truncated or not JSON: fetching again may help.
    Syntax,
    /// Well-formed JSON that is not a Graph page: the page fails.
    Invalid,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct NormalizeError {
    pub kind: NormalizeErrorKind,
    pub message: String,
}

/// Builders for one table's data columns.
pub(crate) trait Table: Sized {
    type Item<'de>: Deserialize<'de>;
    fn with_capacity(rows: usize, ctx: &NormalizeContext) -> Self;
    fn id<'a, 'de>(item: &'a Self::Item<'de>) -> &'a LStr<'de>;
    fn is_removed(item: &Self::Item<'_>) -> bool;
    /// Append an upsert row's data columns (the id is handled by the caller).
    fn push_upsert(&mut self, item: Self::Item<'_>, ctx: &NormalizeContext);
    /// Append a delete row's data columns (all null, key columns set).
    fn push_delete(&mut self, ctx: &NormalizeContext);
    /// The messages table's `parent_folder_id` key column, if the table has one.
    fn finish(self) -> (Option<ArrayRef>, Vec<ArrayRef>);
}

/// Id and op of each row, in order.
pub(crate) struct Rows {
    ids: StringBuilder,
    deletes: Vec<bool>,
    upserted_ids: Vec<String>,
    removed: usize,
    malformed: usize,
}

impl Rows {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Rows { ids: StringBuilder::with_capacity(n, n * 48), deletes: Vec::with_capacity(n), upserted_ids: Vec::with_capacity(n), removed: 0, malformed: 0 }
    }
}

/// Assemble the batch: key and pipeline columns, then the table's data columns.
pub(crate) fn assemble<T: Table>(stream: Stream, table: T, mut rows: Rows, ctx: &NormalizeContext, seq: &SeqGen) -> RecordBatch {
    let n = rows.deletes.len();
    let first = seq.next_block(n);
    let (key_extra, data) = table.finish();
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(8 + data.len());
    cols.push(Arc::new(StringArray::from_iter_values(std::iter::repeat_n(ctx.mailbox_id.as_str(), n))));
    if stream == Stream::Events {
        debug_assert_eq!(schema(stream).field(1).name(), CALENDAR_ID);
        cols.push(Arc::new(std::iter::repeat_n(ctx.folder_id.as_deref(), n).collect::<StringArray>()));
    }
    cols.push(Arc::new(rows.ids.finish()));
    if let Some(k) = key_extra {
        cols.push(k);
    }
    cols.push(Arc::new(StringArray::from_iter_values(rows.deletes.iter().map(|d| if *d { columns::OP_DELETE } else { columns::OP_UPSERT }))));
    cols.push(Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| first + i))));
    let at = ctx.extracted_at.timestamp_micros();
    cols.push(Arc::new(TimestampMicrosecondArray::from_iter_values(std::iter::repeat_n(at, n)).with_timezone("UTC")));
    cols.push(Arc::new(StringArray::from_iter_values(std::iter::repeat_n(ctx.run_id.as_str(), n))));
    cols.extend(data);
    RecordBatch::try_new(schema(stream), cols).expect("normalizers build columns that match their schema")
}

/// Delete rows for `ids` (key columns only: for messages `parent_folder_id`, for events
/// `calendar_id`, both from `ctx.folder_id`), used for re-baselines, retired folders and
/// calendars, and calendars gone from the listing.
pub fn delete_rows(stream: Stream, ids: &[String], ctx: &NormalizeContext, seq: &SeqGen) -> RecordBatch {
    fn go<T: Table>(stream: Stream, ids: &[String], ctx: &NormalizeContext, seq: &SeqGen) -> RecordBatch {
        let mut table = T::with_capacity(ids.len(), ctx);
        let mut rows = Rows::with_capacity(ids.len());
        for id in ids {
            rows.ids.append_value(id);
            rows.deletes.push(true);
            table.push_delete(ctx);
        }
        assemble(stream, table, rows, ctx, seq)
    }
    match stream {
        Stream::Messages => go::<messages::Messages>(stream, ids, ctx, seq),
        Stream::Events => go::<events::Events>(stream, ids, ctx, seq),
        Stream::MailFolders => go::<mail_folders::MailFolders>(stream, ids, ctx, seq),
        Stream::Calendars => go::<calendars::Calendars>(stream, ids, ctx, seq),
        Stream::Mailboxes => go::<mailboxes::Mailboxes>(stream, ids, ctx, seq),
    }
}

/// Parse one delta page of `stream` (for [`Stream::Calendars`], one page of the calendars
/// listing) into a batch of that table's schema.
pub fn normalize_page(stream: Stream, body: &[u8], ctx: &NormalizeContext, seq: &SeqGen) -> Result<NormalizedPage, NormalizeError> {
    match stream {
        Stream::Messages => normalize_with::<messages::Messages>(stream, body, ctx, seq),
        Stream::Events => normalize_with::<events::Events>(stream, body, ctx, seq),
        Stream::MailFolders => normalize_with::<mail_folders::MailFolders>(stream, body, ctx, seq),
        Stream::Calendars => normalize_with::<calendars::Calendars>(stream, body, ctx, seq),
        Stream::Mailboxes => normalize_with::<mailboxes::Mailboxes>(stream, body, ctx, seq),
    }
}

fn normalize_with<T: Table>(stream: Stream, body: &[u8], ctx: &NormalizeContext, seq: &SeqGen) -> Result<NormalizedPage, NormalizeError> {
    // Messages with the stored `$select` fields are 0.7–2 KB on the wire. The builders'
    // capacity stays in the finished batch while it waits in the pipeline's channel, so guess
    // low (a builder that runs out grows by doubling) rather than reserve 3× too much.
    let guess = (body.len() / 1500).clamp(4, 4096);
    let mut state = PageState::<T> {
        table: T::with_capacity(guess, ctx),
        rows: Rows::with_capacity(guess),
        ctx,
        next_link: None,
        delta_link: None,
        saw_value: false,
        index: Cell::new(None),
    };
    // One UTF-8 check of the whole body is cheaper than serde_json's check of every borrowed
    // string; an invalid body goes through the byte reader so the error names the position.
    let parsed = match std::str::from_utf8(body) {
        Ok(text) => parse_page(&mut serde_json::Deserializer::from_str(text), &mut state),
        Err(_) => parse_page(&mut serde_json::Deserializer::from_slice(body), &mut state),
    };
    if let Err(e) = parsed {
        return Err(map_json_error(e, state.index.get()));
    }
    if !state.saw_value {
        return Err(NormalizeError { kind: NormalizeErrorKind::Invalid, message: "page has no `value` array".to_string() });
    }
    let PageState { table, mut rows, next_link, delta_link, .. } = state;
    let (upserted_ids, removed, malformed_items) = (std::mem::take(&mut rows.upserted_ids), rows.removed, rows.malformed);
    let batch = assemble(stream, table, rows, ctx, seq);
    Ok(NormalizedPage { batch, next_link, delta_link, upserted_ids, removed, malformed_items })
}

fn parse_page<'de, R: serde_json::de::Read<'de>, T: Table>(
    de: &mut serde_json::Deserializer<R>,
    state: &mut PageState<'_, T>,
) -> Result<(), serde_json::Error> {
    PageSeed(state).deserialize(&mut *de)?;
    de.end()
}

fn map_json_error(e: serde_json::Error, index: Option<usize>) -> NormalizeError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof | Category::Syntax | Category::Io => {
            NormalizeError { kind: NormalizeErrorKind::Syntax, message: format!("response body is truncated or not valid JSON: {e}") }
        }
        Category::Data => NormalizeError {
            kind: NormalizeErrorKind::Invalid,
            message: match index {
                Some(i) => format!("value[{i}]: {e}"),
                None => format!("not a Graph delta page: {e}"),
            },
        },
    }
}

struct PageState<'c, T: Table> {
    table: T,
    rows: Rows,
    ctx: &'c NormalizeContext,
    next_link: Option<String>,
    delta_link: Option<String>,
    saw_value: bool,
    /// The index of the item being read, while inside `value`.
    index: Cell<Option<usize>>,
}

struct PageSeed<'s, 'c, T: Table>(&'s mut PageState<'c, T>);

impl<'de, T: Table> DeserializeSeed<'de> for PageSeed<'_, '_, T> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: Table> Visitor<'de> for PageSeed<'_, '_, T> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object with a `value` array")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<LStr<'de>>()? {
            match key.as_deref() {
                Some("value") => {
                    if self.0.saw_value {
                        return Err(de::Error::custom("duplicate `value`"));
                    }
                    self.0.saw_value = true;
                    map.next_value_seed(ItemsSeed(&mut *self.0))?;
                    self.0.index.set(None);
                }
                Some(k @ ("@odata.nextLink" | "@odata.deltaLink")) => {
                    take_malformed();
                    let link = map.next_value::<LStr<'de>>().map(|l| l.0.map(Cow::into_owned))?;
                    if take_malformed() {
                        return Err(de::Error::custom(format!("`{k}` is not a string")));
                    }
                    if k == "@odata.nextLink" {
                        self.0.next_link = link;
                    } else {
                        self.0.delta_link = link;
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct ItemsSeed<'s, 'c, T: Table>(&'s mut PageState<'c, T>);

impl<'de, T: Table> DeserializeSeed<'de> for ItemsSeed<'_, '_, T> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T: Table> Visitor<'de> for ItemsSeed<'_, '_, T> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("`value` to be an array of items")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let st = self.0;
        let mut i = 0usize;
        loop {
            st.index.set(Some(i));
            take_malformed();
            let Some(item) = seq.next_element::<T::Item<'de>>()? else { break };
            let id: Cow<'_, str> = match T::id(&item).0.clone() {
                Some(id) => id,
                None => return Err(de::Error::custom("item has no string `id`")),
            };
            st.rows.ids.append_value(&id);
            if T::is_removed(&item) {
                st.rows.deletes.push(true);
                st.rows.removed += 1;
                st.table.push_delete(st.ctx);
            } else {
                st.rows.deletes.push(false);
                st.rows.upserted_ids.push(id.into_owned());
                st.table.push_upsert(item, st.ctx);
                // Wrong-typed properties seen while reading, or values rejected while converting.
                if take_malformed() {
                    st.rows.malformed += 1;
                }
            }
            i += 1;
        }
        Ok(())
    }
}

// ---- shared column builders ------------------------------------------------------------------

pub(crate) fn ts_builder(n: usize) -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC")
}

pub(crate) fn str_builder(n: usize, bytes_per_row: usize) -> StringBuilder {
    StringBuilder::with_capacity(n, n * bytes_per_row)
}

pub(crate) fn bool_builder(n: usize) -> BooleanBuilder {
    BooleanBuilder::with_capacity(n)
}

pub(crate) fn str_list_builder(n: usize) -> ListBuilder<StringBuilder> {
    ListBuilder::with_capacity(StringBuilder::new(), n)
}

/// Append an optional list of optional strings.
pub(crate) fn push_str_list(b: &mut ListBuilder<StringBuilder>, v: Option<&[LStr<'_>]>) {
    match v {
        Some(items) => {
            for s in items {
                b.values().append_option(s.as_deref());
            }
            b.append(true);
        }
        None => b.append_null(),
    }
}

/// A nullable struct whose children are all Utf8.
pub(crate) struct StrStruct<const N: usize> {
    fields: Fields,
    children: [StringBuilder; N],
    valid: NullBufferBuilder,
}

impl<const N: usize> StrStruct<N> {
    pub(crate) fn new(fields: Fields, n: usize) -> Self {
        StrStruct { fields, children: std::array::from_fn(|_| StringBuilder::with_capacity(n, n * 24)), valid: NullBufferBuilder::new(n) }
    }
    pub(crate) fn push(&mut self, v: Option<[Option<&str>; N]>) {
        match v {
            Some(vals) => {
                for (b, x) in self.children.iter_mut().zip(vals) {
                    b.append_option(x);
                }
                self.valid.append_non_null();
            }
            None => {
                for b in &mut self.children {
                    b.append_null();
                }
                self.valid.append_null();
            }
        }
    }
    pub(crate) fn len(&self) -> usize {
        self.valid.len()
    }
    pub(crate) fn finish(mut self) -> StructArray {
        let children: Vec<ArrayRef> = self.children.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef).collect();
        StructArray::new(self.fields, children, self.valid.finish())
    }
}

/// A nullable list of nullable Utf8-only structs.
pub(crate) struct StrStructList<const N: usize> {
    items: StrStruct<N>,
    offsets: Vec<i32>,
    valid: NullBufferBuilder,
}

impl<const N: usize> StrStructList<N> {
    pub(crate) fn new(fields: Fields, n: usize) -> Self {
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0);
        StrStructList { items: StrStruct::new(fields, n), offsets, valid: NullBufferBuilder::new(n) }
    }
    pub(crate) fn push_list<'x>(&mut self, list: Option<impl Iterator<Item = Option<[Option<&'x str>; N]>>>) {
        match list {
            Some(it) => {
                for v in it {
                    self.items.push(v);
                }
                self.valid.append_non_null();
            }
            None => self.valid.append_null(),
        }
        self.offsets.push(i32::try_from(self.items.len()).expect("a page holds fewer than 2^31 list items"));
    }
    pub(crate) fn push_null(&mut self) {
        self.push_list(None::<std::iter::Empty<Option<[Option<&str>; N]>>>);
    }
    pub(crate) fn finish(mut self) -> ListArray {
        let fields = self.items.fields.clone();
        let field = Arc::new(Field::new("item", DataType::Struct(fields), true));
        let nulls = self.valid.finish();
        ListArray::new(field, OffsetBuffer::new(self.offsets.into()), Arc::new(self.items.finish()), nulls)
    }
}

#[cfg(test)]
mod tests;
