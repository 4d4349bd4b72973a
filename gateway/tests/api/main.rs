//! The gateway's contract over real HTTP and WebSocket, run three times: on the
//! embedded stores, and on the harness's real services with MariaDB and with MySQL.

mod broker;
mod clients;
mod contract;
mod handover;
mod helpers;
mod hostile;
mod monitoring;
mod otlp;
mod pipeline;
mod process;
mod sockets;
mod subscriptions;
mod traces;
