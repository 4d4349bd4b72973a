//! The gateway's contract over real HTTP and WebSocket, run twice: on the embedded
//! stores and on the harness's real services.

mod contract;
mod helpers;
mod subscriptions;
