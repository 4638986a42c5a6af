//! Operator accounts (`operators`) and their API tokens (`operator_tokens`): who may administer
//! the gateway, with which role. The store keeps only an Argon2id PHC string per password (made
//! by `crate::password`) and SHA-256 per token (as for partner keys); it never sees a password
//! or a token.
//!
//! Every change is one [`Store::write`] transaction with its `audit_log` row (the revision bump
//! first, so it takes the write lock before it reads). Operators are not partner data: no
//! snapshot holds them. Each admin request reads its caller here (a token, or a dashboard
//! session joined to its operator), so a disabled operator, a new role or a revoked token is in
//! force on every node from the commit on. A change that would leave no enabled admin is
//! refused. Uses `rules` and `schema`.

use diesel::prelude::*;

use super::rules::{audit, conflict_or, corrupt, not_found};
use super::schema::{dashboard_sessions, operator_tokens as ot, operators as op};
use super::{AnyConnection, Store, StoreError};
use crate::clock::unix_now;
use crate::secret::{ct_eq, KeyHash};

/// What an operator may do; ordered: each role may do what the roles below it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything but secrets.
    Viewer,
    /// Also manages partners, keys, allowlists, grants and throttles.
    Operator,
    /// Also manages operators and groups.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// As stored and typed: `viewer`, `operator`, `admin`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses [`Role::as_str`].
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An enabled operator, as a request learns it from its token or session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorIdentity {
    /// `operators.id`.
    pub id: i64,
    /// The login name.
    pub name: String,
    /// The role now.
    pub role: Role,
}

/// An operator account as listed (never the password hash).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OperatorRecord {
    /// The login name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Unix seconds when it was disabled; `None`: enabled.
    pub disabled_at: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last change.
    pub updated_at: i64,
}

/// An API token's metadata (never the token or its hash).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TokenRecord {
    /// `operator_tokens.id`: names it in `operator token revoke --id`.
    pub id: i64,
    /// Whose.
    pub operator: String,
    /// What it is for, as given.
    pub label: Option<String>,
    /// Its first 8 characters (`pgo_1a2b`).
    pub prefix: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of its last accepted use.
    pub last_used_at: Option<i64>,
    /// Unix seconds when it was revoked.
    pub revoked_at: Option<i64>,
}

/// A new token's stored parts.
#[derive(Clone, Copy, Debug)]
pub struct NewToken<'a> {
    /// Its label.
    pub label: Option<&'a str>,
    /// Its display prefix.
    pub prefix: &'a str,
    /// SHA-256 of the token.
    pub hash: &'a KeyHash,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = op)]
struct OperatorRow {
    id: i64,
    name: String,
    role: String,
    disabled_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

fn role_of(name: &str, stored: &str) -> Result<Role, StoreError> {
    Role::parse(stored).ok_or_else(|| corrupt("operators", name, format!("role {stored:?}")))
}

impl OperatorRow {
    fn record(self) -> Result<OperatorRecord, StoreError> {
        Ok(OperatorRecord {
            role: role_of(&self.name, &self.role)?,
            name: self.name,
            disabled_at: self.disabled_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

type TokenRow = (i64, Option<String>, String, i64, Option<i64>, Option<i64>);

fn token_record(operator: &str, row: TokenRow) -> TokenRecord {
    let (id, label, prefix, created_at, last_used_at, revoked_at) = row;
    TokenRecord {
        id,
        operator: operator.to_owned(),
        label,
        prefix,
        created_at,
        last_used_at,
        revoked_at,
    }
}

fn operator_row(c: &mut AnyConnection, name: &str) -> Result<OperatorRow, StoreError> {
    op::table
        .filter(op::name.eq(name))
        .select(OperatorRow::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| not_found("operator", name))
}

/// Refuses a change that would leave no enabled admin (`target` is the operator changed; it is
/// counted as no longer an enabled admin).
fn keep_an_admin(c: &mut AnyConnection, target: &OperatorRow) -> Result<(), StoreError> {
    if target.role != Role::Admin.as_str() || target.disabled_at.is_some() {
        return Ok(());
    }
    let others: i64 = op::table
        .filter(op::role.eq(Role::Admin.as_str()))
        .filter(op::disabled_at.is_null())
        .filter(op::id.ne(target.id))
        .count()
        .get_result(c)?;
    if others == 0 {
        return Err(StoreError::Conflict(format!(
            "operator {} is the last enabled admin: make another admin first",
            target.name
        )));
    }
    Ok(())
}

fn end_sessions(c: &mut AnyConnection, operator_id: i64) -> Result<usize, StoreError> {
    Ok(diesel::delete(
        dashboard_sessions::table.filter(dashboard_sessions::operator_id.eq(operator_id)),
    )
    .execute(c)?)
}

impl Store {
    /// A new operator with `role` and the PHC string of its password; audited as
    /// `operator.create`.
    pub fn create_operator(
        &self,
        actor: &str,
        name: &str,
        role: Role,
        password_hash: &str,
    ) -> Result<OperatorRecord, StoreError> {
        self.write(|c| insert_operator(c, actor, name, role, password_hash))
    }

    /// The first admin, made with the bootstrap token: refused (conflict) once any admin
    /// account exists, enabled or not. Its first API token is stored with it.
    pub fn bootstrap_admin(
        &self,
        actor: &str,
        name: &str,
        password_hash: &str,
        token: NewToken<'_>,
    ) -> Result<(OperatorRecord, TokenRecord), StoreError> {
        self.write(|c| {
            let admins: i64 = op::table
                .filter(op::role.eq(Role::Admin.as_str()))
                .count()
                .get_result(c)?;
            if admins > 0 {
                return Err(StoreError::Conflict(
                    "an admin operator exists already: the bootstrap token does nothing more"
                        .into(),
                ));
            }
            let record = insert_operator(c, actor, name, Role::Admin, password_hash)?;
            let token = insert_token(c, actor, name, token)?;
            Ok((record, token))
        })
    }

    /// Every operator, by name.
    pub fn list_operators(&self) -> Result<Vec<OperatorRecord>, StoreError> {
        op::table
            .order(op::name.asc())
            .select(OperatorRow::as_select())
            .load(&mut *self.conn()?)?
            .into_iter()
            .map(OperatorRow::record)
            .collect()
    }

    /// Disables (`true`) or enables an operator. Disabling ends its dashboard sessions in the
    /// same transaction; its tokens are refused while it is disabled. Refused for the last
    /// enabled admin. Audited as `operator.disable` / `operator.enable`.
    pub fn set_operator_disabled(
        &self,
        actor: &str,
        name: &str,
        disabled: bool,
    ) -> Result<OperatorRecord, StoreError> {
        self.write(|c| {
            let row = operator_row(c, name)?;
            if row.disabled_at.is_some() == disabled {
                let state = if disabled { "disabled" } else { "enabled" };
                return Err(StoreError::Conflict(format!(
                    "operator {name} is {state} already"
                )));
            }
            let now = unix_now();
            let ended = if disabled {
                keep_an_admin(c, &row)?;
                end_sessions(c, row.id)?
            } else {
                0
            };
            diesel::update(op::table.filter(op::id.eq(row.id)))
                .set((
                    op::disabled_at.eq(disabled.then_some(now)),
                    op::updated_at.eq(now),
                ))
                .execute(c)?;
            let action = if disabled {
                "operator.disable"
            } else {
                "operator.enable"
            };
            let detail = serde_json::json!({"sessions_ended": ended});
            audit(c, actor, action, &format!("operator:{name}"), &detail)?;
            operator_row(c, name)?.record()
        })
    }

    /// Gives an operator another role (its sessions and tokens carry the new one from the
    /// commit on). Refused when it would leave no enabled admin. Audited as `operator.role`.
    pub fn set_operator_role(
        &self,
        actor: &str,
        name: &str,
        role: Role,
    ) -> Result<OperatorRecord, StoreError> {
        self.write(|c| {
            let row = operator_row(c, name)?;
            if role != Role::Admin {
                keep_an_admin(c, &row)?;
            }
            diesel::update(op::table.filter(op::id.eq(row.id)))
                .set((op::role.eq(role.as_str()), op::updated_at.eq(unix_now())))
                .execute(c)?;
            let detail = serde_json::json!({"role": {"old": row.role, "new": role.as_str()}});
            audit(
                c,
                actor,
                "operator.role",
                &format!("operator:{name}"),
                &detail,
            )?;
            operator_row(c, name)?.record()
        })
    }

    /// Replaces an operator's password hash and ends its dashboard sessions. Audited as
    /// `operator.reset_password` (without any password material).
    pub fn set_operator_password(
        &self,
        actor: &str,
        name: &str,
        password_hash: &str,
    ) -> Result<OperatorRecord, StoreError> {
        self.write(|c| {
            let row = operator_row(c, name)?;
            diesel::update(op::table.filter(op::id.eq(row.id)))
                .set((
                    op::password_hash.eq(password_hash),
                    op::updated_at.eq(unix_now()),
                ))
                .execute(c)?;
            let ended = end_sessions(c, row.id)?;
            let detail = serde_json::json!({"sessions_ended": ended});
            let target = format!("operator:{name}");
            audit(c, actor, "operator.reset_password", &target, &detail)?;
            operator_row(c, name)?.record()
        })
    }

    /// The enabled operator `name` and its PHC string, for a password login; `None` for an
    /// unknown or disabled name (the caller does the same work either way).
    pub fn login_candidate(
        &self,
        name: &str,
    ) -> Result<Option<(OperatorIdentity, String)>, StoreError> {
        let row: Option<(i64, String, String, String)> = op::table
            .filter(op::name.eq(name))
            .filter(op::disabled_at.is_null())
            .select((op::id, op::name, op::role, op::password_hash))
            .first(&mut *self.conn()?)
            .optional()?;
        row.map(|(id, name, role, hash)| {
            let role = role_of(&name, &role)?;
            Ok((OperatorIdentity { id, name, role }, hash))
        })
        .transpose()
    }

    /// A new API token for `operator` (its hash and prefix only). Audited as `token.create`.
    pub fn create_operator_token(
        &self,
        actor: &str,
        operator: &str,
        token: NewToken<'_>,
    ) -> Result<TokenRecord, StoreError> {
        self.write(|c| insert_token(c, actor, operator, token))
    }

    /// An operator's tokens, revoked ones included, oldest first.
    pub fn list_operator_tokens(&self, operator: &str) -> Result<Vec<TokenRecord>, StoreError> {
        let mut c = self.conn()?;
        let row = operator_row(&mut c, operator)?;
        Ok(token_rows(&mut c, row.id)?
            .into_iter()
            .map(|r| token_record(operator, r))
            .collect())
    }

    /// Revokes one of `operator`'s tokens now. Audited as `token.revoke`.
    pub fn revoke_operator_token(
        &self,
        actor: &str,
        operator: &str,
        id: i64,
    ) -> Result<TokenRecord, StoreError> {
        self.write(|c| {
            let row = operator_row(c, operator)?;
            let target = ot::table
                .filter(ot::id.eq(id))
                .filter(ot::operator_id.eq(row.id));
            let revoked: Option<Option<i64>> = target.select(ot::revoked_at).first(c).optional()?;
            match revoked {
                None => return Err(not_found("token", &id.to_string())),
                Some(Some(_)) => {
                    return Err(StoreError::Conflict(format!(
                        "token {id} of {operator} is revoked already"
                    )))
                }
                Some(None) => {}
            }
            diesel::update(target)
                .set(ot::revoked_at.eq(unix_now()))
                .execute(c)?;
            let detail = serde_json::json!({"token_id": id});
            audit(
                c,
                actor,
                "token.revoke",
                &format!("operator:{operator}"),
                &detail,
            )?;
            token_rows(c, row.id)?
                .into_iter()
                .find(|r| r.0 == id)
                .map(|r| token_record(operator, r))
                .ok_or_else(|| not_found("token", &id.to_string()))
        })
    }

    /// The enabled operator an unrevoked token with this display prefix and hash belongs to.
    /// Every candidate with the prefix is compared in constant time, without stopping at a
    /// match (the prefix is not secret: lists show it). Records the use (unix seconds).
    pub fn operator_by_token(
        &self,
        prefix: &str,
        hash: &KeyHash,
    ) -> Result<Option<OperatorIdentity>, StoreError> {
        let mut c = self.conn()?;
        let candidates: Vec<(i64, Vec<u8>, i64, String, String)> = ot::table
            .inner_join(op::table)
            .filter(ot::prefix.eq(prefix))
            .filter(ot::revoked_at.is_null())
            .filter(op::disabled_at.is_null())
            .select((ot::id, ot::hash, op::id, op::name, op::role))
            .load(&mut *c)?;
        let mut found = None;
        for (token_id, stored, id, name, role) in candidates {
            let stored: Option<KeyHash> = stored.as_slice().try_into().ok();
            if stored.is_some_and(|s| ct_eq(&s, hash)) {
                found = Some((token_id, id, name, role));
            }
        }
        let Some((token_id, id, name, role)) = found else {
            return Ok(None);
        };
        let role = role_of(&name, &role)?;
        diesel::update(ot::table.filter(ot::id.eq(token_id)))
            .set(ot::last_used_at.eq(unix_now()))
            .execute(&mut *c)?;
        Ok(Some(OperatorIdentity { id, name, role }))
    }
}

fn insert_operator(
    c: &mut AnyConnection,
    actor: &str,
    name: &str,
    role: Role,
    password_hash: &str,
) -> Result<OperatorRecord, StoreError> {
    let now = unix_now();
    diesel::insert_into(op::table)
        .values((
            op::name.eq(name),
            op::role.eq(role.as_str()),
            op::password_hash.eq(password_hash),
            op::created_at.eq(now),
            op::updated_at.eq(now),
        ))
        .execute(c)
        .map_err(|e| conflict_or(e, || format!("operator {name} exists already")))?;
    let detail = serde_json::json!({"role": role.as_str()});
    audit(
        c,
        actor,
        "operator.create",
        &format!("operator:{name}"),
        &detail,
    )?;
    operator_row(c, name)?.record()
}

fn insert_token(
    c: &mut AnyConnection,
    actor: &str,
    operator: &str,
    token: NewToken<'_>,
) -> Result<TokenRecord, StoreError> {
    let row = operator_row(c, operator)?;
    diesel::insert_into(ot::table)
        .values((
            ot::operator_id.eq(row.id),
            ot::label.eq(token.label),
            ot::prefix.eq(token.prefix),
            ot::hash.eq(token.hash.as_slice()),
            ot::created_at.eq(unix_now()),
        ))
        .execute(c)?;
    let rows = token_rows(c, row.id)?;
    let newest = rows
        .into_iter()
        .max_by_key(|r| r.0)
        .ok_or_else(|| not_found("token", operator))?;
    let detail =
        serde_json::json!({"token_id": newest.0, "prefix": token.prefix, "label": token.label});
    audit(
        c,
        actor,
        "token.create",
        &format!("operator:{operator}"),
        &detail,
    )?;
    Ok(token_record(operator, newest))
}

fn token_rows(c: &mut AnyConnection, operator_id: i64) -> Result<Vec<TokenRow>, StoreError> {
    Ok(ot::table
        .filter(ot::operator_id.eq(operator_id))
        .order(ot::id.asc())
        .select((
            ot::id,
            ot::label,
            ot::prefix,
            ot::created_at,
            ot::last_used_at,
            ot::revoked_at,
        ))
        .load(c)?)
}
