//! `MongoCatalog`: the domain's `CatalogStore` on the legacy collections.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use bson::{doc, oid::ObjectId, Document, RawDocument, RawDocumentBuf};
use domain::{Book, CatalogStore, Patron, StoreError};
use mongodb::options::{ClientOptions, Credential};
use mongodb::{Collection, Cursor, Database, IndexModel};
use secrecy::ExposeSecret;

use crate::clients::Clients;
use crate::error::store_error;
use crate::{convert, Error, MongoConfig};

/// How long close waits for open cursors and sessions before closing anyway.
const GRACEFUL_CLOSE: Duration = Duration::from_secs(3);

/// The catalog connector; a `Closeable`. It keeps one driver client per tokio
/// runtime that uses it (see `clients`), each with a pool of `pool_size`.
pub struct MongoCatalog {
    clients: Clients,
    pub(crate) snapshot_ttl: Duration,
    pub(crate) snapshot_chunk_rows: usize,
}

impl MongoCatalog {
    /// The calling runtime's database handle, for tools and tests that need a raw
    /// command (everything the gateway needs goes through the store traits).
    pub fn database(&self) -> Result<Database, StoreError> {
        self.clients.db()
    }

    /// Builds the client (it connects lazily) and ensures the indexes. Fails when
    /// the server cannot be reached within the selection timeout.
    pub async fn connect(config: &MongoConfig) -> Result<Self, Error> {
        let mut options = ClientOptions::parse(&config.url)
            .await
            .map_err(Error::Config)?;
        options.max_pool_size = Some(config.pool_size.max(1));
        options.server_selection_timeout = Some(config.server_selection_timeout);
        options.connect_timeout = Some(Duration::from_secs(5));
        options.app_name = Some("central-library-gateway".into());
        if let Some(user) = &config.user {
            options.credential = Some(
                Credential::builder()
                    .username(user.clone())
                    .password(
                        config
                            .password
                            .as_ref()
                            .map(|p| p.expose_secret().to_string()),
                    )
                    .source(config.database.clone())
                    .build(),
            );
        }
        let catalog = MongoCatalog {
            clients: Clients::new(options, &config.database).map_err(Error::Config)?,
            snapshot_ttl: config.snapshot_ttl,
            snapshot_chunk_rows: config.snapshot_chunk_rows,
        };
        catalog.ensure_indexes().await?;
        Ok(catalog)
    }

    pub(crate) fn patrons_coll(&self) -> Result<Collection<Document>, StoreError> {
        Ok(self.database()?.collection("patrons"))
    }

    pub(crate) fn books_coll(&self) -> Result<Collection<Document>, StoreError> {
        Ok(self.database()?.collection("books"))
    }

    /// The same collections read as raw documents (decoded lazily by `convert`).
    fn raw(&self, name: &str) -> Result<Collection<RawDocumentBuf>, StoreError> {
        Ok(self.database()?.collection(name))
    }

    /// The lookups' indexes; creating an existing index is a no-op in MongoDB.
    async fn ensure_indexes(&self) -> Result<(), Error> {
        let index = |keys: Document| IndexModel::builder().keys(keys).build();
        self.patrons_coll()?
            .create_index(index(doc! {"email": 1}))
            .await
            .map_err(Error::Command)?;
        self.books_coll()?
            .create_indexes([
                index(doc! {"isbn_13": 1}),
                index(doc! {"copies.libraryUPC": 1}),
            ])
            .await
            .map_err(Error::Command)?;
        self.ensure_snapshot_ttl().await
    }

    /// One round trip (`ping`), for readiness.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.database()?
            .run_command(doc! {"ping": 1})
            .await
            .map(drop)
            .map_err(store_error)
    }

    /// Patrons matching `filter`, in `_id` order when `sorted` (lists); batches
    /// skip the sort, since their results go into a map.
    async fn find_patrons(
        &self,
        filter: Document,
        limit: Option<i64>,
        sorted: bool,
    ) -> Result<Vec<Patron>, StoreError> {
        let patrons = self.raw("patrons")?;
        let mut find = patrons
            .find(filter)
            .projection(convert::patron_projection());
        if sorted {
            find = find.sort(doc! {"_id": 1});
        }
        if let Some(n) = limit {
            find = find.limit(n);
        }
        read_all(find.await.map_err(store_error)?, convert::patron).await
    }

    /// Books matching `filter`, in `_id` order when `sorted`.
    async fn find_books(&self, filter: Document, sorted: bool) -> Result<Vec<Book>, StoreError> {
        let books = self.raw("books")?;
        let mut find = books.find(filter);
        if sorted {
            find = find.sort(doc! {"_id": 1});
        }
        read_all(find.await.map_err(store_error)?, convert::book).await
    }
}

/// Converts every document of `cursor` where it lies in the reply batch (no copy
/// per document); documents that do not convert are skipped.
async fn read_all<T>(
    mut cursor: Cursor<RawDocumentBuf>,
    convert: impl Fn(&RawDocument) -> Option<T>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    while cursor.advance().await.map_err(store_error)? {
        out.extend(convert(cursor.current()));
    }
    Ok(out)
}

#[async_trait]
impl CatalogStore for MongoCatalog {
    async fn patron_by_id(&self, id: &str) -> Result<Option<Patron>, StoreError> {
        // An id that is not an ObjectId names no patron: not an error.
        let Ok(oid) = ObjectId::parse_str(id) else {
            return Ok(None);
        };
        Ok(self
            .find_patrons(doc! {"_id": oid}, Some(1), false)
            .await?
            .into_iter()
            .next())
    }

    async fn patron_by_email(&self, email: &str) -> Result<Option<Patron>, StoreError> {
        Ok(self
            .find_patrons(doc! {"email": email}, Some(1), false)
            .await?
            .into_iter()
            .next())
    }

    async fn patrons(
        &self,
        year_registered: Option<i32>,
        limit: Option<u32>,
    ) -> Result<Vec<Patron>, StoreError> {
        // Matches doubles and ints alike: MongoDB compares numbers by value.
        let filter = match year_registered {
            Some(y) => doc! {"year_registered": f64::from(y)},
            None => doc! {},
        };
        self.find_patrons(filter, limit.map(i64::from), true).await
    }

    async fn patrons_by_emails(
        &self,
        emails: &[String],
    ) -> Result<HashMap<String, Patron>, StoreError> {
        if emails.is_empty() {
            return Ok(HashMap::new());
        }
        let found = self
            .find_patrons(doc! {"email": {"$in": emails}}, None, false)
            .await?;
        Ok(found
            .into_iter()
            .filter_map(|p| Some((p.email.clone()?, p)))
            .collect())
    }

    async fn book_by_id(&self, id: &str) -> Result<Option<Book>, StoreError> {
        let Ok(oid) = ObjectId::parse_str(id) else {
            return Ok(None);
        };
        Ok(self
            .find_books(doc! {"_id": oid}, false)
            .await?
            .into_iter()
            .next())
    }

    async fn book_by_isbn(&self, isbn13: &str) -> Result<Option<Book>, StoreError> {
        Ok(self
            .find_books(doc! {"isbn_13": isbn13}, false)
            .await?
            .into_iter()
            .next())
    }

    async fn books(&self) -> Result<Vec<Book>, StoreError> {
        self.find_books(doc! {}, true).await
    }

    async fn books_by_upcs(&self, upcs: &[String]) -> Result<HashMap<String, Book>, StoreError> {
        if upcs.is_empty() {
            return Ok(HashMap::new());
        }
        let books = self
            .find_books(doc! {"copies.libraryUPC": {"$in": upcs}}, false)
            .await?;
        let wanted: HashSet<&str> = upcs.iter().map(String::as_str).collect();
        let mut by_upc = HashMap::new();
        for book in books {
            for copy in &book.copies {
                if wanted.contains(copy.library_upc.as_str()) {
                    by_upc.insert(copy.library_upc.clone(), book.clone());
                }
            }
        }
        Ok(by_upc)
    }
}

#[async_trait]
impl shutdown::Closeable for MongoCatalog {
    fn name(&self) -> &str {
        "mongodb-client"
    }

    /// Closes every runtime's client: operations in flight get `GRACEFUL_CLOSE`,
    /// then sessions end and connections close.
    async fn close(&self) -> Result<(), shutdown::BoxError> {
        self.clients.close(GRACEFUL_CLOSE).await;
        Ok(())
    }
}
