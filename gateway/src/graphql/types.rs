//! The object types of SPEC section 2. A Rust type that stands for a GraphQL type
//! of the same name as a domain type is `Gql` + that name (`GqlCheckout` is `type
//! CheckOut` over `domain::Checkout`), so the two are never confused.

use std::sync::Arc;

use async_graphql::{ComplexObject, Context, Enum, InputObject, Object, Result, SimpleObject, ID};
use auth_jwt::Role;
use domain::{Book, BookCondition as Condition, BookCopy, Checkout, Patron};

use super::caps::caps;
use super::context::viewer;
use super::dates;
use super::errors::{coded, internal, invalid_email, not_authorized};
use super::loaders::{loaders, HistoryKey};
use super::prime;
use super::scalars::{is_valid, Email};

/// `enum UserRole { ADMIN LIBRARIAN USER }` (part of the published schema).
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum UserRole {
    /// ADMIN
    Admin,
    /// LIBRARIAN
    Librarian,
    /// USER
    User,
}

/// `enum BookCondition { good fair damaged }`
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "BookCondition", rename_items = "lowercase")]
pub enum GqlBookCondition {
    /// good
    Good,
    /// fair
    Fair,
    /// damaged
    Damaged,
}

impl From<Condition> for GqlBookCondition {
    fn from(c: Condition) -> Self {
        match c {
            Condition::Good => GqlBookCondition::Good,
            Condition::Fair => GqlBookCondition::Fair,
            Condition::Damaged => GqlBookCondition::Damaged,
        }
    }
}

/// `enum SortField { userEmail assetUpc checkinDate checkoutDate }`
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "SortField", rename_items = "camelCase")]
pub enum GqlSortField {
    /// userEmail
    UserEmail,
    /// assetUpc
    AssetUpc,
    /// checkinDate
    CheckinDate,
    /// checkoutDate
    CheckoutDate,
}

/// `enum SortDirection { ASC DESC }`
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum SortDirection {
    /// ASC
    Asc,
    /// DESC
    Desc,
}

/// `input SortObject { field: SortField!  direction: SortDirection }`
#[derive(InputObject, Clone, Copy)]
pub struct SortObject {
    /// The column.
    pub field: GqlSortField,
    /// ASC when absent.
    pub direction: Option<SortDirection>,
}

impl From<SortObject> for domain::Sort {
    fn from(s: SortObject) -> Self {
        domain::Sort {
            field: match s.field {
                GqlSortField::UserEmail => domain::SortField::UserEmail,
                GqlSortField::AssetUpc => domain::SortField::AssetUpc,
                GqlSortField::CheckinDate => domain::SortField::CheckinDate,
                GqlSortField::CheckoutDate => domain::SortField::CheckoutDate,
            },
            descending: s.direction == Some(SortDirection::Desc),
        }
    }
}

/// A checkout; `eventId` is set on subscription events only.
pub struct GqlCheckout {
    /// The row.
    pub row: Checkout,
    /// The event id when delivered by a subscription.
    pub event_id: Option<String>,
    /// Its patron, when its list loaded it ahead (`prime`); else the loader.
    pub patron: Option<Arc<Patron>>,
    /// Its book, when its list loaded it ahead (`prime`); else the loader.
    pub book: Option<Arc<Book>>,
}

impl From<Checkout> for GqlCheckout {
    fn from(row: Checkout) -> Self {
        GqlCheckout {
            row,
            event_id: None,
            patron: None,
            book: None,
        }
    }
}

impl GqlCheckout {
    /// The item for `row` of a primed list, holding its patron and book when they
    /// were found (no loader lookup per item: that was a lock, a hash and two
    /// allocations each).
    pub fn primed(row: Checkout, related: &prime::Related) -> Self {
        GqlCheckout {
            patron: related.patron_of(&row),
            book: related.book_of(&row),
            ..GqlCheckout::from(row)
        }
    }
}

/// The date arguments' length caps, checked before any of them is read.
fn date_arguments(
    ctx: &Context<'_>,
    format: &Option<String>,
    timezone: &Option<String>,
    locale: &Option<String>,
) -> Result<()> {
    let caps = caps(ctx);
    caps.format(format.as_deref())?;
    caps.string("timezone", timezone.as_deref())?;
    caps.string("locale", locale.as_deref())
}

fn date_error(e: dates::DateError) -> async_graphql::Error {
    coded(e.to_string(), "BAD_USER_INPUT")
}

#[Object(name = "CheckOut")]
impl GqlCheckout {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    async fn user_email(&self) -> &str {
        &self.row.user_email
    }

    async fn asset_upc(&self) -> &str {
        &self.row.asset_upc
    }

    async fn checkout_date(
        &self,
        ctx: &Context<'_>,
        format: Option<String>,
        timezone: Option<String>,
        locale: Option<String>,
    ) -> Result<String> {
        date_arguments(ctx, &format, &timezone, &locale)?;
        dates::format(
            &self.row.checkout_date,
            format.as_deref(),
            timezone.as_deref(),
            locale.as_deref(),
        )
        .map_err(date_error)
    }

    async fn checkin_date(
        &self,
        ctx: &Context<'_>,
        format: Option<String>,
        timezone: Option<String>,
        locale: Option<String>,
    ) -> Result<Option<String>> {
        date_arguments(ctx, &format, &timezone, &locale)?;
        self.row
            .checkin_date
            .as_ref()
            .map(|t| {
                dates::format(t, format.as_deref(), timezone.as_deref(), locale.as_deref())
                    .map_err(date_error)
            })
            .transpose()
    }

    async fn patron(&self, ctx: &Context<'_>) -> Result<GqlPatron> {
        let found = match &self.patron {
            Some(p) => Some(Arc::clone(p)),
            None => loaders(ctx)?
                .patrons
                .load_one(self.row.user_email.clone())
                .await
                .map_err(|e| internal(&e))?,
        };
        found.map(GqlPatron).ok_or_else(|| {
            coded(
                format!("no patron has the email of checkout {}", self.row.id),
                "PATRON_NOT_FOUND",
            )
        })
    }

    async fn book(&self, ctx: &Context<'_>) -> Result<GqlBook> {
        let found = match &self.book {
            Some(b) => Some(Arc::clone(b)),
            None => loaders(ctx)?
                .books
                .load_one(self.row.asset_upc.clone())
                .await
                .map_err(|e| internal(&e))?,
        };
        found.map(GqlBook).ok_or_else(|| {
            coded(
                format!("no book has the copy of checkout {}", self.row.id),
                "ASSET_NOT_FOUND",
            )
        })
    }

    async fn event_id(&self) -> Option<ID> {
        self.event_id.clone().map(ID)
    }
}

/// `type Patron`
pub struct GqlPatron(pub Arc<Patron>);

#[Object(name = "Patron")]
impl GqlPatron {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    async fn year_registered(&self) -> Option<i32> {
        self.0.year_registered
    }

    async fn first_name(&self) -> Option<&str> {
        self.0.first_name.as_deref()
    }

    async fn last_name(&self) -> Option<&str> {
        self.0.last_name.as_deref()
    }

    /// ADMIN, or the patron themself.
    async fn email(&self, ctx: &Context<'_>) -> Result<Option<Email>> {
        self.private(ctx)?;
        match &self.0.email {
            None => Ok(None),
            Some(e) if is_valid(e) => Ok(Some(Email(e.clone()))),
            Some(e) => Err(invalid_email(e)),
        }
    }

    /// ADMIN, or the patron themself.
    async fn phone_cell(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        self.private(ctx)?;
        Ok(self.0.phone_cell.as_deref())
    }

    #[graphql(name = "checkOuts", complexity = "20 * child_complexity")]
    async fn check_outs(
        &self,
        ctx: &Context<'_>,
        current_checkouts_only: Option<bool>,
    ) -> Result<Option<Vec<Option<GqlCheckout>>>> {
        let Some(email) = &self.0.email else {
            return Ok(Some(Vec::new()));
        };
        let key = HistoryKey {
            key: email.clone(),
            open_only: current_checkouts_only.unwrap_or(false),
        };
        let rows = loaders(ctx)?
            .by_email
            .load_one(key)
            .await
            .map_err(|e| internal(&e))?
            .unwrap_or_default();
        Ok(Some(rows.into_iter().map(|r| Some(r.into())).collect()))
    }
}

impl GqlPatron {
    fn private(&self, ctx: &Context<'_>) -> Result<()> {
        let v = viewer(ctx);
        if v.has(Role::Admin) || v.is(&self.0.id) {
            Ok(())
        } else {
            Err(not_authorized())
        }
    }
}

/// `type Book`
pub struct GqlBook(pub Arc<Book>);

#[Object(name = "Book")]
impl GqlBook {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn author(&self) -> &str {
        &self.0.author
    }
    async fn year_published(&self) -> i32 {
        self.0.year_published
    }
    async fn genre(&self) -> &str {
        &self.0.genre
    }
    async fn isbn13(&self) -> &str {
        &self.0.isbn13
    }
    #[graphql(complexity = "5 * child_complexity")]
    async fn copies(&self) -> Option<Vec<Option<GqlBookCopy>>> {
        Some(
            self.0
                .copies
                .iter()
                .cloned()
                .map(|c| Some(GqlBookCopy(c)))
                .collect(),
        )
    }
}

/// `type BookCopy`
pub struct GqlBookCopy(pub BookCopy);

#[Object(name = "BookCopy")]
impl GqlBookCopy {
    #[graphql(name = "libraryUPC")]
    async fn library_upc(&self) -> &str {
        &self.0.library_upc
    }

    async fn condition(&self) -> GqlBookCondition {
        self.0.condition.into()
    }

    #[graphql(complexity = "20 * child_complexity")]
    async fn checkout_history(
        &self,
        ctx: &Context<'_>,
        current_checkouts_only: Option<bool>,
    ) -> Result<Option<Vec<Option<GqlCheckout>>>> {
        let key = HistoryKey {
            key: self.0.library_upc.clone(),
            open_only: current_checkouts_only.unwrap_or(false),
        };
        let rows = loaders(ctx)?
            .by_upc
            .load_one(key)
            .await
            .map_err(|e| internal(&e))?
            .unwrap_or_default();
        Ok(Some(rows.into_iter().map(|r| Some(r.into())).collect()))
    }
}

/// `type Feed`
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Feed {
    /// Where this page sits.
    pub page_info: Option<PageInfo>,
    #[graphql(skip)]
    /// The rows of this page.
    pub rows: Vec<Checkout>,
}

#[ComplexObject]
impl Feed {
    async fn entries(&self, ctx: &Context<'_>) -> Option<Vec<Option<GqlCheckout>>> {
        let related =
            prime::checkout_children(ctx, ctx.field(), &self.rows.iter().collect::<Vec<_>>()).await;
        Some(
            self.rows
                .iter()
                .cloned()
                .map(|r| Some(GqlCheckout::primed(r, &related)))
                .collect(),
        )
    }
}

/// `type PageInfo`
#[derive(SimpleObject)]
pub struct PageInfo {
    /// The snapshot's id: pass it back to page through the same snapshot.
    pub query_id: ID,
    /// The id of this page's last entry: the `cursor` of the next page.
    pub current_cursor: Option<String>,
    /// Index of the first entry (0-based).
    pub start_entry_index: i32,
    /// start + len - 1.
    pub end_entry_index: i32,
    /// Entries in the snapshot.
    pub total_entries: i32,
    /// start > 0.
    pub has_previous_page: bool,
    /// start + len < total.
    pub has_next_page: bool,
}
