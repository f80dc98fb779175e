//! The one convention the view consumer (which writes the read views) and the
//! query service (which reads and streams them) share about a view document:
//! its revision, one more at every write of the view consumer.

use mongodb::bson::{Bson, Document};

/// The field holding a view document's revision.
pub const REVISION: &str = "_rev";

/// The revision `document` was written at: 0 for documents written before
/// views had revisions.
pub fn revision(document: &Document) -> i64 {
    document.get(REVISION).and_then(integer).unwrap_or(0)
}

/// A number of a view document, whichever of BSON's numeric types FerretDB
/// or MongoDB hands it back as.
pub fn integer(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Int64(v) => Some(*v),
        Bson::Double(v) => Some(*v as i64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::doc;

    use super::*;

    #[test]
    fn every_numeric_type_reads_as_the_revision() {
        assert_eq!(revision(&doc! { "_rev": 3_i32 }), 3);
        assert_eq!(revision(&doc! { "_rev": 4_i64 }), 4);
        assert_eq!(revision(&doc! { "_rev": 5.0 }), 5);
        assert_eq!(revision(&doc! { "_id": "o-1" }), 0);
        assert_eq!(revision(&doc! { "_rev": "7" }), 0);
    }
}
