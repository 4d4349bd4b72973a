//! Legacy documents to domain types, and back for seeding. The mongo shell wrote
//! numbers as doubles: every number is read as double, int32 or int64 alike.

use bson::{doc, Document, RawBsonRef, RawDocument};
#[cfg(feature = "admin")]
use bson::{oid::ObjectId, Bson};
use domain::{Book, BookCondition, BookCopy, Patron};

/// A whole number stored as any BSON number type.
fn number(value: RawBsonRef<'_>) -> Option<i32> {
    match value {
        RawBsonRef::Double(d) if d.is_finite() && d.fract() == 0.0 => Some(d as i32),
        RawBsonRef::Int32(i) => Some(i),
        RawBsonRef::Int64(i) => i32::try_from(i).ok(),
        _ => None,
    }
}

fn text(value: RawBsonRef<'_>) -> Option<String> {
    value.as_str().map(str::to_string)
}

fn id(value: RawBsonRef<'_>) -> Option<String> {
    value.as_object_id().map(|o| o.to_hex())
}

/// The fields a patron read returns; `postal_code` is never fetched.
pub(crate) fn patron_projection() -> Document {
    doc! { "_id": 1, "first_name": 1, "last_name": 1, "email": 1, "year_registered": 1, "phone_cell": 1 }
}

// Reads go straight from the wire bytes (`RawDocument`): building a `Document`
// first allocated every key and value and was the largest cost of a page of
// checkouts in the profile (bench/RESULTS.md). Each document is walked once:
// `RawDocument::get` scans from the start for every key it is asked.

/// A field's value as the first occurrence of its key gives it (as `get` would).
struct Field<T>(Option<Option<T>>);

impl<T> Field<T> {
    fn new() -> Self {
        Field(None)
    }

    fn read(&mut self, value: RawBsonRef<'_>, convert: impl FnOnce(RawBsonRef<'_>) -> Option<T>) {
        if self.0.is_none() {
            self.0 = Some(convert(value));
        }
    }

    fn get(self) -> Option<T> {
        self.0.flatten()
    }
}

/// Calls `each` with every readable (key, value) of `doc`, in order.
fn walk<'a>(doc: &'a RawDocument, mut each: impl FnMut(&'a str, RawBsonRef<'a>)) {
    for element in doc.iter_elements().flatten() {
        if let Ok(value) = element.value() {
            each(element.key(), value);
        }
    }
}

pub(crate) fn patron(doc: &RawDocument) -> Option<Patron> {
    let (mut id_, mut year, mut first, mut last, mut email, mut phone) = (
        Field::new(),
        Field::new(),
        Field::new(),
        Field::new(),
        Field::new(),
        Field::new(),
    );
    walk(doc, |key, value| match key {
        "_id" => id_.read(value, id),
        "year_registered" => year.read(value, number),
        "first_name" => first.read(value, text),
        "last_name" => last.read(value, text),
        "email" => email.read(value, text),
        "phone_cell" => phone.read(value, text),
        _ => {}
    });
    Some(Patron {
        id: id_.get()?,
        year_registered: year.get(),
        first_name: first.get(),
        last_name: last.get(),
        email: email.get(),
        phone_cell: phone.get(),
    })
}

fn copy(value: RawBsonRef<'_>) -> Option<BookCopy> {
    let (mut upc, mut condition) = (Field::new(), Field::new());
    walk(value.as_document()?, |key, value| match key {
        "libraryUPC" => upc.read(value, text),
        "condition" => condition.read(value, |v| BookCondition::parse(v.as_str()?)),
        _ => {}
    });
    Some(BookCopy {
        library_upc: upc.get()?,
        condition: condition.get()?,
    })
}

fn copies(value: RawBsonRef<'_>) -> Option<Vec<BookCopy>> {
    let list = value.as_array()?;
    Some(list.into_iter().filter_map(|c| copy(c.ok()?)).collect())
}

pub(crate) fn book(doc: &RawDocument) -> Option<Book> {
    let (mut id_, mut title, mut author, mut year, mut genre, mut isbn, mut copies_) = (
        Field::new(),
        Field::new(),
        Field::new(),
        Field::new(),
        Field::new(),
        Field::new(),
        Field::new(),
    );
    walk(doc, |key, value| match key {
        "_id" => id_.read(value, id),
        "title" => title.read(value, text),
        "author" => author.read(value, text),
        "yearPublished" => year.read(value, number),
        "genre" => genre.read(value, text),
        "isbn_13" => isbn.read(value, text),
        "copies" => copies_.read(value, copies),
        _ => {}
    });
    Some(Book {
        id: id_.get()?,
        title: title.get().unwrap_or_default(),
        author: author.get().unwrap_or_default(),
        year_published: year.get().unwrap_or_default(),
        genre: genre.get().unwrap_or_default(),
        isbn13: isbn.get().unwrap_or_default(),
        copies: copies_.get().unwrap_or_default(),
    })
}

/// A patron as the legacy data stores it (numbers as doubles).
#[cfg(feature = "admin")]
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
#[cfg(feature = "admin")]
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

    fn raw(d: &Document) -> bson::RawDocumentBuf {
        bson::RawDocumentBuf::from_document(d).unwrap()
    }

    #[test]
    fn numbers_read_as_double_int_or_long() {
        let patron_with = |year: Bson| {
            patron(&raw(
                &doc! {"_id": ObjectId::new(), "year_registered": year},
            ))
            .unwrap()
            .year_registered
        };
        assert_eq!(patron_with(Bson::Double(2009.0)), Some(2009));
        assert_eq!(patron_with(Bson::Int32(2009)), Some(2009));
        assert_eq!(patron_with(Bson::Int64(2009)), Some(2009));
        assert_eq!(patron_with(Bson::Double(20.5)), None);
        assert_eq!(patron_with(Bson::String("x".into())), None);
    }

    #[test]
    fn documents_round_trip_and_wrong_types_read_as_absent() {
        let id = ObjectId::new();
        let p = Patron {
            id: id.to_hex(),
            year_registered: Some(2011),
            first_name: Some("Ada".into()),
            last_name: None,
            email: Some("ada@example.com".into()),
            phone_cell: Some("555".into()),
        };
        assert_eq!(patron(&raw(&patron_doc(&p, Some("N1")).unwrap())), Some(p));
        let odd = patron(&raw(&doc! {"_id": id, "first_name": 7, "email": "a@b.c"})).unwrap();
        assert_eq!(odd.first_name, None);
        assert_eq!(odd.email.as_deref(), Some("a@b.c"));
        assert_eq!(patron(&raw(&doc! {"first_name": "no id"})), None);

        let b = Book {
            id: ObjectId::new().to_hex(),
            title: "T".into(),
            author: "A".into(),
            year_published: 1999,
            genre: "G".into(),
            isbn13: "978".into(),
            copies: vec![BookCopy {
                library_upc: "u1".into(),
                condition: BookCondition::Fair,
            }],
        };
        assert_eq!(book(&raw(&book_doc(&b).unwrap())), Some(b));
    }
}
