//! Legacy documents to domain types, and back for seeding. The mongo shell wrote
//! numbers as doubles: every number is read as double, int32 or int64 alike.

use bson::{doc, oid::ObjectId, Bson, Document, RawBsonRef, RawDocument};
use domain::{Book, BookCondition, BookCopy, Patron};

/// A whole number stored as any BSON number type.
fn number(doc: &RawDocument, key: &str) -> Option<i32> {
    match doc.get(key).ok()?? {
        RawBsonRef::Double(d) if d.is_finite() && d.fract() == 0.0 => Some(d as i32),
        RawBsonRef::Int32(i) => Some(i),
        RawBsonRef::Int64(i) => i32::try_from(i).ok(),
        _ => None,
    }
}

fn text(doc: &RawDocument, key: &str) -> Option<String> {
    doc.get_str(key).ok().map(str::to_string)
}

fn id(doc: &RawDocument) -> Option<String> {
    doc.get_object_id("_id").ok().map(|o| o.to_hex())
}

/// The fields a patron read returns; `postal_code` is never fetched.
pub(crate) fn patron_projection() -> Document {
    doc! { "_id": 1, "first_name": 1, "last_name": 1, "email": 1, "year_registered": 1, "phone_cell": 1 }
}

// Reads go straight from the wire bytes (`RawDocument`): building a `Document`
// first allocated every key and value and was the largest cost of a page of
// checkouts in the profile (bench/RESULTS.md).

pub(crate) fn patron(doc: &RawDocument) -> Option<Patron> {
    Some(Patron {
        id: id(doc)?,
        year_registered: number(doc, "year_registered"),
        first_name: text(doc, "first_name"),
        last_name: text(doc, "last_name"),
        email: text(doc, "email"),
        phone_cell: text(doc, "phone_cell"),
    })
}

pub(crate) fn book(doc: &RawDocument) -> Option<Book> {
    let copies = doc
        .get_array("copies")
        .map(|list| {
            list.into_iter()
                .filter_map(|c| c.ok()?.as_document())
                .filter_map(|c| {
                    Some(BookCopy {
                        library_upc: text(c, "libraryUPC")?,
                        condition: BookCondition::parse(c.get_str("condition").ok()?)?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Book {
        id: id(doc)?,
        title: text(doc, "title").unwrap_or_default(),
        author: text(doc, "author").unwrap_or_default(),
        year_published: number(doc, "yearPublished").unwrap_or_default(),
        genre: text(doc, "genre").unwrap_or_default(),
        isbn13: text(doc, "isbn_13").unwrap_or_default(),
        copies,
    })
}

/// A patron as the legacy data stores it (numbers as doubles).
pub(crate) fn patron_doc(p: &Patron, postal_code: Option<&str>) -> Option<Document> {
    let mut d = doc! {
        "_id": ObjectId::parse_str(&p.id).ok()?,
        "first_name": p.first_name.clone(),
        "last_name": p.last_name.clone(),
        "email": p.email.clone(),
        "phone_cell": p.phone_cell.clone(),
    };
    if let Some(y) = p.year_registered {
        d.insert("year_registered", f64::from(y));
    }
    if let Some(code) = postal_code {
        d.insert("postal_code", code);
    }
    Some(d)
}

/// A book as the legacy data stores it.
pub(crate) fn book_doc(b: &Book) -> Option<Document> {
    let copies: Vec<Bson> = b
        .copies
        .iter()
        .map(|c| {
            Bson::Document(doc! { "libraryUPC": &c.library_upc, "condition": c.condition.as_str() })
        })
        .collect();
    Some(doc! {
        "_id": ObjectId::parse_str(&b.id).ok()?,
        "title": &b.title,
        "author": &b.author,
        "yearPublished": f64::from(b.year_published),
        "genre": &b.genre,
        "isbn_13": &b.isbn13,
        "copies": copies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_double_int_or_long() {
        let d = doc! {"a": 2009.0, "b": 2009_i32, "c": 2009_i64, "d": 20.5, "e": "x"};
        let d = bson::RawDocumentBuf::from_document(&d).unwrap();
        assert_eq!(number(&d, "a"), Some(2009));
        assert_eq!(number(&d, "b"), Some(2009));
        assert_eq!(number(&d, "c"), Some(2009));
        assert_eq!(number(&d, "d"), None);
        assert_eq!(number(&d, "e"), None);
        assert_eq!(number(&d, "missing"), None);
    }
}
