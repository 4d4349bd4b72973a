//! The tables as diesel sees them. `checkouts` is the legacy table plus the generated
//! `open_asset_upc` (the UPC while open, else NULL), which is never written: queries
//! filter on it to use its unique index.

diesel::table! {
    checkouts (row_id) {
        row_id -> Integer,
        user_email -> Varchar,
        asset_upc -> Varchar,
        checkout_date -> Datetime,
        checkin_date -> Nullable<Datetime>,
        open_asset_upc -> Nullable<Varchar>,
    }
}

diesel::table! {
    checkout_outbox (id) {
        id -> Bigint,
        event_id -> Varchar,
        topic -> Varchar,
        message_key -> Varchar,
        payload -> Text,
        created_at -> Datetime,
        sent_at -> Nullable<Datetime>,
        traceparent -> Nullable<Varchar>,
        tracestate -> Nullable<Varchar>,
    }
}
