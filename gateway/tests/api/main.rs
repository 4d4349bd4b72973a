//! The gateway's contract over real HTTP and WebSocket, run three times: on the
//! embedded stores, and on the harness's real services with MariaDB and with MySQL.

mod contract;
mod helpers;
mod pipeline;
mod subscriptions;
