//! The operators' web dashboard: server-rendered HTML under `/ui/` on the admin listener, for
//! partner managers who do not use the CLI. Every change goes through the same
//! [`Admin`](super::Admin) service as the CLI and the admin API ([`Request::check`] then
//! [`Admin::run`](super::Admin::run): one transaction with its audit row, actor `ui:<peer>`), so
//! validation and messages are the same everywhere.
//!
//! Security:
//! - **Login** (`/ui/login`) exchanges an operator's name and password, posted in a form body
//!   (never read from a URL: a login with a query string is refused; the password verified
//!   against its Argon2id hash, at most [`VERIFICATIONS_AT_ONCE`] at once; failures counted per
//!   name and per address in the database, a lock answered 429 with `Retry-After`), for a
//!   random session id bound to the operator in an `HttpOnly`,
//!   `SameSite=Strict` cookie (`Secure` and HSTS with `admin.cookie_secure`). Sessions last
//!   `admin.session_lifetime_ms` from login and live in the database, so every node behind a
//!   load balancer knows them and a restart keeps them; the database holds only the SHA-256 of
//!   the id ([`session`]).
//! - **Roles**: every page and action runs through the admin service as the session's operator
//!   with its role (read from the database with the session on each request); pages hide the
//!   forms the role may not use, and a forged POST is refused 403 by the service.
//! - **CSRF**: every form carries the session's token (HMAC of the session id, never stored),
//!   compared in constant time; the login
//!   form uses a double-submit cookie. A POST without it changes nothing (403).
//! - **Headers** on every answer: a CSP without inline script or style (`default-src 'none'`,
//!   scripts and styles only from `/ui/static/`, `frame-ancestors 'none'`, `form-action
//!   'self'`), `X-Frame-Options: DENY`, `nosniff`, `Referrer-Policy: no-referrer`,
//!   `Cache-Control: no-store`.
//! - **Escaping**: askama escapes every value in the HTML templates; the SVG charts escape their
//!   own text ([`chart::esc`]).
//! - **Keys** made by "create" and "rotate" are kept in the session only until the next page
//!   shows them, once ([`session::Reveal`]), sealed under a key derived from the session id
//!   (the database never holds them in plain text); they are never logged or put in a URL.
//!
//! Routes (GET pages, POST actions; all but login, the static files and the icon need a
//! session), and
//! the file that answers each (every POST but login's and logout's goes through `actions.rs`,
//! which hands the operators' and enrollments' to their page files):
//!
//! | method | path | what | file |
//! |---|---|---|---|
//! | GET, POST | `/ui/login` | the login form; log in | `login.rs` |
//! | POST | `/ui/logout` | log out | `login.rs` |
//! | GET | `/ui/static/dashboard.css`, `/ui/static/dashboard.js` | the stylesheet; the copy button | `mod.rs` |
//! | GET | `/ui/static/icon.svg`, `/favicon.ico` | the icon (no session needed) | `mod.rs` |
//! | GET | `/ui/partners?q=&status=` | partners with search | `partners.rs` |
//! | GET, POST | `/ui/partners/new`, `/ui/partners` | the create form; create | `partners.rs`; `actions.rs` |
//! | GET | `/ui/reveal` | new keys, shown once | `partners.rs` |
//! | GET | `/ui/partners/{id}` | one partner | `partners.rs` |
//! | POST | `/ui/partners/{id}/update` | details | `actions.rs` |
//! | POST | `/ui/partners/{id}/suspend`, `/reinstate`, `/offboard` | status | `actions.rs` |
//! | POST | `/ui/partners/{id}/keys/rotate`, `/keys/revoke` | keys | `actions.rs` |
//! | POST | `/ui/partners/{id}/allowlist`, `/allowlist/remove` | allowlist | `actions.rs` |
//! | POST | `/ui/partners/{id}/grants/add`, `/grants/revoke` | permissions | `actions.rs` |
//! | POST | `/ui/partners/{id}/group`, `/throttle`, `/throttle/clear` | throttle | `actions.rs` |
//! | GET | `/ui/enrollments`, `/ui/enrollments/{id}` | enrollment requests, pending first; one request | `enrollments.rs` |
//! | GET, POST | `/ui/enrollments/{id}/approve` | the partner form pre-filled from the request; approve | `enrollments.rs` |
//! | POST | `/ui/enrollments/{id}/reject` | reject with a reason | `enrollments.rs` |
//! | GET | `/ui/usage?partner=&op=&range=` | usage charts | `usage.rs` |
//! | GET, POST | `/ui/groups` | groups; create | `groups.rs`; `actions.rs` |
//! | GET, POST | `/ui/groups/{name}`, POST `/ui/groups/{name}/rename` | one group; rates; rename | `groups.rs`; `actions.rs` |
//! | GET | `/ui/audit?target=&limit=` | the audit log | `audit.rs` |
//! | GET | `/ui/nodes` | the gateway nodes sharing the database (heartbeats; up or gone) | `nodes.rs` |
//! | GET, POST | `/ui/operators`, POST `/ui/operators/{name}/role`, `/disable`, `/enable`, `/reset-password`, `/tokens`, `/tokens/revoke` | operator accounts and tokens (admin) | `operators.rs` |
//!
//! Files: this one routes (the security headers, the session and CSRF checks, the form body,
//! the page by path); each page file (`partners.rs`, `enrollments.rs`, `groups.rs`, `usage.rs`,
//! `audit.rs`, `nodes.rs`, `login.rs`) adds an `impl Dashboard` block with its handler, its view
//! data and its askama template struct (`templates/`); `actions.rs` has every POST action but
//! login's and logout's (the operators' and the enrollments' beside their pages), with its form
//! parsing; `response.rs` is below them all: `Fail` and its
//! status, the responses, the layout and the shared text helpers. `session.rs` (sessions, CSRF,
//! sealed slots), `form.rs` (form bodies, query strings, cookies) and `chart.rs` (SVG) know
//! nothing of the pages; `usage.rs` keeps the usage report (tested in `usage/tests.rs`) beside
//! its page.

pub mod chart;
pub mod colours;
pub mod form;
pub mod range;
pub mod session;
pub mod usage;

mod actions;
mod audit;
mod change;
mod enrollments;
mod groups;
mod login;
mod nodes;
mod operators;
mod partners;
mod response;

use std::net::SocketAddr;
use std::time::Duration;

use askama::Template;
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method, Request as HttpRequest, StatusCode};
use hyper::body::Incoming;

use self::form::{cookie, Form};
pub use self::login::MAX_LOCK_MS;
use self::response::{
    asset, blocking, failure_page, html, plain, redirect, ErrorPage, Fail, Layout, Resp,
};
use self::session::{Current, SessionError, Sessions, SESSION_COOKIE};
use super::{Actor, Admin, AdminError, Request, Rules, Via};
use crate::limit::{self, LimitError};
use crate::store::{LoginPolicy, Rate};

/// The path prefix of the dashboard.
pub const PREFIX: &str = "/ui";
/// Largest form body.
pub const FORM_MAX_BYTES: usize = 64 * 1024;
/// Audit rows on a partner's or group's page.
const PAGE_AUDIT_ROWS: u32 = 50;

/// The Content-Security-Policy of every dashboard answer.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("static/dashboard.css");
const JS: &str = include_str!("static/dashboard.js");

const ICON: &str = include_str!("static/icon.svg");

/// Where browsers look for an icon when a page names none; answered without a session.
pub const FAVICON: &str = "/favicon.ico";

/// Whether `path` belongs to the dashboard (`/ui/…`, and [`FAVICON`]).
pub fn is_dashboard_path(path: &str) -> bool {
    path == PREFIX || path.starts_with("/ui/") || path == FAVICON
}

/// The dashboard's settings (`admin.session_lifetime_ms`, `admin.cookie_secure`,
/// `admin.login_max_failures`, `admin.login_lock_ms`, `throttle.default_rate_per_second`,
/// `throttle.default_burst`, `callback.default_rate_per_second` and `callback.default_burst`).
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// When failed logins lock an account name (a source address locks after
    /// [`ADDRESS_FAILURES_FACTOR`] times as many).
    pub login: LoginPolicy,
    /// How long a login lasts.
    pub session_lifetime: Duration,
    /// `Secure` cookies and HSTS (the operators reach the listener through TLS).
    pub cookie_secure: bool,
    /// The rate of partners with none of their own and no group rate (shown on their page).
    pub default_rate: Rate,
    /// The callback rate of partners with none of their own (shown on their page).
    pub default_callback_rate: Rate,
}

/// A source address locks after this many times the failures that lock an account name (an
/// office behind one address has several operators).
pub const ADDRESS_FAILURES_FACTOR: u32 = 4;
/// Password verifications at once (each holds 19 MiB for ≈ 20–40 ms): more logins wait.
const VERIFICATIONS_AT_ONCE: usize = 4;

/// The dashboard: the admin service, the login policy, the sessions.
#[derive(Debug)]
pub struct Dashboard {
    admin: Admin,
    rules: Rules,
    login: LoginPolicy,
    verifying: std::sync::Arc<tokio::sync::Semaphore>,
    sessions: Sessions,
    cookie_secure: bool,
    default_rate: Rate,
    default_callback_rate: Rate,
    body_timeout: Duration,
}

/// Decoded path segments after `/ui`; `None` for a malformed escape.
fn segments(path: &str) -> Option<Vec<String>> {
    path.strip_prefix(PREFIX)?
        .split('/')
        .filter(|s| !s.is_empty())
        .map(form::decode_segment)
        .collect()
}

// === impl Dashboard ===

impl Dashboard {
    /// The dashboard for `admin`, logging in its operators.
    pub fn new(
        admin: Admin,
        rules: Rules,
        settings: Settings,
        body_timeout: Duration,
    ) -> Dashboard {
        Dashboard {
            sessions: Sessions::new(admin.store().clone(), settings.session_lifetime),
            admin,
            rules,
            login: settings.login,
            verifying: std::sync::Arc::new(tokio::sync::Semaphore::new(VERIFICATIONS_AT_ONCE)),
            cookie_secure: settings.cookie_secure,
            default_rate: settings.default_rate,
            default_callback_rate: settings.default_callback_rate,
            body_timeout,
        }
    }

    /// Answers one request under `/ui`, with the security headers.
    pub async fn respond(&self, req: HttpRequest<Incoming>, peer: SocketAddr) -> Resp {
        let mut r = self.route(req, peer).await;
        let h = r.headers_mut();
        crate::page_headers::insert(h, CSP);
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            "cross-origin-opener-policy",
            HeaderValue::from_static("same-origin"),
        );
        h.insert(
            "cross-origin-resource-policy",
            HeaderValue::from_static("same-origin"),
        );
        h.insert(
            "permissions-policy",
            HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
        );
        if self.cookie_secure {
            h.insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000"),
            );
        }
        r
    }

    async fn route(&self, req: HttpRequest<Incoming>, peer: SocketAddr) -> Resp {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_owned();
        let Some(segs) = segments(&path) else {
            return plain(StatusCode::BAD_REQUEST, "malformed path");
        };
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let get = parts.method == Method::GET;
        let post = parts.method == Method::POST;
        match (get, post, segs.as_slice()) {
            (true, _, []) => return redirect("/ui/partners"),
            (true, _, ["static", "dashboard.css"]) => return asset(CSS, "text/css; charset=utf-8"),
            (true, _, ["static", "dashboard.js"]) => {
                return asset(JS, "text/javascript; charset=utf-8")
            }
            (true, _, ["static", "icon.svg"]) => return asset(ICON, "image/svg+xml"),
            (true, _, ["login"]) => {
                return match self.session(&parts.headers).await {
                    Ok(Some(_)) => redirect("/ui/partners"),
                    Ok(None) => self.login_page(None, StatusCode::OK),
                    Err(e) => self.sessions_unavailable(&e),
                };
            }
            (_, true, ["login"]) => return self.login(&parts, body, peer).await,
            _ => {}
        }
        let session = match self.session(&parts.headers).await {
            Ok(s) => s,
            Err(e) => return self.sessions_unavailable(&e),
        };
        let Some(session) = session else {
            if get {
                return redirect("/ui/login");
            }
            let page = ErrorPage {
                layout: Layout::anonymous("Not logged in"),
                heading: "Not logged in".into(),
                message: "Your session has ended or you are not logged in: nothing was changed."
                    .into(),
                back: "/ui/login".into(),
                back_label: "Log in".into(),
            };
            return html(StatusCode::UNAUTHORIZED, page.render());
        };
        if get {
            let query = Form::parse(parts.uri.query().unwrap_or("")).unwrap_or_default();
            return match self.page(&session, &segs, &query, peer).await {
                Ok(r) => r,
                Err(e) => failure_page(&session, &e),
            };
        }
        if !post {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
            return r;
        }
        let form = match self.read_form(&parts, body).await {
            Ok(f) => f,
            Err(r) => return r,
        };
        let csrf_ok = form
            .get("csrf")
            .is_some_and(|sent| session::same_token(sent, &session.csrf));
        if !csrf_ok {
            tracing::info!(%peer, path, "dashboard: form without a valid CSRF token refused");
            let page = ErrorPage {
                layout: Layout::new("Refused", "", &session),
                heading: "Refused".into(),
                message: "The form's security token is missing or out of date, so nothing was \
                          changed. Reload the page and try again."
                    .into(),
                back: "/ui/partners".into(),
                back_label: "Partners".into(),
            };
            return html(StatusCode::FORBIDDEN, page.render());
        }
        self.action(&session, &segs, &form, peer).await
    }

    async fn session(&self, headers: &HeaderMap) -> Result<Option<Current>, SessionError> {
        match cookie(headers, SESSION_COOKIE) {
            Some(id) => self.sessions.current(&id).await,
            None => Ok(None),
        }
    }

    /// The answer when the sessions cannot be read (the database is unreachable): nobody is
    /// let in, and nobody is told they were logged out.
    fn sessions_unavailable(&self, e: &SessionError) -> Resp {
        tracing::warn!(error = %e, "dashboard: sessions unavailable");
        let page = ErrorPage {
            layout: Layout::anonymous("Unavailable"),
            heading: "Unavailable".into(),
            message: "The dashboard cannot reach its database just now, so nothing was read or \
                      changed. Try again in a moment."
                .into(),
            back: "/ui/partners".into(),
            back_label: "Partners".into(),
        };
        html(StatusCode::SERVICE_UNAVAILABLE, page.render())
    }

    async fn read_form(&self, parts: &Parts, body: Incoming) -> Result<Form, Resp> {
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let bytes = match limit::read_body(body, declared, FORM_MAX_BYTES, self.body_timeout).await
        {
            Ok(b) => b,
            Err(LimitError::BodyTooLarge { .. }) => {
                return Err(plain(StatusCode::PAYLOAD_TOO_LARGE, "form too large"))
            }
            Err(LimitError::BodyTimeout(_)) => {
                return Err(plain(
                    StatusCode::REQUEST_TIMEOUT,
                    "form not received in time",
                ))
            }
            Err(_) => return Err(plain(StatusCode::BAD_REQUEST, "unreadable form")),
        };
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|t| t.trim() == "application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected application/x-www-form-urlencoded",
            ));
        }
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(Form::parse)
            .ok_or_else(|| plain(StatusCode::BAD_REQUEST, "malformed form"))
    }

    /// The page at `segs` (GET); each page is in its own file.
    async fn page(
        &self,
        session: &Current,
        segs: &[&str],
        query: &Form,
        peer: SocketAddr,
    ) -> Result<Resp, Fail> {
        match segs {
            ["partners"] => self.partners_page(session, query).await,
            ["partners", "new"] => self.new_partner_form(session).await,
            ["partners", id] => self.partner_page(session, id, peer).await,
            ["enrollments"] => self.enrollments_page(session, peer).await,
            ["enrollments", id] => self.enrollment_page(session, id, peer).await,
            ["enrollments", id, "approve"] => self.approve_form(session, id, peer).await,
            ["reveal"] => self.reveal_page(session).await,
            ["usage"] => self.usage_page(session, query).await,
            ["groups"] => self.groups_page(session).await,
            ["groups", name] => self.group_page(session, name, peer).await,
            ["audit"] => self.audit_page(session, query, peer).await,
            ["nodes"] => self.nodes_page(session, peer).await,
            ["operators"] => self.operators_page(session, peer).await,
            _ => Err(Fail::Admin(AdminError::NotFound {
                what: "page",
                key: format!("/ui/{}", segs.join("/")),
            })),
        }
    }

    /// Runs one admin request as the session's operator.
    async fn run(
        &self,
        session: &Current,
        request: Request,
        peer: SocketAddr,
    ) -> Result<super::Reply, Fail> {
        self.with_admin(session, peer, move |admin, rules, actor| {
            Ok(admin.handle(request, rules, actor)?)
        })
        .await
    }

    /// Runs `f` off the async threads with the admin service, its rules and the session's
    /// operator as the actor (`op:<name>/ui:<peer>`, with its role).
    async fn with_admin<T, F>(&self, session: &Current, peer: SocketAddr, f: F) -> Result<T, Fail>
    where
        T: Send + 'static,
        F: FnOnce(&Admin, &Rules, &Actor) -> Result<T, Fail> + Send + 'static,
    {
        let admin = self.admin.clone();
        let rules = self.rules.clone();
        let actor = Actor::operator(&session.operator, Via::Ui(peer));
        blocking(move || f(&admin, &rules, &actor)).await
    }
}
