//! Partner lifecycle administration in the database: the reads behind `partnergate partner|key|
//! allow|grant|group|audit …` and the admin API, and the audited writes.
//!
//! Every write runs in one [`Store::write`] transaction (the `meta.revision` bump first, so every
//! gateway node reloads its snapshot within a refresh interval) that also inserts its
//! `audit_log` row: the change, its audit record and the revision move together or not at all.
//! Input is validated by `crate::admin` before it gets here; this module enforces what needs the
//! database: existence, uniqueness and the partner status machine (an offboarded partner is
//! history and cannot be changed).
//!
//! One file per job: `partners` (details and status), `keys`, `access` (allowlist and grants),
//! `groups` (groups and throttling), `audit` (the log); all of them build on `records` (the
//! shared records, rows, reads and the audited change to a partner) and on `store::rules`,
//! never on each other or on `store::onboard`.

mod access;
mod audit;
mod groups;
mod keys;
mod partners;
mod records;

pub use audit::{AuditRecord, MAX_AUDIT_ROWS};
pub use groups::{Direction, GroupChanges};
pub use keys::{KeySelector, RotatedKey};
pub use partners::{PartnerChanges, StatusChange};
pub use records::{GroupRecord, KeyRecord, PartnerDetail, PartnerRecord};
