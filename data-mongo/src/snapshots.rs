//! `checkoutFeed` snapshots, stored in bounded chunks so that any snapshot fits a
//! real MongoDB (16 MiB per document): a head in `querycache` (owner, creation
//! time, total, and the generation its chunks belong to) and the entries in
//! `querycache_chunks`, `snapshot_chunk_rows` per document with their ids (to find
//! a cursor). Replacing a snapshot writes a new generation's chunks, then moves the
//! head to it only if the head names an older generation, then deletes the query's
//! older generations. Generations are ObjectIds, so they order by creation: when
//! two replacements race, the newer one wins whichever writes first, the older one
//! removes its own chunks, and no step relies on a find-and-modify returning the
//! document it replaced (test servers do not all make that atomic). A reader never
//! sees a mix: a head whose chunks are gone reads as no snapshot. Both collections
//! expire by TTL indexes on `created_at`.

use std::time::Duration;

use async_trait::async_trait;
use bson::oid::ObjectId;
use bson::{doc, Bson, DateTime as BsonDate, Document};
use domain::{page_range, Checkout, SnapshotPage, SnapshotStore, StoreError};
use futures::TryStreamExt;
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};

use crate::error::store_error;
use crate::{Error, MongoCatalog};

/// The chunk collection.
const CHUNKS: &str = "querycache_chunks";

fn entry_doc(c: &Checkout) -> Document {
    doc! {
        "id": c.id,
        "user_email": &c.user_email,
        "asset_upc": &c.asset_upc,
        "checkout_date": BsonDate::from_chrono(c.checkout_date),
        "checkin_date": c.checkin_date.map(BsonDate::from_chrono),
    }
}

/// MongoDB's E11000: an insert (here an upsert's) met an existing `_id`.
fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => false,
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

    fn chunks(&self) -> Result<Collection<Document>, StoreError> {
        Ok(self.database()?.collection(CHUNKS))
    }

    /// The TTL indexes (when one exists with another lifetime, `collMod` updates
    /// it) and the chunks' lookup index.
    pub(crate) async fn ensure_snapshot_ttl(&self) -> Result<(), Error> {
        for collection in ["querycache", CHUNKS] {
            self.ensure_ttl(collection).await?;
        }
        let by_generation = IndexModel::builder().keys(doc! {"gen": 1, "n": 1}).build();
        let by_query = IndexModel::builder().keys(doc! {"q": 1, "gen": 1}).build();
        self.chunks()?
            .create_indexes([by_generation, by_query])
            .await
            .map(drop)
            .map_err(Error::Command)
    }

    async fn ensure_ttl(&self, collection: &str) -> Result<(), Error> {
        let ttl = self.snapshot_ttl;
        let index = IndexModel::builder()
            .keys(doc! {"created_at": 1})
            .options(IndexOptions::builder().expire_after(ttl).build())
            .build();
        let database = self.database()?;
        match database.collection::<Document>(collection).create_index(index).await {
            Ok(_) => Ok(()),
            Err(e) if matches!(*e.kind, mongodb::error::ErrorKind::Command(ref c) if c.code == 85 || c.code == 86) => {
                database
                    .run_command(doc! {
                        "collMod": collection,
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
        let generation = ObjectId::new().to_hex();
        let created = BsonDate::now();
        let per_chunk = self.snapshot_chunk_rows.max(1);
        let chunks: Vec<Document> = rows
            .chunks(per_chunk)
            .enumerate()
            .map(|(n, part)| {
                doc! {
                    "q": query_id,
                    "gen": &generation,
                    "n": n as i64,
                    "created_at": created,
                    "ids": part.iter().map(|c| c.id).collect::<Vec<i32>>(),
                    "entries": part.iter().map(|c| Bson::Document(entry_doc(c))).collect::<Vec<Bson>>(),
                }
            })
            .collect();
        if !chunks.is_empty() {
            self.chunks()?
                .insert_many(chunks)
                .await
                .map_err(store_error)?;
        }
        // Only over an older generation (or an older format's head without one);
        // a newer head makes the upsert collide on `_id`, which means we lost.
        let swapped = self
            .querycache()?
            .replace_one(
                doc! {"_id": query_id, "$or": [{"gen": {"$lt": &generation}}, {"gen": {"$exists": false}}]},
                doc! {
                    "_id": query_id,
                    "owner": owner,
                    "created_at": created,
                    "total": rows.len() as i64,
                    "gen": &generation,
                    "chunk_rows": per_chunk as i64,
                },
            )
            .upsert(true)
            .await;
        let stale = match swapped {
            Ok(_) => doc! {"q": query_id, "gen": {"$lt": &generation}},
            Err(e) if is_duplicate_key(&e) => doc! {"gen": &generation},
            Err(e) => return Err(store_error(e)),
        };
        self.chunks()?
            .delete_many(stale)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn page(
        &self,
        query_id: &str,
        owner: &str,
        after_id: Option<i32>,
        limit: Option<u32>,
    ) -> Result<Option<SnapshotPage>, StoreError> {
        let Some(head) = self
            .querycache()?
            .find_one(doc! {"_id": query_id, "owner": owner})
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        let created = head.get_datetime("created_at").ok().copied();
        let age = created
            .and_then(|c| (chrono::Utc::now() - c.to_chrono()).to_std().ok())
            .unwrap_or(Duration::ZERO);
        // A head without a generation is an older format's: taken again.
        let (Some(created), Ok(generation)) = (created, head.get_str("gen")) else {
            return Ok(None);
        };
        if self.expired(Some(created)) {
            return Ok(None);
        }
        let total = head.get_i64("total").unwrap_or(0).max(0) as usize;
        let per_chunk = head.get_i64("chunk_rows").unwrap_or(1).max(1) as usize;
        let start = match after_id {
            None => 0,
            Some(id) => self
                .position(generation, id, per_chunk)
                .await?
                .map_or(total, |at| at + 1),
        };
        let range = page_range(start, limit, total);
        let entries = if range.is_empty() {
            Vec::new()
        } else {
            self.entries(generation, range.clone(), per_chunk).await?
        };
        if entries.len() < range.len() {
            // Its chunks expired before the head, or a newer snapshot replaced it
            // between our two reads: no snapshot, rather than a short page.
            return Ok(None);
        }
        Ok(Some(SnapshotPage {
            entries,
            start,
            total,
            age,
        }))
    }
}

impl MongoCatalog {
    /// Where entry `id` sits in the snapshot of `generation`, if it is in it.
    async fn position(
        &self,
        generation: &str,
        id: i32,
        per_chunk: usize,
    ) -> Result<Option<usize>, StoreError> {
        let chunk = self
            .chunks()?
            .find_one(doc! {"gen": generation, "ids": id})
            .projection(doc! {"n": 1, "ids": 1})
            .await
            .map_err(store_error)?;
        Ok(chunk.and_then(|c| {
            let n = c.get_i64("n").ok()? as usize;
            let ids = c.get_array("ids").ok()?;
            let i = ids.iter().position(|v| v.as_i32() == Some(id))?;
            Some(n * per_chunk + i)
        }))
    }

    /// The entries in `range` of the snapshot of `generation`: from the one or
    /// few chunks that hold them.
    async fn entries(
        &self,
        generation: &str,
        range: std::ops::Range<usize>,
        per_chunk: usize,
    ) -> Result<Vec<Checkout>, StoreError> {
        let first = range.start / per_chunk;
        let last = (range.end - 1) / per_chunk;
        let chunks: Vec<Document> = self
            .chunks()?
            .find(doc! {"gen": generation, "n": {"$gte": first as i64, "$lte": last as i64}})
            .sort(doc! {"n": 1})
            .projection(doc! {"entries": 1})
            .await
            .map_err(store_error)?
            .try_collect()
            .await
            .map_err(store_error)?;
        let skip = range.start - first * per_chunk;
        Ok(chunks
            .iter()
            .filter_map(|c| c.get_array("entries").ok())
            .flatten()
            .filter_map(Bson::as_document)
            .filter_map(entry)
            .skip(skip)
            .take(range.len())
            .collect())
    }
}
