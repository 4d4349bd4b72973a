//! The tables as diesel sees them. `checkouts` is the legacy table (the generated
//! `open_asset_upc` column is left out: nothing reads it, the index enforces it).

diesel::table! {
    checkouts (row_id) {
        row_id -> Integer,
        user_email -> Varchar,
        asset_upc -> Varchar,
        checkout_date -> Datetime,
        checkin_date -> Nullable<Datetime>,
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
    }
}
