//! Failed dashboard logins (`login_throttle`), counted per account name and per source address
//! and shared by every node, so that spreading guesses over the nodes of a cluster gains
//! nothing. `admin::dashboard` decides the policy ([`LoginPolicy`]); this module counts.
//!
//! A name without an account is counted like any other, so the answers never tell whether an
//! account exists. Rows quiet for [`FORGET_AFTER_MS`] and no longer locked are deleted at the
//! next failure (the table holds recent failures only). Times are unix milliseconds of the
//! writing node's clock. Uses `schema`.

use diesel::prelude::*;
use diesel::upsert::excluded;

use super::schema::login_throttle as lt;
use super::{AnyConnection, Store, StoreError};

/// A row without a failure for this long (and not locked) is forgotten: one hour.
pub const FORGET_AFTER_MS: i64 = 3_600_000;

/// What is counted: an account name or a source address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginScope {
    /// The name typed into the login form (whether or not such an account exists).
    Account,
    /// The client's address.
    Address,
}

impl LoginScope {
    fn as_str(self) -> &'static str {
        match self {
            LoginScope::Account => "account",
            LoginScope::Address => "address",
        }
    }
}

/// When failures lock: after `max_failures` in a row, for `base_lock_ms`, doubled by every
/// further failure, at most `max_lock_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginPolicy {
    /// Failures before the first lock.
    pub max_failures: u32,
    /// The first lock's length.
    pub base_lock_ms: i64,
    /// The longest lock.
    pub max_lock_ms: i64,
}

impl LoginPolicy {
    /// The lock after the `failures`-th failure in a row, if any.
    pub fn lock_ms(&self, failures: u32) -> Option<i64> {
        let over = failures.checked_sub(self.max_failures)?;
        let factor = 1i64.checked_shl(over.min(40)).unwrap_or(i64::MAX);
        Some(
            self.base_lock_ms
                .saturating_mul(factor)
                .min(self.max_lock_ms)
                .max(1),
        )
    }
}

impl Store {
    /// The longest lock still in force on any of `keys` at `now_ms`: milliseconds left.
    pub fn login_locked(
        &self,
        keys: &[(LoginScope, &str)],
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let mut c = self.conn()?;
        let mut left = None;
        for (scope, key) in keys {
            let until: Option<i64> = lt::table
                .filter(lt::scope.eq(scope.as_str()))
                .filter(lt::key.eq(*key))
                .select(lt::locked_until_ms)
                .first(&mut *c)
                .optional()?;
            if let Some(until) = until.filter(|u| *u > now_ms) {
                left = left.max(Some(until - now_ms));
            }
        }
        Ok(left)
    }

    /// Counts a failure against each key, each with its policy, in one transaction; the longest
    /// lock that starts now, if any.
    pub fn login_failed(
        &self,
        keys: &[(LoginScope, &str, LoginPolicy)],
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.conn()?.transaction(|c| {
            diesel::delete(
                lt::table
                    .filter(lt::last_failure_ms.lt(now_ms.saturating_sub(FORGET_AFTER_MS)))
                    .filter(lt::locked_until_ms.lt(now_ms)),
            )
            .execute(c)?;
            let mut lock = None;
            for (scope, key, policy) in keys {
                let failures = count_failure(c, *scope, key, now_ms)?;
                let Some(ms) = policy.lock_ms(failures) else {
                    continue;
                };
                diesel::update(
                    lt::table
                        .filter(lt::scope.eq(scope.as_str()))
                        .filter(lt::key.eq(*key)),
                )
                .set(lt::locked_until_ms.eq(now_ms.saturating_add(ms)))
                .execute(c)?;
                lock = lock.max(Some(ms));
            }
            Ok(lock)
        })
    }

    /// Forgets the failures of one key (a successful login forgets its account's, not its
    /// address's: one good account must not reset the count of guesses from an address).
    pub fn login_succeeded(&self, scope: LoginScope, key: &str) -> Result<(), StoreError> {
        diesel::delete(
            lt::table
                .filter(lt::scope.eq(scope.as_str()))
                .filter(lt::key.eq(key)),
        )
        .execute(&mut *self.conn()?)?;
        Ok(())
    }
}

/// Adds one failure (inserting the row if needed) and returns the count.
fn count_failure(
    c: &mut AnyConnection,
    scope: LoginScope,
    key: &str,
    now_ms: i64,
) -> Result<u32, StoreError> {
    let row = (
        lt::scope.eq(scope.as_str()),
        lt::key.eq(key),
        lt::failures.eq(1),
        lt::locked_until_ms.eq(0i64),
        lt::last_failure_ms.eq(now_ms),
    );
    macro_rules! upsert {
        ($conn:expr) => {
            diesel::insert_into(lt::table)
                .values(row)
                .on_conflict((lt::scope, lt::key))
                .do_update()
                .set((
                    lt::failures.eq(lt::failures + 1),
                    lt::last_failure_ms.eq(excluded(lt::last_failure_ms)),
                ))
                .execute($conn)?
        };
    }
    match c {
        AnyConnection::Postgresql(pg) => upsert!(pg),
        AnyConnection::Sqlite(sqlite) => upsert!(sqlite),
    };
    let failures: i32 = lt::table
        .filter(lt::scope.eq(scope.as_str()))
        .filter(lt::key.eq(key))
        .select(lt::failures)
        .first(c)?;
    Ok(u32::try_from(failures).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::LoginPolicy;

    #[test]
    fn locks_double_from_the_threshold_up_to_the_maximum() {
        let p = LoginPolicy {
            max_failures: 5,
            base_lock_ms: 1000,
            max_lock_ms: 60_000,
        };
        assert_eq!(p.lock_ms(4), None);
        assert_eq!(p.lock_ms(5), Some(1000));
        assert_eq!(p.lock_ms(6), Some(2000));
        assert_eq!(p.lock_ms(7), Some(4000));
        assert_eq!(p.lock_ms(12), Some(60_000));
        assert_eq!(p.lock_ms(u32::MAX), Some(60_000));
    }
}
