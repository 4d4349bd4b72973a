//! Patrons and books, as stored in MongoDB.

/// A library patron. `postal_code` exists in the legacy documents but is never
/// exposed, so it has no field here.
#[derive(Debug, Clone, PartialEq)]
pub struct Patron {
    /// The ObjectId as 24 lowercase hex digits.
    pub id: String,
    /// Stored as a double by the legacy mongo shell; an integer year here.
    pub year_registered: Option<i32>,
    /// `first_name`.
    pub first_name: Option<String>,
    /// `last_name`.
    pub last_name: Option<String>,
    /// `email`; may be invalid in legacy data.
    pub email: Option<String>,
    /// `phone_cell`, `NNN-NNN-NNNN`.
    pub phone_cell: Option<String>,
}

/// A title and its physical copies.
#[derive(Debug, Clone, PartialEq)]
pub struct Book {
    /// The ObjectId as 24 lowercase hex digits.
    pub id: String,
    /// Title.
    pub title: String,
    /// Author.
    pub author: String,
    /// Stored as a double in legacy data.
    pub year_published: i32,
    /// Genre.
    pub genre: String,
    /// `isbn_13`.
    pub isbn13: String,
    /// The copies, each with its UPC.
    pub copies: Vec<BookCopy>,
}

/// One physical copy of a book, identified by its UPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookCopy {
    /// `libraryUPC`, e.g. `9000000001`.
    pub library_upc: String,
    /// Its state.
    pub condition: BookCondition,
}

/// A copy's physical state; the wire names are lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BookCondition {
    /// `good`
    Good,
    /// `fair`
    Fair,
    /// `damaged`
    Damaged,
}

impl BookCondition {
    /// The stored and GraphQL name.
    pub fn as_str(self) -> &'static str {
        match self {
            BookCondition::Good => "good",
            BookCondition::Fair => "fair",
            BookCondition::Damaged => "damaged",
        }
    }

    /// Parses the stored name; unknown values are `None`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "good" => Some(BookCondition::Good),
            "fair" => Some(BookCondition::Fair),
            "damaged" => Some(BookCondition::Damaged),
            _ => None,
        }
    }
}
