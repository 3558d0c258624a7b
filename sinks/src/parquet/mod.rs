//! Parquet on object_store: the file layout, the staged writer, the commit protocol and the
//! reader. `design.md` in this folder explains the commit protocol.
pub mod commit;
pub mod layout;
pub mod reader;
pub mod record;
pub mod writer;
