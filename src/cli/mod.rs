//! The `partnergate` commands, one module per command group; `main.rs` parses (with
//! [`args::Cli`]) and hands each command to its module. They use the library crate's services
//! (admin, store, app, config, decode/encode, published) and the shared helpers here (`args`, `setup`,
//! `admin`, `output`).

pub mod access;
pub mod admin;
pub mod args;
pub mod audit;
pub mod contract;
pub mod enrollment;
pub mod group;
pub mod health;
pub mod key;
pub mod manual;
pub mod nodes;
pub mod operator;
pub mod output;
pub mod partner;
pub mod serve;
pub mod setup;
pub mod stats;
