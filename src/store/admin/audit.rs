//! The audit log: its records and the newest rows, optionally about one target. (Rows are
//! written by `rules::audit` in each change's own transaction.) Uses `rules` and `schema`.

use diesel::prelude::*;

use crate::store::rules::corrupt;
use crate::store::schema::audit_log;
use crate::store::{Store, StoreError};

/// Most audit rows one read returns.
pub const MAX_AUDIT_ROWS: i64 = 1000;

/// One `audit_log` row.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AuditRecord {
    /// Row id (increasing).
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// Who: `cli:<user>`, `api:<peer address>`.
    pub actor: String,
    /// What: `partner.update`, `key.rotate`, …
    pub action: String,
    /// Which: a partner id, or `group:<name>`.
    pub target: String,
    /// The change (JSON): new values, old ones where useful; never key material.
    pub detail: Option<serde_json::Value>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_log)]
struct AuditRow {
    id: i64,
    at: i64,
    actor: String,
    action: String,
    target: String,
    detail: Option<String>,
}

impl Store {
    /// The newest `limit` audit rows (at most [`MAX_AUDIT_ROWS`]), newest first; only those
    /// about `target` when given.
    pub fn audit_log(
        &self,
        target: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = limit.clamp(1, MAX_AUDIT_ROWS);
        let mut c = self.conn()?;
        let mut query = audit_log::table
            .select(AuditRow::as_select())
            .order(audit_log::id.desc())
            .limit(limit)
            .into_boxed();
        if let Some(target) = target {
            query = query.filter(audit_log::target.eq(target.to_owned()));
        }
        query
            .load(&mut *c)?
            .into_iter()
            .map(|r| {
                let detail = match &r.detail {
                    None => None,
                    Some(text) => Some(serde_json::from_str(text).map_err(|e| {
                        corrupt("audit_log", &r.id.to_string(), format!("detail: {e}"))
                    })?),
                };
                Ok(AuditRecord {
                    id: r.id,
                    at: r.at,
                    actor: r.actor,
                    action: r.action,
                    target: r.target,
                    detail,
                })
            })
            .collect()
    }
}
