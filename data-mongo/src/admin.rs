//! What only tests and the seed tool need: loading the demo catalog, emptying it,
//! dropping the database. Behind the `admin` feature, so the production gateway
//! cannot call any of it.

use bson::{doc, Document};
use domain::{Book, Patron, StoreError};

use crate::error::store_error;
use crate::{convert, MongoCatalog};

impl MongoCatalog {
    /// Loads patrons and books in the legacy shapes (numbers as doubles); patrons
    /// for which `postal_code` says so get one, as some legacy documents have.
    pub async fn insert_demo(
        &self,
        patrons: &[Patron],
        books: &[Book],
        postal_code: impl Fn(usize) -> bool,
    ) -> Result<(), StoreError> {
        let patron_docs: Vec<Document> = patrons
            .iter()
            .enumerate()
            .filter_map(|(i, p)| convert::patron_doc(p, postal_code(i).then_some("10115")))
            .collect();
        let book_docs: Vec<Document> = books.iter().filter_map(convert::book_doc).collect();
        if !patron_docs.is_empty() {
            self.patrons_coll()?
                .insert_many(patron_docs)
                .await
                .map_err(store_error)?;
        }
        if !book_docs.is_empty() {
            self.books_coll()?
                .insert_many(book_docs)
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }

    /// Empties patrons and books (the seed tool's `--reset`).
    pub async fn delete_catalog(&self) -> Result<(), StoreError> {
        self.patrons_coll()?
            .delete_many(doc! {})
            .await
            .map_err(store_error)?;
        self.books_coll()?
            .delete_many(doc! {})
            .await
            .map(drop)
            .map_err(store_error)
    }

    /// Drops the database (test clean-up).
    pub async fn drop_database(&self) -> Result<(), StoreError> {
        self.database()?.drop().await.map_err(store_error)
    }
}
