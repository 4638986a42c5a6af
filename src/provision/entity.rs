//! The shared paths of the partner API layer, one per shape: load an entity by key for a partner
//! (the isolation rule), save it, modify it, change its status (the status machine), cascade a
//! service's termination, create under a fresh number, add a network-unique entity (taking
//! over a terminated one's row). An entity kind states only its table facts, in a [`Record`]
//! impl made by [`record_kind!`]. Uses `xml`, the tables in `db` and the store's connection;
//! never an entity module.

use diesel::prelude::*;
use xsd_parser_types::quick_xml::{DeserializeSync, WithDeserializer, WithSerializer};

use super::db::{prov_devices as d, prov_features as f, prov_services as s};
use super::xml::{from_xml, to_xml};
use super::Problem;
use crate::decode::StrictReader;
use crate::generated::types::{cmn, dev, svc};
use crate::store::{AnyConnection, StoreError};
use crate::xs::DateTime;

/// An entity kind stored as one canonical XML record per row (accounts, services, devices).
pub(crate) trait Record:
    Sized
    + WithSerializer
    + WithDeserializer
    + for<'a> DeserializeSync<'a, StrictReader<'a>, Error = xsd_parser_types::quick_xml::Error>
{
    /// `account`, `service`, `device`: the word in fault texts.
    const WHAT: &'static str;
    /// The contract's name for the kind in a `NotFoundFault`.
    const ENTITY: cmn::NotFoundEntity;
    /// The record's namespace.
    const NAMESPACE: &'static str;
    /// The record's root element (`acc:Account`, …).
    const ROOT: &'static str;

    /// The record and row id of `key`, if the entity is `partner`'s.
    fn find(c: &mut AnyConnection, partner: &str, key: &str) -> QueryResult<Option<(String, i64)>>;

    /// Adds a new `record` of `partner` (encoded as `xml`) under `key`: into row `reuse` (a
    /// terminated entity's) if given, else into a new row.
    fn add(
        c: &mut AnyConnection,
        reuse: Option<i64>,
        key: &str,
        partner: &str,
        record: &Self,
        xml: &str,
        at: i64,
    ) -> QueryResult<usize>;

    /// Writes a changed `record` (encoded as `xml`) back to row `row_id`.
    fn write(
        c: &mut AnyConnection,
        row_id: i64,
        record: &Self,
        xml: &str,
        at: i64,
    ) -> QueryResult<usize>;

    /// The record's status and last-change time.
    fn state(&mut self) -> (&mut cmn::Status, &mut DateTime);
}

/// Implements [`Record`] for a generated type with `status` and `updated_at` fields, stored in
/// `table` (a `db` module alias) with `id`, `partner_id`, `status`, `record`, `created_at` and
/// `updated_at` columns, found by its `key` column. `columns(record) { column: value, … }`
/// names the further columns and how they are read from the record; every write sets them.
macro_rules! record_kind {
    (
        $ty:ty {
            table: $t:ident,
            key: $key:ident,
            what: $what:literal,
            entity: $entity:ident,
            namespace: $ns:expr,
            root: $root:literal,
            columns($rec:ident) { $($col:ident: $val:expr),* $(,)? } $(,)?
        }
    ) => {
        impl $crate::provision::entity::Record for $ty {
            const WHAT: &'static str = $what;
            const ENTITY: $crate::generated::types::cmn::NotFoundEntity =
                $crate::generated::types::cmn::NotFoundEntity::$entity;
            const NAMESPACE: &'static str = $ns;
            const ROOT: &'static str = $root;

            fn find(
                c: &mut $crate::store::AnyConnection,
                partner: &str,
                key: &str,
            ) -> diesel::QueryResult<Option<(String, i64)>> {
                $t::table
                    .filter($t::$key.eq(key))
                    .filter($t::partner_id.eq(partner))
                    .select(($t::record, $t::id))
                    .first(c)
                    .optional()
            }

            fn add(
                c: &mut $crate::store::AnyConnection,
                reuse: Option<i64>,
                key: &str,
                partner: &str,
                $rec: &Self,
                xml: &str,
                at: i64,
            ) -> diesel::QueryResult<usize> {
                let columns = (
                    $t::partner_id.eq(partner),
                    $($t::$col.eq($val),)*
                    $t::status.eq($crate::provision::entity::status_str(&$rec.status)),
                    $t::record.eq(xml),
                    $t::created_at.eq(at),
                    $t::updated_at.eq(at),
                );
                match reuse {
                    Some(row_id) => diesel::update($t::table.filter($t::id.eq(row_id)))
                        .set(columns)
                        .execute(c),
                    None => diesel::insert_into($t::table)
                        .values(($t::$key.eq(key), columns))
                        .execute(c),
                }
            }

            fn write(
                c: &mut $crate::store::AnyConnection,
                row_id: i64,
                $rec: &Self,
                xml: &str,
                at: i64,
            ) -> diesel::QueryResult<usize> {
                diesel::update($t::table.filter($t::id.eq(row_id)))
                    .set((
                        $t::status.eq($crate::provision::entity::status_str(&$rec.status)),
                        $($t::$col.eq($val),)*
                        $t::record.eq(xml),
                        $t::updated_at.eq(at),
                    ))
                    .execute(c)
            }

            fn state(
                &mut self,
            ) -> (
                &mut $crate::generated::types::cmn::Status,
                &mut $crate::xs::DateTime,
            ) {
                (&mut self.status, &mut self.updated_at)
            }
        }
    };
}
pub(crate) use record_kind;

/// The entity `key` of `partner`, with its row id. Another partner's entity is `NotFound`, like
/// one that does not exist (existence must not leak).
pub(crate) fn load<R: Record>(
    c: &mut AnyConnection,
    partner: &str,
    key: &str,
) -> Result<(R, i64), Problem> {
    let (xml, row_id) = R::find(c, partner, key)?.ok_or_else(|| Problem::NotFound {
        entity: R::ENTITY,
        what: R::WHAT,
        key: key.to_string(),
    })?;
    Ok((from_xml(&xml, R::NAMESPACE)?, row_id))
}

/// `Create…`/`Add…`: a new entity of `partner` under a fresh `PREFIX-##########` key (`what`
/// names it if none can be found), built by `build` from the key and the time.
pub(crate) fn create<R: Record>(
    c: &mut AnyConnection,
    partner: &str,
    (prefix, what): (&str, &str),
    build: impl Fn(&str, i64) -> Result<R, Problem>,
) -> Result<R, Problem> {
    let at = now();
    with_fresh_number(c, prefix, what, |c, key| {
        let record = build(key, at)?;
        let xml = to_xml(&record, R::ROOT)?;
        R::add(c, None, key, partner, &record, &xml, at)?;
        Ok(record)
    })
}

/// Decodes the records a query read.
pub(crate) fn decode_all<R: Record>(rows: &[String]) -> Result<Vec<R>, Problem> {
    rows.iter().map(|x| from_xml(x, R::NAMESPACE)).collect()
}

/// Writes a changed record back to its row.
pub(crate) fn save<R: Record>(
    c: &mut AnyConnection,
    row_id: i64,
    record: &R,
) -> Result<(), Problem> {
    let xml = to_xml(record, R::ROOT)?;
    R::write(c, row_id, record, &xml, now())?;
    Ok(())
}

/// Sets a record's last-change time to now.
fn stamp<R: Record>(record: &mut R) {
    *record.state().1 = DateTime::from_unix(now());
}

/// `Modify…`: the partner's entity `key`, refused when terminated, changed by `apply`, stamped
/// and saved.
pub(crate) fn modify<R: Record>(
    c: &mut AnyConnection,
    partner: &str,
    key: &str,
    apply: impl FnOnce(&mut AnyConnection, &mut R) -> Result<(), Problem>,
) -> Result<R, Problem> {
    let (mut record, row_id) = load::<R>(c, partner, key)?;
    not_terminated(record.state().0, R::WHAT, key)?;
    apply(c, &mut record)?;
    stamp(&mut record);
    save(c, row_id, &record)?;
    Ok(record)
}

/// `Change…Status`: the partner's entity `key` moved to `to` if the status machine allows it
/// and then `check` does, stamped and saved. Returns the previous status. (The caller
/// cascades a termination.)
pub(crate) fn change_status<R: Record>(
    c: &mut AnyConnection,
    partner: &str,
    key: &str,
    to: &cmn::Status,
    check: impl FnOnce(&mut AnyConnection, &R) -> Result<(), Problem>,
) -> Result<cmn::Status, Problem> {
    let (mut record, row_id) = load::<R>(c, partner, key)?;
    transition(record.state().0, to)?;
    check(c, &record)?;
    let previous = std::mem::replace(record.state().0, to.clone());
    stamp(&mut record);
    save(c, row_id, &record)?;
    Ok(previous)
}

/// Terminates the records of `rows` (record, row id): the cascade below a terminated entity.
fn terminate<R: Record>(c: &mut AnyConnection, rows: Vec<(String, i64)>) -> Result<(), Problem> {
    for (xml, row_id) in rows {
        let mut record: R = from_xml(&xml, R::NAMESPACE)?;
        *record.state().0 = cmn::Status::Terminated;
        stamp(&mut record);
        save(c, row_id, &record)?;
    }
    Ok(())
}

/// Terminates a service with its devices and features (the cascade below a terminated account
/// or service).
pub(crate) fn terminate_service(c: &mut AnyConnection, service_id: &str) -> Result<(), Problem> {
    let service: Vec<(String, i64)> = s::table
        .filter(s::service_id.eq(service_id))
        .select((s::record, s::id))
        .limit(1)
        .load(c)?;
    terminate::<svc::Service>(c, service)?;
    let devices: Vec<(String, i64)> = d::table
        .filter(d::service_id.eq(service_id))
        .filter(d::status.ne("TERMINATED"))
        .select((d::record, d::id))
        .load(c)?;
    terminate::<dev::Device>(c, devices)?;
    diesel::update(f::table.filter(f::service_id.eq(service_id)))
        .set((f::status.eq("TERMINATED"), f::updated_at.eq(now())))
        .execute(c)?;
    Ok(())
}

/// Adds an entity whose key is unique across partners: `existing` is the key's row (status,
/// row id) if there is one. A live one is refused with `taken`; else `add` writes the entity,
/// into the terminated one's row if there is one.
pub(crate) fn add_unique(
    c: &mut AnyConnection,
    existing: Option<(String, i64)>,
    taken: impl FnOnce() -> Problem,
    add: impl FnOnce(&mut AnyConnection, Option<i64>) -> QueryResult<usize>,
) -> Result<(), Problem> {
    let reuse = match existing {
        Some((status, _)) if status != "TERMINATED" => return Err(taken()),
        Some((_, row_id)) => Some(row_id),
        None => None,
    };
    add(c, reuse)?;
    Ok(())
}

/// A fresh random identifier `PREFIX-` + ten digits (random, so numbers reveal nothing about
/// volume; uniqueness is enforced by the database and retried on collision).
fn random_number(prefix: &str) -> String {
    let n: u64 = rand::random::<u64>() % 10_000_000_000;
    format!("{prefix}-{n:010}")
}

/// Allocates a fresh `PREFIX-##########` number: `insert` tries it in a savepoint (so a collision
/// does not abort the outer transaction), and a collision with an existing number is retried.
fn with_fresh_number<T>(
    c: &mut AnyConnection,
    prefix: &str,
    what: &str,
    mut insert: impl FnMut(&mut AnyConnection, &str) -> Result<T, Problem>,
) -> Result<T, Problem> {
    for _ in 0..8 {
        let number = random_number(prefix);
        match c.transaction(|c| insert(c, &number)) {
            Ok(value) => return Ok(value),
            Err(Problem::Store(StoreError::Query(e))) if is_unique_violation(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Problem::Conflict {
        reason: cmn::ConflictReason::Duplicate,
        message: format!("could not allocate a unique {what}"),
    })
}

fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

pub(crate) fn now() -> i64 {
    crate::clock::unix_now()
}

// === status ===

pub(crate) fn status_str(s: &cmn::Status) -> &'static str {
    match s {
        cmn::Status::Pending => "PENDING",
        cmn::Status::Active => "ACTIVE",
        cmn::Status::Suspended => "SUSPENDED",
        cmn::Status::Terminated => "TERMINATED",
    }
}

/// Reads a status column.
pub(crate) fn parse_status(s: &str) -> Result<cmn::Status, Problem> {
    Ok(match s {
        "PENDING" => cmn::Status::Pending,
        "ACTIVE" => cmn::Status::Active,
        "SUSPENDED" => cmn::Status::Suspended,
        "TERMINATED" => cmn::Status::Terminated,
        other => return Err(Problem::Corrupt(format!("status {other:?}"))),
    })
}

/// Checks a status change against the state machine (see the module doc of `provision`).
pub fn transition(from: &cmn::Status, to: &cmn::Status) -> Result<(), Problem> {
    use cmn::Status::{Active, Pending, Suspended, Terminated};
    let allowed = matches!(
        (from, to),
        (Pending, Active)
            | (Pending, Terminated)
            | (Active, Suspended)
            | (Suspended, Active)
            | (Active | Suspended, Terminated)
    );
    if allowed {
        Ok(())
    } else {
        Err(Problem::Conflict {
            reason: cmn::ConflictReason::InvalidStatusTransition,
            message: format!(
                "status cannot change from {} to {}",
                status_str(from),
                status_str(to)
            ),
        })
    }
}

/// A terminated entity cannot be modified or extended.
pub(crate) fn not_terminated(status: &cmn::Status, what: &str, key: &str) -> Result<(), Problem> {
    if *status == cmn::Status::Terminated {
        Err(Problem::Conflict {
            reason: cmn::ConflictReason::Terminated,
            message: format!("{what} {key} is terminated"),
        })
    } else {
        Ok(())
    }
}
