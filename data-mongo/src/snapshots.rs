//! `checkoutFeed` snapshots in `querycache`: one document per snapshot holding the
//! entry ids (to find a cursor) and the entries (sliced server-side with `$slice`),
//! expired by a TTL index on `created_at`.

use std::time::Duration;

use async_trait::async_trait;
use bson::{doc, Bson, DateTime as BsonDate, Document};
use domain::{page_range, page_start, Checkout, SnapshotPage, SnapshotStore, StoreError};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};

use crate::error::store_error;
use crate::{Error, MongoCatalog};

fn entry_doc(c: &Checkout) -> Document {
    doc! {
        "id": c.id,
        "user_email": &c.user_email,
        "asset_upc": &c.asset_upc,
        "checkout_date": BsonDate::from_chrono(c.checkout_date),
        "checkin_date": c.checkin_date.map(BsonDate::from_chrono),
    }
}

fn entry(d: &Document) -> Option<Checkout> {
    Some(Checkout {
        id: d.get_i32("id").ok()?,
        user_email: d.get_str("user_email").ok()?.to_string(),
        asset_upc: d.get_str("asset_upc").ok()?.to_string(),
        checkout_date: d.get_datetime("checkout_date").ok()?.to_chrono(),
        checkin_date: d.get_datetime("checkin_date").ok().map(|t| t.to_chrono()),
    })
}

impl MongoCatalog {
    fn querycache(&self) -> Result<Collection<Document>, StoreError> {
        Ok(self.database()?.collection("querycache"))
    }

    /// The TTL index; when it exists with another lifetime, `collMod` updates it.
    pub(crate) async fn ensure_snapshot_ttl(&self) -> Result<(), Error> {
        let ttl = self.snapshot_ttl;
        let index = IndexModel::builder()
            .keys(doc! {"created_at": 1})
            .options(IndexOptions::builder().expire_after(ttl).build())
            .build();
        match self.querycache()?.create_index(index).await {
            Ok(_) => Ok(()),
            Err(e) if matches!(*e.kind, mongodb::error::ErrorKind::Command(ref c) if c.code == 85 || c.code == 86) => {
                self.database()?
                    .run_command(doc! {
                        "collMod": "querycache",
                        "index": { "keyPattern": {"created_at": 1}, "expireAfterSeconds": ttl.as_secs() as i64 },
                    })
                    .await
                    .map(drop)
                    .map_err(Error::Command)
            }
            Err(e) => Err(Error::Command(e)),
        }
    }

    fn expired(&self, created: Option<BsonDate>) -> bool {
        let age = created.map(|c| chrono::Utc::now() - c.to_chrono());
        age.is_none_or(|a| a.to_std().unwrap_or(Duration::ZERO) >= self.snapshot_ttl)
    }
}

#[async_trait]
impl SnapshotStore for MongoCatalog {
    async fn save(&self, query_id: &str, owner: &str, rows: &[Checkout]) -> Result<(), StoreError> {
        let ids: Vec<i32> = rows.iter().map(|c| c.id).collect();
        let entries: Vec<Bson> = rows.iter().map(|c| Bson::Document(entry_doc(c))).collect();
        self.querycache()?
            .replace_one(
                doc! {"_id": query_id},
                doc! {
                    "_id": query_id,
                    "owner": owner,
                    "created_at": BsonDate::now(),
                    "total": ids.len() as i64,
                    "ids": ids,
                    "entries": entries,
                },
            )
            .upsert(true)
            .await
            .map(drop)
            .map_err(store_error)
    }

    async fn page(
        &self,
        query_id: &str,
        owner: &str,
        after_id: Option<i32>,
        limit: Option<u32>,
    ) -> Result<Option<SnapshotPage>, StoreError> {
        let filter = doc! {"_id": query_id, "owner": owner};
        let Some(head) = self
            .querycache()?
            .find_one(filter.clone())
            .projection(doc! {"ids": 1, "created_at": 1})
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        if self.expired(head.get_datetime("created_at").ok().copied()) {
            return Ok(None);
        }
        let ids: Vec<i32> = head
            .get_array("ids")
            .map(|a| a.iter().filter_map(Bson::as_i32).collect())
            .unwrap_or_default();
        let total = ids.len();
        let start = page_start(ids, after_id);
        let count = page_range(start, limit, total).len();
        if count == 0 {
            return Ok(Some(SnapshotPage {
                entries: Vec::new(),
                start,
                total,
            }));
        }
        let body = self
            .querycache()?
            .find_one(filter)
            .projection(doc! {"entries": {"$slice": [start as i64, count as i64]}, "ids": 0})
            .await
            .map_err(store_error)?;
        let entries = body
            .as_ref()
            .and_then(|d| d.get_array("entries").ok())
            .map(|a| {
                a.iter()
                    .filter_map(Bson::as_document)
                    .filter_map(entry)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(SnapshotPage {
            entries,
            start,
            total,
        }))
    }
}
