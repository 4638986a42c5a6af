//! Operator accounts and their API tokens in the admin service: validation, the store calls and
//! the views (`operator create|list|disable|enable|reset-password|set-role`, `operator token
//! create|list|revoke`, `/admin/v1/operators…`, the dashboard's Operators page), and the
//! bootstrap. Passwords are generated here (`crate::password`), hashed with Argon2id and shown
//! once in the reply; tokens are generated (`crate::secret`), stored as SHA-256 and shown once.

use serde::Serialize;

use super::{Actor, AdminError, Reply, View};
use crate::password::{self, Password};
use crate::secret::{self, Secret};
use crate::store::{NewToken, OperatorRecord, Role, Store, TokenRecord};

/// Longest token label, in characters.
pub const MAX_LABEL_CHARS: usize = 100;

/// A checked operator operation.
#[derive(Clone, Debug)]
pub(super) enum OperatorOp {
    List,
    Create(String, Role),
    SetDisabled(String, bool),
    ResetPassword(String),
    SetRole(String, Role),
    CreateToken(String, Option<String>),
    ListTokens(String),
    RevokeToken(String, i64),
}

impl OperatorOp {
    pub(super) fn is_change(&self) -> bool {
        !matches!(self, OperatorOp::List | OperatorOp::ListTokens(_))
    }

    pub(super) fn creates(&self) -> bool {
        matches!(self, OperatorOp::Create(..) | OperatorOp::CreateToken(..))
    }
}

/// `[a-z0-9][a-z0-9._-]{0,63}`: a login name.
pub(super) fn name(field: &'static str, name: &str) -> Result<String, AdminError> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok = bytes
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if !first_ok || !rest_ok || name.len() > 64 {
        return Err(AdminError::Invalid {
            field,
            reason: format!(
                "{name:?} is not an operator name: 1 to 64 of a-z 0-9 . _ -, starting with a \
                 letter or digit"
            ),
        });
    }
    Ok(name.to_owned())
}

/// `viewer`, `operator` or `admin`.
pub(super) fn role(text: &str) -> Result<Role, AdminError> {
    Role::parse(text).ok_or_else(|| AdminError::Invalid {
        field: "role",
        reason: format!("{text:?} is not a role: use viewer, operator or admin"),
    })
}

/// A token label: at most [`MAX_LABEL_CHARS`] characters, no control characters; empty = none.
pub(super) fn label(label: Option<String>) -> Result<Option<String>, AdminError> {
    let Some(label) = label.map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    if label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
        return Err(AdminError::Invalid {
            field: "label",
            reason: format!("at most {MAX_LABEL_CHARS} characters, no control characters"),
        });
    }
    Ok(Some(label))
}

// === views ===

/// `{"operators": [...]}`.
#[derive(Debug, Serialize)]
pub struct OperatorsView {
    /// Every account, by name.
    pub operators: Vec<OperatorRecord>,
}

/// One account; with its new password, once, after `create` and `reset-password`.
#[derive(Debug, Serialize)]
pub struct OperatorView {
    /// The account.
    pub operator: OperatorRecord,
    /// The one-time password (only in the reply that made it).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "expose_password"
    )]
    pub password: Option<Password>,
}

/// `{"operator", "tokens": [...]}`.
#[derive(Debug, Serialize)]
pub struct TokensView {
    /// Whose.
    pub operator: String,
    /// Metadata of every token, revoked ones included.
    pub tokens: Vec<TokenRecord>,
}

/// A new token (shown once) and its metadata.
#[derive(Debug, Serialize)]
pub struct TokenCreatedView {
    /// The token.
    #[serde(serialize_with = "expose_secret")]
    pub token: Secret,
    /// Its metadata.
    #[serde(flatten)]
    pub record: TokenRecord,
}

/// The first admin, its password and its first API token (each shown once).
#[derive(Debug, Serialize)]
pub struct BootstrapView {
    /// The account.
    pub operator: OperatorRecord,
    /// Its password.
    #[serde(serialize_with = "expose_password")]
    pub password: Password,
    /// Its API token.
    #[serde(serialize_with = "expose_secret")]
    pub token: Secret,
}

fn expose_secret<S: serde::Serializer>(t: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.expose())
}

fn expose_password<S: serde::Serializer, P: Exposed>(p: &P, s: S) -> Result<S::Ok, S::Error> {
    match p.text() {
        Some(t) => s.serialize_str(t),
        None => s.serialize_none(),
    }
}

/// A password or an optional one, as serialized.
trait Exposed {
    fn text(&self) -> Option<&str>;
}

impl Exposed for Password {
    fn text(&self) -> Option<&str> {
        Some(self.expose())
    }
}

impl Exposed for Option<Password> {
    fn text(&self) -> Option<&str> {
        self.as_ref().map(Password::expose)
    }
}

// === running ===

fn new_password() -> Result<(Password, String), AdminError> {
    let password = Password::generate();
    let hash = password::hash(&password).map_err(|e| AdminError::Internal(e.to_string()))?;
    Ok((password, hash))
}

fn new_token() -> (Secret, secret::KeyHash, String) {
    let token = secret::generate_operator_token();
    let hash = secret::hash(token.expose());
    let prefix = secret::display_prefix(token.expose());
    (token, hash, prefix)
}

/// Runs a checked operator operation as `actor`.
pub(super) fn run(store: &Store, op: OperatorOp, actor: &Actor) -> Result<Reply, AdminError> {
    let who = actor.as_str();
    let one = |message: String, operator: OperatorRecord, password: Option<Password>| {
        Ok(Reply {
            message,
            view: View::Operator(OperatorView { operator, password }),
        })
    };
    match op {
        OperatorOp::List => {
            let operators = store.list_operators()?;
            Ok(Reply {
                message: format!("{} operators", operators.len()),
                view: View::Operators(OperatorsView { operators }),
            })
        }
        OperatorOp::Create(name, role) => {
            let (password, hash) = new_password()?;
            let record = store.create_operator(who, &name, role, &hash)?;
            one(
                format!("operator {name} created with role {role}"),
                record,
                Some(password),
            )
        }
        OperatorOp::SetDisabled(name, disabled) => {
            let record = store.set_operator_disabled(who, &name, disabled)?;
            let state = if disabled { "disabled" } else { "enabled" };
            one(format!("operator {name} {state}"), record, None)
        }
        OperatorOp::ResetPassword(name) => {
            let (password, hash) = new_password()?;
            let record = store.set_operator_password(who, &name, &hash)?;
            one(
                format!("new password for operator {name}; its sessions ended"),
                record,
                Some(password),
            )
        }
        OperatorOp::SetRole(name, role) => {
            let record = store.set_operator_role(who, &name, role)?;
            one(format!("operator {name} now has role {role}"), record, None)
        }
        OperatorOp::CreateToken(operator, label) => {
            let (token, hash, prefix) = new_token();
            let new = NewToken {
                label: label.as_deref(),
                prefix: &prefix,
                hash: &hash,
            };
            let record = store.create_operator_token(who, &operator, new)?;
            Ok(Reply {
                message: format!("new API token {} for operator {operator}", record.id),
                view: View::TokenCreated(TokenCreatedView { token, record }),
            })
        }
        OperatorOp::ListTokens(operator) => {
            let tokens = store.list_operator_tokens(&operator)?;
            Ok(Reply {
                message: format!("{} tokens of {operator}", tokens.len()),
                view: View::Tokens(TokensView { operator, tokens }),
            })
        }
        OperatorOp::RevokeToken(operator, id) => {
            store.revoke_operator_token(who, &operator, id)?;
            let tokens = store.list_operator_tokens(&operator)?;
            Ok(Reply {
                message: format!("token {id} of {operator} revoked"),
                view: View::Tokens(TokensView { operator, tokens }),
            })
        }
    }
}

/// The first admin operator, made with the shared admin token while no admin account exists.
pub(super) fn bootstrap(store: &Store, name: &str, actor: &Actor) -> Result<Reply, AdminError> {
    let name = self::name("name", name)?;
    let (password, hash) = new_password()?;
    let (token, token_hash, prefix) = new_token();
    let new = NewToken {
        label: Some("bootstrap"),
        prefix: &prefix,
        hash: &token_hash,
    };
    let (operator, _) = store.bootstrap_admin(actor.as_str(), &name, &hash, new)?;
    Ok(Reply {
        message: format!("admin operator {name} created"),
        view: View::Bootstrap(BootstrapView {
            operator,
            password,
            token,
        }),
    })
}
