//! Logging in and out: the login form (a double-submit CSRF cookie), the exchange of an
//! operator's name and password, posted in the form body, for a session cookie, and the logout
//! that ends the session on every node.
//!
//! Failed logins are counted per name and per source address in the database (every node
//! shares the counts, `store::login_throttle`): after `admin.login_max_failures` failures of a
//! name (four times as many from one address) logins are refused for `admin.login_lock_ms`,
//! doubled by each further failure up to [`MAX_LOCK_MS`]; a refused login is answered 429 with
//! `Retry-After`, and during the lock even the right password is refused, unchecked. A name
//! without an account, a disabled account and a wrong password read the same and cost the same
//! (an Argon2id verification against a dummy hash): the answers never tell whether an account
//! exists. Nothing typed into the form is logged but the name of an operator who logged in.

use std::net::SocketAddr;
use std::time::Duration;

use askama::Template;
use http::request::Parts;
use http::{header, HeaderValue, StatusCode};
use hyper::body::Incoming;

use super::form::{cookie, set_cookie};
use super::response::{failure_page, html, redirect, Layout, Resp};
use super::session::{self, Current, SessionError, LOGIN_COOKIE, SESSION_COOKIE};
use super::Dashboard;
use crate::password::{self, Password};
use crate::store::{LoginPolicy, LoginScope, OperatorIdentity, StoreError};

/// A refused login answers after this long (keeps a misbehaving client from spinning).
const LOGIN_FAILURE_DELAY: Duration = Duration::from_millis(250);
/// The longest lock: 15 minutes.
pub const MAX_LOCK_MS: i64 = 15 * 60 * 1000;

/// The same words for every refused password: unknown name, disabled account, wrong password.
const REFUSED: &str = "That name and password do not match an enabled operator.";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    csrf: String,
    error: Option<String>,
    lifetime: String,
}

impl Dashboard {
    fn cookie_header(&self, name: &str, value: &str, max_age: u64, path: &str) -> HeaderValue {
        set_cookie(name, value, path, max_age, self.cookie_secure)
    }

    pub(super) fn login_page(&self, error: Option<String>, status: StatusCode) -> Resp {
        let csrf = session::random_token();
        let secs = self.sessions.lifetime().as_secs();
        let lifetime = if secs >= 3600 && secs % 3600 == 0 {
            format!("{} hour(s)", secs / 3600)
        } else if secs >= 60 {
            format!("{} minute(s)", secs / 60)
        } else {
            format!("{secs} second(s)")
        };
        let page = LoginPage {
            layout: Layout::anonymous("Log in"),
            csrf: csrf.clone(),
            error,
            lifetime,
        };
        let mut r = html(status, page.render());
        r.headers_mut().append(
            header::SET_COOKIE,
            self.cookie_header(LOGIN_COOKIE, &csrf, 3600, "/ui/login"),
        );
        r
    }

    pub(super) async fn login(&self, parts: &Parts, body: Incoming, peer: SocketAddr) -> Resp {
        if parts.uri.query().is_some() {
            // The token must never travel in a URL (logs, history, Referer): refuse unread.
            return self.login_page(
                Some("A password is never accepted in a URL: use this form.".into()),
                StatusCode::BAD_REQUEST,
            );
        }
        let form = match self.read_form(parts, body).await {
            Ok(f) => f,
            Err(r) => return r,
        };
        let csrf_ok = match (cookie(&parts.headers, LOGIN_COOKIE), form.get("csrf")) {
            (Some(c), Some(f)) => session::same_token(&c, f),
            _ => false,
        };
        if !csrf_ok {
            tracing::info!(%peer, "dashboard: login without a valid CSRF token refused");
            return self.login_page(
                Some(
                    "The login form had expired or was not sent from this page; try again.".into(),
                ),
                StatusCode::FORBIDDEN,
            );
        }
        let name = form.get("name").unwrap_or("").trim().to_owned();
        let password = Password::new(form.get("password").unwrap_or("").to_owned());
        if name.is_empty() || password.expose().is_empty() {
            return self.login_page(
                Some("Enter your operator name and password.".into()),
                StatusCode::BAD_REQUEST,
            );
        }
        let operator = match self.check_login(name, password, peer).await {
            Ok(Ok(operator)) => operator,
            Ok(Err(refusal)) => return refusal,
            Err(e) => return self.sessions_unavailable(&e),
        };
        let id = match self.sessions.create(operator.id).await {
            Ok(id) => id,
            Err(e) => return self.sessions_unavailable(&e),
        };
        tracing::info!(%peer, operator = %operator.name, "dashboard: logged in");
        let mut r = redirect("/ui/partners");
        let h = r.headers_mut();
        h.append(
            header::SET_COOKIE,
            self.cookie_header(
                SESSION_COOKIE,
                &id,
                self.sessions.lifetime().as_secs().max(1),
                "/ui",
            ),
        );
        h.append(
            header::SET_COOKIE,
            self.cookie_header(LOGIN_COOKIE, "", 0, "/ui/login"),
        );
        r
    }

    /// Ends the session (everywhere) and drops its cookie.
    pub(super) async fn logout(&self, session: &Current, peer: SocketAddr) -> Resp {
        if let Err(e) = self.sessions.remove(session).await {
            // Still logged in (everywhere): say so, and keep the cookie to try again.
            return failure_page(session, &e.into());
        }
        tracing::info!(%peer, "dashboard: logged out");
        let mut r = redirect("/ui/login");
        r.headers_mut().append(
            header::SET_COOKIE,
            self.cookie_header(SESSION_COOKIE, "", 0, "/ui"),
        );
        r
    }
}

impl Dashboard {
    /// The operator whose name and password these are, or the refusal to answer with (401 for
    /// a mismatch, 429 during a lock); `Err` when the database cannot be reached.
    async fn check_login(
        &self,
        name: String,
        password: Password,
        peer: SocketAddr,
    ) -> Result<Result<OperatorIdentity, Resp>, SessionError> {
        let store = self.admin.store().clone();
        let account_policy = self.login_policy();
        let address_policy = LoginPolicy {
            max_failures: account_policy
                .max_failures
                .saturating_mul(super::ADDRESS_FAILURES_FACTOR),
            ..account_policy
        };
        // At most this many characters of a name are a counting key (names have at most 64).
        let account: String = name.chars().take(128).collect();
        let address = crate::allowlist::canonical(peer.ip()).to_string();
        let permit = self
            .verifying
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| SessionError::Task(e.to_string()))?;
        let outcome = tokio::task::spawn_blocking(move || -> Result<Login, StoreError> {
            let _permit = permit;
            let now = crate::clock::unix_now_ms();
            let keys = [
                (LoginScope::Account, account.as_str()),
                (LoginScope::Address, address.as_str()),
            ];
            if let Some(left) = store.login_locked(&keys, now)? {
                return Ok(Login::Locked(left));
            }
            let verified = match store.login_candidate(&account)? {
                Some((operator, stored)) => match password::verify(&password, &stored) {
                    Ok(true) => Some(operator),
                    Ok(false) => None,
                    Err(e) => {
                        tracing::warn!(error = %e, "dashboard: an operator's stored password hash is unreadable");
                        None
                    }
                },
                None => {
                    password::verify_nothing(&password);
                    None
                }
            };
            if let Some(operator) = verified {
                store.login_succeeded(LoginScope::Account, &account)?;
                return Ok(Login::Ok(operator));
            }
            let counted = [
                (LoginScope::Account, account.as_str(), account_policy),
                (LoginScope::Address, address.as_str(), address_policy),
            ];
            Ok(match store.login_failed(&counted, now)? {
                Some(lock) => Login::Locked(lock),
                None => Login::Refused,
            })
        })
        .await
        .map_err(|e| SessionError::Task(e.to_string()))??;
        Ok(match outcome {
            Login::Ok(operator) => Ok(operator),
            Login::Refused => {
                tracing::info!(%peer, "dashboard: login refused");
                tokio::time::sleep(LOGIN_FAILURE_DELAY).await;
                Err(self.login_page(Some(REFUSED.into()), StatusCode::UNAUTHORIZED))
            }
            Login::Locked(ms) => {
                let secs = u64::try_from(ms.div_euclid(1000) + 1).unwrap_or(1);
                tracing::info!(%peer, retry_after_s = secs, "dashboard: login refused: too many failures");
                let mut r = self.login_page(
                    Some(format!(
                        "Too many failed logins: try again in {secs} second(s)."
                    )),
                    StatusCode::TOO_MANY_REQUESTS,
                );
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                Err(r)
            }
        })
    }

    fn login_policy(&self) -> LoginPolicy {
        self.login
    }
}

/// What a login attempt came to.
enum Login {
    Ok(OperatorIdentity),
    Refused,
    /// Locked for this many more milliseconds.
    Locked(i64),
}
