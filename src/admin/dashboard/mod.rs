//! The operators' web dashboard: server-rendered HTML under `/ui/` on the admin listener, for
//! partner managers who do not use the CLI. Every change goes through the same
//! [`Admin`](super::Admin) service as the CLI and the admin API ([`Request::check`] then
//! [`Admin::run`](super::Admin::run): one transaction with its audit row, actor `ui:<peer>`), so
//! validation and messages are the same everywhere.
//!
//! Security:
//! - **Login** (`/ui/login`) exchanges the admin token, posted in a form body (never read from a
//!   URL: a login with a query string is refused), for a random session id in an `HttpOnly`,
//!   `SameSite=Strict` cookie (`Secure` and HSTS with `admin.cookie_secure`). Sessions last
//!   `admin.session_lifetime_ms` from login and live in the database, so every node behind a
//!   load balancer knows them and a restart keeps them; the database holds only the SHA-256 of
//!   the id ([`session`]).
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
//! Routes (GET pages, POST actions; all but login and the two static files need a session):
//!
//! | method | path | what |
//! |---|---|---|
//! | GET, POST | `/ui/login` | the login form; log in |
//! | POST | `/ui/logout` | log out |
//! | GET | `/ui/static/dashboard.css`, `/ui/static/dashboard.js` | the stylesheet; the copy button |
//! | GET | `/ui/partners?q=&status=` | partners with search |
//! | GET, POST | `/ui/partners/new`, `/ui/partners` | the create form; create |
//! | GET | `/ui/reveal` | new keys, shown once |
//! | GET | `/ui/partners/{id}` | one partner |
//! | POST | `/ui/partners/{id}/update` | details |
//! | POST | `/ui/partners/{id}/suspend`, `/reinstate`, `/offboard` | status |
//! | POST | `/ui/partners/{id}/keys/rotate`, `/keys/revoke` | keys |
//! | POST | `/ui/partners/{id}/allowlist`, `/allowlist/remove` | allowlist |
//! | POST | `/ui/partners/{id}/grants/add`, `/grants/revoke` | permissions |
//! | POST | `/ui/partners/{id}/group`, `/throttle`, `/throttle/clear` | throttle |
//! | GET | `/ui/usage?partner=&op=&range=` | usage charts |
//! | GET, POST | `/ui/groups` | groups; create |
//! | GET, POST | `/ui/groups/{name}`, POST `/ui/groups/{name}/rename` | one group; rates; rename |
//! | GET | `/ui/audit?target=&limit=` | the audit log |
//! | GET | `/ui/nodes` | the gateway nodes sharing the database (heartbeats; up or gone) |

pub mod chart;
pub mod form;
mod nodes;
pub mod session;
pub mod usage;

use std::net::SocketAddr;
use std::time::Duration;

use askama::Template;
use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method, Request as HttpRequest, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use self::form::{cookie, encode, Form};
use self::session::{Current, Flash, Reveal, SessionError, Sessions, LOGIN_COOKIE, SESSION_COOKIE};
use super::text::utc;
use super::{
    Actor, Admin, AdminError, AdminToken, AuditEntry, CreateGroup, CreatePartner, PartnerView,
    RateInput, Request, RevokeInput, RotateInput, Rules, StatusInput, UpdateGroup, UpdatePartner,
    View,
};
use crate::generated::partner::Operation;
use crate::limit::{self, LimitError};
use crate::store::{GroupRecord, Rate};

/// The path prefix of the dashboard.
pub const PREFIX: &str = "/ui";
/// Largest form body.
pub const FORM_MAX_BYTES: usize = 64 * 1024;
/// A refused login answers after this long (a token has at least 24 characters, so this only
/// keeps a misbehaving client from spinning).
const LOGIN_FAILURE_DELAY: Duration = Duration::from_millis(250);
/// Audit rows on a partner's or group's page.
const PAGE_AUDIT_ROWS: u32 = 50;

/// The Content-Security-Policy of every dashboard answer.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("static/dashboard.css");
const JS: &str = include_str!("static/dashboard.js");

type Resp = Response<Full<Bytes>>;

/// Whether `path` belongs to the dashboard.
pub fn is_dashboard_path(path: &str) -> bool {
    path == PREFIX || path.starts_with("/ui/")
}

/// The dashboard's settings (`admin.session_lifetime_ms`, `admin.cookie_secure`).
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// How long a login lasts.
    pub session_lifetime: Duration,
    /// `Secure` cookies and HSTS (the operators reach the listener through TLS).
    pub cookie_secure: bool,
}

/// The dashboard: the admin service, the token it exchanges for sessions, the sessions.
#[derive(Debug)]
pub struct Dashboard {
    admin: Admin,
    rules: Rules,
    token: AdminToken,
    sessions: Sessions,
    cookie_secure: bool,
    body_timeout: Duration,
}

// === failures ===

/// Why a page or action failed.
#[derive(Debug)]
enum Fail {
    Admin(AdminError),
    Internal(String),
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Admin(e) => write!(f, "{e}"),
            Fail::Internal(e) => write!(f, "internal error: {e}"),
        }
    }
}

impl From<AdminError> for Fail {
    fn from(e: AdminError) -> Self {
        Fail::Admin(e)
    }
}

impl From<crate::store::StoreError> for Fail {
    fn from(e: crate::store::StoreError) -> Self {
        Fail::Admin(e.into())
    }
}

impl From<SessionError> for Fail {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Store(e) => e.into(),
            other => Fail::Internal(other.to_string()),
        }
    }
}

impl Fail {
    fn status(&self) -> StatusCode {
        match self {
            Fail::Admin(AdminError::Invalid { .. }) => StatusCode::BAD_REQUEST,
            Fail::Admin(AdminError::NotFound { .. }) => StatusCode::NOT_FOUND,
            Fail::Admin(AdminError::Conflict(_)) => StatusCode::CONFLICT,
            Fail::Admin(AdminError::Store(e)) => {
                tracing::warn!(error = %e, "dashboard: database error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Fail::Internal(e) => {
                tracing::warn!(error = %e, "dashboard: internal error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Fail {
    Fail::Admin(AdminError::Invalid {
        field,
        reason: reason.into(),
    })
}

fn unexpected() -> Fail {
    Fail::Internal("the admin service answered with an unexpected view".into())
}

/// Runs blocking database work off the async threads.
async fn blocking<T, F>(f: F) -> Result<T, Fail>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Fail> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Fail::Internal(format!("task failed: {e}")))?
}

// === view models ===

struct NavItem {
    href: &'static str,
    label: &'static str,
    current: bool,
}

struct Layout {
    title: String,
    logged_in: bool,
    nav: Vec<NavItem>,
    csrf: String,
    flash: Option<Flash>,
}

impl Layout {
    fn new(title: impl Into<String>, current: &str, session: &Current) -> Layout {
        let items = [
            ("/ui/partners", "Partners", "partners"),
            ("/ui/groups", "Groups", "groups"),
            ("/ui/usage", "Usage", "usage"),
            ("/ui/audit", "Audit log", "audit"),
            ("/ui/nodes", "Nodes", "nodes"),
        ];
        Layout {
            title: title.into(),
            logged_in: true,
            nav: items
                .iter()
                .map(|(href, label, key)| NavItem {
                    href,
                    label,
                    current: *key == current,
                })
                .collect(),
            csrf: session.csrf.clone(),
            flash: session.flash.clone(),
        }
    }

    fn anonymous(title: &str) -> Layout {
        Layout {
            title: title.to_owned(),
            logged_in: false,
            nav: Vec::new(),
            csrf: String::new(),
            flash: None,
        }
    }
}

struct Choice {
    value: String,
    label: String,
    selected: bool,
}

fn choice(value: &str, label: &str, selected: bool) -> Choice {
    Choice {
        value: value.to_owned(),
        label: label.to_owned(),
        selected,
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    csrf: String,
    error: Option<String>,
    lifetime: String,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    heading: String,
    message: String,
    back: String,
    back_label: String,
}

struct KeyCell {
    prefix: String,
    kind: &'static str,
    state: &'static str,
    last_used: String,
}

struct PartnerRow {
    id: String,
    href: String,
    name: String,
    status: &'static str,
    group: String,
    country: String,
    keys: Vec<KeyCell>,
    calls: i64,
    refused: i64,
}

#[derive(Template)]
#[template(path = "partners.html")]
struct PartnersPage {
    layout: Layout,
    q: String,
    statuses: Vec<Choice>,
    rows: Vec<PartnerRow>,
    total: usize,
}

#[derive(Default)]
struct NewValues {
    id: String,
    name: String,
    country: String,
    allow: String,
    grant_other: String,
    feature_defaults: String,
}

struct OpChoice {
    name: &'static str,
    permission: &'static str,
    checked: bool,
}

struct DomainChoice {
    wildcard: String,
    wildcard_checked: bool,
    ops: Vec<OpChoice>,
}

#[derive(Template)]
#[template(path = "partner_new.html")]
struct NewPartnerPage {
    layout: Layout,
    error: Option<String>,
    v: NewValues,
    groups: Vec<Choice>,
    domains: Vec<DomainChoice>,
}

struct RevealKey {
    id: &'static str,
    label: String,
    value: String,
}

struct RevealView {
    partner_id: String,
    href: String,
    message: String,
    keys: Vec<RevealKey>,
}

#[derive(Template)]
#[template(path = "reveal.html")]
struct RevealPage {
    layout: Layout,
    reveal: Option<RevealView>,
}

struct KeyRow {
    id: i64,
    kind: &'static str,
    prefix: String,
    state: &'static str,
    created: String,
    expires: String,
    last_used: String,
    usable: bool,
}

struct MatrixOp {
    name: &'static str,
    permission: &'static str,
    exact: bool,
    via: String,
}

struct MatrixDomain {
    wildcard: String,
    wildcard_granted: bool,
    all: bool,
    ops: Vec<MatrixOp>,
}

struct AuditRow {
    at: String,
    actor: String,
    action: String,
    target: String,
    href: String,
    detail: String,
}

struct PartnerData {
    id: String,
    id_query: String,
    href: String,
    name: String,
    status: &'static str,
    active: bool,
    changeable: bool,
    group: String,
    country: String,
    country_value: String,
    contact: String,
    billing_rate: String,
    callback_url: String,
    callback_url_value: String,
    callback_ca: String,
    callback_ca_pem: String,
    feature_defaults: String,
    features: Vec<(String, String)>,
    rate: String,
    rate_note: String,
    rate_ps: String,
    rate_burst: String,
    has_rate: bool,
    keys: Vec<KeyRow>,
    allow: Vec<String>,
    grants: Vec<String>,
    has_star: bool,
    matrix: Vec<MatrixDomain>,
    created: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "partner.html")]
struct PartnerPage {
    layout: Layout,
    p: PartnerData,
    groups: Vec<Choice>,
    usage: usage::Report,
    audit: Vec<AuditRow>,
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    layout: Layout,
    partner: String,
    partners: Vec<Choice>,
    ops: Vec<Choice>,
    ranges: Vec<Choice>,
    r: usage::Report,
}

struct GroupRow {
    name: String,
    href: String,
    rate: String,
    aggregate: String,
    members: usize,
    created: String,
}

#[derive(Template)]
#[template(path = "groups.html")]
struct GroupsPage {
    layout: Layout,
    groups: Vec<GroupRow>,
}

struct GroupData {
    name: String,
    href: String,
    rate: String,
    aggregate: String,
    created: String,
    rate_ps: String,
    rate_burst: String,
    agg_ps: String,
    agg_burst: String,
    members: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "group.html")]
struct GroupPage {
    layout: Layout,
    g: GroupData,
    audit: Vec<AuditRow>,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    target: String,
    limit: String,
    entries: Vec<AuditRow>,
}

// === helpers ===

fn partner_href(id: &str) -> String {
    format!("/ui/partners/{}", encode(id))
}

fn group_href(name: &str) -> String {
    format!("/ui/groups/{}", encode(name))
}

fn time(ts: Option<i64>) -> String {
    ts.map_or_else(|| "-".to_owned(), utc)
}

fn or_dash(v: Option<&str>) -> String {
    v.unwrap_or("-").to_owned()
}

fn rate_text(r: Option<Rate>) -> String {
    r.map_or_else(
        || "-".to_owned(),
        |r| format!("{}/s, burst {}", r.per_second, r.burst),
    )
}

fn audit_row(a: AuditEntry) -> AuditRow {
    let href = if let Some(g) = a.target.strip_prefix("group:") {
        group_href(g)
    } else if a.target.is_empty() {
        String::new()
    } else {
        partner_href(&a.target)
    };
    AuditRow {
        at: utc(a.at),
        actor: a.actor,
        action: a.action,
        href,
        target: a.target,
        detail: a.detail.map(|d| d.to_string()).unwrap_or_default(),
    }
}

/// Decoded path segments after `/ui`; `None` for a malformed escape.
fn segments(path: &str) -> Option<Vec<String>> {
    path.strip_prefix(PREFIX)?
        .split('/')
        .filter(|s| !s.is_empty())
        .map(form::decode)
        .collect()
}

fn html(status: StatusCode, body: Result<String, askama::Error>) -> Resp {
    match body {
        Ok(body) => {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        Err(e) => {
            tracing::warn!(error = %e, "dashboard: template failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "template error")
        }
    }
}

fn plain(status: StatusCode, text: &'static str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn redirect(location: &str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn asset(body: &'static str, content_type: &'static str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

// === impl Dashboard ===

impl Dashboard {
    /// The dashboard for `admin`, logging in holders of `token`.
    pub fn new(
        admin: Admin,
        rules: Rules,
        token: AdminToken,
        settings: Settings,
        body_timeout: Duration,
    ) -> Dashboard {
        Dashboard {
            sessions: Sessions::new(admin.store().clone(), settings.session_lifetime),
            admin,
            rules,
            token,
            cookie_secure: settings.cookie_secure,
            body_timeout,
        }
    }

    /// Answers one request under `/ui`, with the security headers.
    pub async fn respond(&self, req: HttpRequest<Incoming>, peer: SocketAddr) -> Resp {
        let mut r = self.route(req, peer).await;
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
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

    fn cookie_header(&self, name: &str, value: &str, max_age: u64, path: &str) -> HeaderValue {
        let secure = if self.cookie_secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=1; Max-Age=0"))
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
                Err(e) => self.failure_page(&session, &e),
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

    // === login ===

    fn login_page(&self, error: Option<String>, status: StatusCode) -> Resp {
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

    async fn login(&self, parts: &Parts, body: Incoming, peer: SocketAddr) -> Resp {
        if parts.uri.query().is_some() {
            // The token must never travel in a URL (logs, history, Referer): refuse unread.
            return self.login_page(
                Some("The admin token is never accepted in a URL: use this form.".into()),
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
        let token = form.get("token").unwrap_or("").trim();
        if !self.token.matches(token) {
            tracing::info!(%peer, "dashboard: login refused");
            tokio::time::sleep(LOGIN_FAILURE_DELAY).await;
            return self.login_page(
                Some("That is not the admin token.".into()),
                StatusCode::UNAUTHORIZED,
            );
        }
        let id = match self.sessions.create().await {
            Ok(id) => id,
            Err(e) => return self.sessions_unavailable(&e),
        };
        tracing::info!(%peer, "dashboard: logged in");
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

    fn failure_page(&self, session: &Current, e: &Fail) -> Resp {
        let status = e.status();
        let page = ErrorPage {
            layout: Layout::new("Error", "", session),
            heading: match status {
                StatusCode::NOT_FOUND => "Not found".into(),
                StatusCode::BAD_REQUEST => "Not accepted".into(),
                _ => "Something went wrong".into(),
            },
            message: e.to_string(),
            back: "/ui/partners".into(),
            back_label: "Partners".into(),
        };
        html(status, page.render())
    }

    // === pages ===

    async fn page(
        &self,
        session: &Current,
        segs: &[&str],
        query: &Form,
        peer: SocketAddr,
    ) -> Result<Resp, Fail> {
        match segs {
            ["partners"] => self.partners_page(session, query).await,
            ["partners", "new"] => {
                let groups = self.group_names().await?;
                Ok(self.new_partner_page(
                    session,
                    NewValues::default(),
                    &[],
                    "",
                    groups,
                    None,
                    StatusCode::OK,
                ))
            }
            ["partners", id] => self.partner_page(session, id, peer).await,
            ["reveal"] => self.reveal_page(session).await,
            ["usage"] => self.usage_page(session, query).await,
            ["groups"] => self.groups_page(session).await,
            ["groups", name] => self.group_page(session, name, peer).await,
            ["audit"] => self.audit_page(session, query, peer).await,
            ["nodes"] => self.nodes_page(session, peer).await,
            _ => Err(Fail::Admin(AdminError::NotFound {
                what: "page",
                key: format!("/ui/{}", segs.join("/")),
            })),
        }
    }

    async fn partners_page(&self, session: &Current, query: &Form) -> Result<Resp, Fail> {
        let admin = self.admin.clone();
        let now = crate::pipeline::unix_now();
        let (partners, keys, totals) = blocking(move || {
            let s = admin.store();
            Ok((
                s.list_partners()?,
                s.keys_by_partner()?,
                s.usage(now - 86_400, None)?,
            ))
        })
        .await?;
        let q = query.text("q").unwrap_or_default();
        let status = query.text("status").unwrap_or_default();
        let needle = q.to_lowercase();
        let total = partners.len();
        let mut rows = Vec::new();
        for p in partners {
            let cells: Vec<KeyCell> = keys
                .iter()
                .filter(|(id, k)| *id == p.partner_id && k.usable_at(now))
                .map(|(_, k)| {
                    let v = super::KeyView::new(k, now);
                    KeyCell {
                        prefix: v.prefix,
                        kind: v.kind,
                        state: v.state,
                        last_used: v.last_used_at.map_or_else(
                            || "never used".to_owned(),
                            |t| format!("used {}", utc(t)),
                        ),
                    }
                })
                .collect();
            let status_text = p.status.as_str();
            if !status.is_empty() && status != status_text {
                continue;
            }
            if !needle.is_empty() {
                let hay = [
                    p.partner_id.as_str(),
                    p.name.as_str(),
                    p.country.as_deref().unwrap_or(""),
                    p.group.as_deref().unwrap_or(""),
                    status_text,
                ];
                let hit = hay.iter().any(|h| h.to_lowercase().contains(&needle))
                    || cells
                        .iter()
                        .any(|c| c.prefix.to_lowercase().contains(&needle));
                if !hit {
                    continue;
                }
            }
            let (mut calls, mut refused) = (0, 0);
            for t in totals.iter().filter(|t| t.partner_id == p.partner_id) {
                calls += t.count;
                if usage::category(&t.outcome) == usage::Category::Refused {
                    refused += t.count;
                }
            }
            rows.push(PartnerRow {
                href: partner_href(&p.partner_id),
                id: p.partner_id,
                name: p.name,
                status: status_text,
                group: or_dash(p.group.as_deref()),
                country: or_dash(p.country.as_deref()),
                keys: cells,
                calls,
                refused,
            });
        }
        let statuses = [
            ("", "any"),
            ("active", "active"),
            ("suspended", "suspended"),
            ("offboarded", "offboarded"),
        ]
        .iter()
        .map(|(v, l)| choice(v, l, *v == status))
        .collect();
        let page = PartnersPage {
            layout: Layout::new("Partners", "partners", session),
            q,
            statuses,
            rows,
            total,
        };
        Ok(html(StatusCode::OK, page.render()))
    }

    async fn group_names(&self) -> Result<Vec<String>, Fail> {
        let admin = self.admin.clone();
        blocking(move || {
            Ok(admin
                .store()
                .list_groups()?
                .into_iter()
                .map(|g| g.name)
                .collect())
        })
        .await
    }

    #[allow(clippy::too_many_arguments, reason = "one page's inputs")]
    fn new_partner_page(
        &self,
        session: &Current,
        v: NewValues,
        checked: &[String],
        group: &str,
        groups: Vec<String>,
        error: Option<String>,
        status: StatusCode,
    ) -> Resp {
        let mut domains: Vec<DomainChoice> = Vec::new();
        for op in Operation::ALL {
            let permission = op.permission();
            let wildcard = format!("{}.*", domain_of(permission));
            let o = OpChoice {
                name: op.name(),
                permission,
                checked: checked.iter().any(|c| c == permission || c == op.name()),
            };
            match domains.iter_mut().find(|d| d.wildcard == wildcard) {
                Some(d) => d.ops.push(o),
                None => domains.push(DomainChoice {
                    wildcard_checked: checked.contains(&wildcard),
                    wildcard,
                    ops: vec![o],
                }),
            }
        }
        let mut group_choices = vec![choice("", "no group", group.is_empty())];
        group_choices.extend(groups.iter().map(|g| choice(g, g, g == group)));
        let page = NewPartnerPage {
            layout: Layout::new("New partner", "partners", session),
            error,
            v,
            groups: group_choices,
            domains,
        };
        html(status, page.render())
    }

    async fn reveal_page(&self, session: &Current) -> Result<Resp, Fail> {
        let reveal = self
            .sessions
            .take_reveal(session)
            .await?
            .map(|r| RevealView {
                href: partner_href(&r.partner_id),
                partner_id: r.partner_id,
                message: r.message,
                keys: r
                    .keys
                    .into_iter()
                    .enumerate()
                    .map(|(i, (label, key))| RevealKey {
                        id: ["key-1", "key-2", "key-3"]
                            .get(i)
                            .copied()
                            .unwrap_or("key-n"),
                        label,
                        value: key.expose().to_owned(),
                    })
                    .collect(),
            });
        let page = RevealPage {
            layout: Layout::new("New keys", "partners", session),
            reveal,
        };
        Ok(html(StatusCode::OK, page.render()))
    }

    async fn partner_page(
        &self,
        session: &Current,
        id: &str,
        peer: SocketAddr,
    ) -> Result<Resp, Fail> {
        let admin = self.admin.clone();
        let rules = self.rules.clone();
        let actor = Actor::ui(peer);
        let partner = id.to_owned();
        let now = crate::pipeline::unix_now();
        let range = usage::range(Some("24h"));
        let (view, audit, groups, rows) = blocking(move || {
            let View::Partner(view) = admin
                .handle(
                    Request::ShowPartner {
                        partner: partner.clone(),
                    },
                    &rules,
                    &actor,
                )?
                .view
            else {
                return Err(unexpected());
            };
            let View::Audit(audit) = admin
                .handle(
                    Request::ListAudit {
                        target: Some(partner.clone()),
                        limit: Some(PAGE_AUDIT_ROWS),
                    },
                    &rules,
                    &actor,
                )?
                .view
            else {
                return Err(unexpected());
            };
            let s = admin.store();
            let groups = s.list_groups()?;
            let rows = s.usage_rows(range.since(now), Some(&partner), None)?;
            Ok((view, audit, groups, rows))
        })
        .await?;
        let report = usage::report(&rows, range, now, "p");
        let group_choices = {
            let current = view.group.clone().unwrap_or_default();
            let mut c = vec![choice("", "no group", current.is_empty())];
            c.extend(
                groups
                    .iter()
                    .map(|g| choice(&g.name, &g.name, g.name == current)),
            );
            c
        };
        let p = partner_data(*view, &groups);
        let page = PartnerPage {
            layout: Layout::new(format!("{} {}", p.id, p.name), "partners", session),
            p,
            groups: group_choices,
            usage: report,
            audit: audit.entries.into_iter().map(audit_row).collect(),
        };
        Ok(html(StatusCode::OK, page.render()))
    }

    async fn usage_page(&self, session: &Current, query: &Form) -> Result<Resp, Fail> {
        let partner = query.text("partner");
        let op = query.text("op");
        let range = usage::range(query.get("range"));
        let now = crate::pipeline::unix_now();
        let admin = self.admin.clone();
        let (p, o) = (partner.clone(), op.clone());
        let (partners, rows) = blocking(move || {
            let s = admin.store();
            let partners = s.list_partners()?;
            let rows = s.usage_rows(range.since(now), p.as_deref(), o.as_deref())?;
            Ok((partners, rows))
        })
        .await?;
        let partner = partner.unwrap_or_default();
        let op = op.unwrap_or_default();
        let mut partner_choices = vec![choice("", "all partners", partner.is_empty())];
        partner_choices.extend(partners.iter().map(|p| {
            choice(
                &p.partner_id,
                &format!("{} {}", p.partner_id, p.name),
                p.partner_id == partner,
            )
        }));
        let mut op_choices = vec![choice("", "all operations", op.is_empty())];
        op_choices.extend(
            Operation::ALL
                .iter()
                .map(|o| choice(o.name(), o.name(), o.name() == op)),
        );
        let page = UsagePage {
            layout: Layout::new("Usage", "usage", session),
            partner,
            partners: partner_choices,
            ops: op_choices,
            ranges: usage::RANGES
                .iter()
                .map(|r| choice(r.key, r.label, r.key == range.key))
                .collect(),
            r: usage::report(&rows, range, now, "u"),
        };
        Ok(html(StatusCode::OK, page.render()))
    }

    async fn groups_page(&self, session: &Current) -> Result<Resp, Fail> {
        let admin = self.admin.clone();
        let groups = blocking(move || Ok(admin.store().list_groups()?)).await?;
        let page = GroupsPage {
            layout: Layout::new("Groups", "groups", session),
            groups: groups
                .into_iter()
                .map(|g| GroupRow {
                    href: group_href(&g.name),
                    rate: rate_text(g.rate),
                    aggregate: rate_text(g.aggregate),
                    members: g.members.len(),
                    created: utc(g.created_at),
                    name: g.name,
                })
                .collect(),
        };
        Ok(html(StatusCode::OK, page.render()))
    }

    async fn group_page(
        &self,
        session: &Current,
        name: &str,
        peer: SocketAddr,
    ) -> Result<Resp, Fail> {
        let admin = self.admin.clone();
        let rules = self.rules.clone();
        let actor = Actor::ui(peer);
        let group = name.to_owned();
        let (g, audit) = blocking(move || {
            let g = admin.store().group_detail(&group)?;
            let View::Audit(audit) = admin
                .handle(
                    Request::ListAudit {
                        target: Some(format!("group:{group}")),
                        limit: Some(PAGE_AUDIT_ROWS),
                    },
                    &rules,
                    &actor,
                )?
                .view
            else {
                return Err(unexpected());
            };
            Ok((g, audit))
        })
        .await?;
        let num = |r: Option<Rate>, burst: bool| {
            r.map(|r| if burst { r.burst } else { r.per_second }.to_string())
                .unwrap_or_default()
        };
        let page = GroupPage {
            layout: Layout::new(format!("Group {}", g.name), "groups", session),
            g: GroupData {
                href: group_href(&g.name),
                rate: rate_text(g.rate),
                aggregate: rate_text(g.aggregate),
                created: utc(g.created_at),
                rate_ps: num(g.rate, false),
                rate_burst: num(g.rate, true),
                agg_ps: num(g.aggregate, false),
                agg_burst: num(g.aggregate, true),
                members: g
                    .members
                    .iter()
                    .map(|m| (m.clone(), partner_href(m)))
                    .collect(),
                name: g.name,
            },
            audit: audit.entries.into_iter().map(audit_row).collect(),
        };
        Ok(html(StatusCode::OK, page.render()))
    }

    async fn audit_page(
        &self,
        session: &Current,
        query: &Form,
        peer: SocketAddr,
    ) -> Result<Resp, Fail> {
        let target = query.text("target");
        let limit = match query.text("limit") {
            None => 100,
            Some(l) => l
                .parse::<u32>()
                .map_err(|_| invalid("limit", format!("{l:?} is not a number")))?,
        };
        let admin = self.admin.clone();
        let rules = self.rules.clone();
        let actor = Actor::ui(peer);
        let t = target.clone();
        let audit = blocking(move || {
            match admin
                .handle(
                    Request::ListAudit {
                        target: t,
                        limit: Some(limit),
                    },
                    &rules,
                    &actor,
                )?
                .view
            {
                View::Audit(a) => Ok(a),
                _ => Err(unexpected()),
            }
        })
        .await?;
        let page = AuditPage {
            layout: Layout::new("Audit log", "audit", session),
            target: target.unwrap_or_default(),
            limit: limit.to_string(),
            entries: audit.entries.into_iter().map(audit_row).collect(),
        };
        Ok(html(StatusCode::OK, page.render()))
    }

    // === actions ===

    /// Runs one admin request as the dashboard's operator.
    async fn run(&self, request: Request, peer: SocketAddr) -> Result<super::Reply, Fail> {
        let admin = self.admin.clone();
        let rules = self.rules.clone();
        blocking(move || Ok(admin.handle(request, &rules, &Actor::ui(peer))?)).await
    }

    /// Leaves the outcome for the next page and sends the browser there.
    async fn after(&self, session: &Current, result: Result<String, Fail>, to: &str) -> Resp {
        let flash = match result {
            Ok(text) => Flash { ok: true, text },
            Err(e) => {
                let _ = e.status(); // logs database and internal errors
                Flash {
                    ok: false,
                    text: e.to_string(),
                }
            }
        };
        if let Err(e) = self.sessions.flash(session, flash).await {
            // The action is done; only its message is lost.
            tracing::warn!(error = %e, "dashboard: the outcome could not be kept for the next page");
        }
        redirect(to)
    }

    async fn action(
        &self,
        session: &Current,
        segs: &[&str],
        form: &Form,
        peer: SocketAddr,
    ) -> Resp {
        match segs {
            ["logout"] => {
                if let Err(e) = self.sessions.remove(session).await {
                    // Still logged in (everywhere): say so, and keep the cookie to try again.
                    return self.failure_page(session, &e.into());
                }
                tracing::info!(%peer, "dashboard: logged out");
                let mut r = redirect("/ui/login");
                r.headers_mut().append(
                    header::SET_COOKIE,
                    self.cookie_header(SESSION_COOKIE, "", 0, "/ui"),
                );
                r
            }
            ["partners"] => self.create_partner(session, form, peer).await,
            ["partners", id, "update"] => {
                let result = self.update_partner(id, form, peer).await;
                self.after(session, result, &format!("{}#details", partner_href(id)))
                    .await
            }
            ["partners", id, rest @ ..] => {
                let href = partner_href(id);
                let (request, anchor) = match partner_request(id, rest, form) {
                    Ok(Some(r)) => r,
                    Ok(None) => return self.not_found_action(session),
                    Err(e) => return self.after(session, Err(e), &href).await,
                };
                let to = format!("{href}#{anchor}");
                match self.run(request, peer).await {
                    Ok(reply) => match reply.view {
                        View::Rotated(r) => {
                            let label = if r.new_key.kind == "callback" {
                                "New callback key"
                            } else {
                                "New partner key"
                            };
                            let reveal = Reveal {
                                message: reply.message,
                                keys: vec![(label.to_owned(), r.key)],
                                partner_id: r.partner_id,
                            };
                            self.show_keys(session, reveal).await
                        }
                        _ => self.after(session, Ok(reply.message), &to).await,
                    },
                    Err(e) => self.after(session, Err(e), &to).await,
                }
            }
            ["groups"] => {
                let result = async {
                    let name = form.text("name").unwrap_or_default();
                    let create = CreateGroup {
                        rate: rate_input(form, "rate_ps", "rate_burst", "rate")?,
                        aggregate: rate_input(form, "agg_ps", "agg_burst", "aggregate")?,
                        name,
                    };
                    Ok(self.run(Request::CreateGroup(create), peer).await?.message)
                }
                .await;
                self.after(session, result, "/ui/groups").await
            }
            ["groups", name] => {
                let href = group_href(name);
                let result = self.update_group_rates(name, form, peer).await;
                self.after(session, result, &href).await
            }
            ["groups", name, "rename"] => {
                let new = form.text("name").unwrap_or_default();
                let request = Request::UpdateGroup {
                    group: (*name).to_owned(),
                    update: UpdateGroup {
                        name: Some(new.clone()),
                        rate: None,
                        aggregate: None,
                    },
                };
                match self.run(request, peer).await {
                    Ok(reply) => {
                        self.after(session, Ok(reply.message), &group_href(&new))
                            .await
                    }
                    Err(e) => self.after(session, Err(e), &group_href(name)).await,
                }
            }
            _ => self.not_found_action(session),
        }
    }

    /// Keeps new keys (sealed) for the reveal page and sends the browser there.
    async fn show_keys(&self, session: &Current, reveal: Reveal) -> Resp {
        let partner = reveal.partner_id.clone();
        match self.sessions.reveal(session, reveal).await {
            Ok(()) => redirect("/ui/reveal"),
            Err(e) => self.failure_page(
                session,
                &Fail::Internal(format!(
                    "{partner}: the change is done, but its new keys could not be kept to show \
                     you ({e}); rotate them on the partner's page"
                )),
            ),
        }
    }

    fn not_found_action(&self, session: &Current) -> Resp {
        self.failure_page(
            session,
            &Fail::Admin(AdminError::NotFound {
                what: "action",
                key: "at this address".into(),
            }),
        )
    }

    async fn create_partner(&self, session: &Current, form: &Form, peer: SocketAddr) -> Resp {
        let mut grants: Vec<String> = Vec::new();
        for g in form
            .all("grant")
            .into_iter()
            .map(str::to_owned)
            .chain(split_list(form.get("grant_other").unwrap_or("")))
        {
            if !grants.contains(&g) {
                grants.push(g);
            }
        }
        let values = NewValues {
            id: form.get("id").unwrap_or("").to_owned(),
            name: form.get("name").unwrap_or("").to_owned(),
            country: form.get("country").unwrap_or("").to_owned(),
            allow: form.get("allow").unwrap_or("").to_owned(),
            grant_other: form.get("grant_other").unwrap_or("").to_owned(),
            feature_defaults: form.get("feature_defaults").unwrap_or("").to_owned(),
        };
        let group = form.text("group").unwrap_or_default();
        let result = async {
            let create = CreatePartner {
                id: form.text("id"),
                name: form.get("name").unwrap_or("").trim().to_owned(),
                country: form.text("country"),
                group: form.text("group"),
                allow: split_list(form.get("allow").unwrap_or("")),
                grants: grants.clone(),
                feature_defaults: json_field(form, "feature_defaults")?,
            };
            self.run(Request::CreatePartner(create), peer).await
        }
        .await;
        match result {
            Ok(reply) => {
                let View::Created(c) = reply.view else {
                    return self.failure_page(session, &unexpected());
                };
                let reveal = Reveal {
                    message: reply.message,
                    keys: vec![
                        (
                            "Partner key (for the PartnerAuth header)".to_owned(),
                            c.api_key,
                        ),
                        (
                            "Callback key (the TSP presents it on callbacks)".to_owned(),
                            c.callback_key,
                        ),
                    ],
                    partner_id: c.partner_id,
                };
                self.show_keys(session, reveal).await
            }
            Err(e) => {
                let status = e.status();
                let groups = self.group_names().await.unwrap_or_default();
                self.new_partner_page(
                    session,
                    values,
                    &grants,
                    &group,
                    groups,
                    Some(e.to_string()),
                    status,
                )
            }
        }
    }

    /// Sends only the fields that differ from the stored partner (as `partner update` with the
    /// flags of the changed fields would): one change, one audit row.
    async fn update_partner(
        &self,
        id: &str,
        form: &Form,
        peer: SocketAddr,
    ) -> Result<String, Fail> {
        let sent_json = json_field(form, "feature_defaults")?;
        let admin = self.admin.clone();
        let rules = self.rules.clone();
        let partner = id.to_owned();
        let form = form.clone();
        blocking(move || {
            let actor = Actor::ui(peer);
            let View::Partner(now) = admin
                .handle(
                    Request::ShowPartner {
                        partner: partner.clone(),
                    },
                    &rules,
                    &actor,
                )?
                .view
            else {
                return Err(unexpected());
            };
            let diff = |current: &Option<String>, field: &str| -> Option<Option<String>> {
                let sent = normalize(form.get(field).unwrap_or(""));
                let sent = (!sent.is_empty()).then_some(sent);
                let current = current.as_deref().map(normalize).filter(|c| !c.is_empty());
                (sent != current).then_some(sent)
            };
            let name = form.get("name").unwrap_or("").trim().to_owned();
            let update = UpdatePartner {
                name: (name != now.name).then_some(name),
                contact: diff(&now.contact, "contact"),
                billing_rate: diff(&now.billing_rate, "billing_rate"),
                country: diff(&now.country, "country"),
                group: None,
                callback_url: diff(&now.callback_url, "callback_url"),
                callback_ca_pem: diff(&now.callback_ca_pem, "callback_ca_pem")
                    .map(|v| v.map(|pem| format!("{pem}\n"))),
                feature_defaults: (sent_json != now.feature_defaults).then_some(sent_json),
            };
            Ok(admin
                .handle(Request::UpdatePartner { partner, update }, &rules, &actor)?
                .message)
        })
        .await
    }

    async fn update_group_rates(
        &self,
        name: &str,
        form: &Form,
        peer: SocketAddr,
    ) -> Result<String, Fail> {
        let rate = rate_input(form, "rate_ps", "rate_burst", "rate")?;
        let aggregate = rate_input(form, "agg_ps", "agg_burst", "aggregate")?;
        let admin = self.admin.clone();
        let rules = self.rules.clone();
        let group = name.to_owned();
        blocking(move || {
            let current: GroupRecord = admin.store().group_detail(&group)?;
            let same = |stored: Option<Rate>, sent: Option<RateInput>| {
                let stored =
                    stored.map(|r| (u64::from(r.per_second.get()), u64::from(r.burst.get())));
                stored == sent.map(|r| (r.per_second, r.burst))
            };
            let update = UpdateGroup {
                name: None,
                rate: (!same(current.rate, rate)).then_some(rate),
                aggregate: (!same(current.aggregate, aggregate)).then_some(aggregate),
            };
            Ok(admin
                .handle(
                    Request::UpdateGroup { group, update },
                    &rules,
                    &Actor::ui(peer),
                )?
                .message)
        })
        .await
    }
}

fn domain_of(permission: &str) -> &str {
    permission.split_once('.').map_or(permission, |(d, _)| d)
}

/// Trims and turns CRLF (what browsers send for textareas) into LF.
fn normalize(s: &str) -> String {
    s.replace("\r\n", "\n").trim().to_owned()
}

/// Items separated by whitespace or commas.
fn split_list(s: &str) -> Vec<String> {
    s.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A JSON field: blank → `None`.
fn json_field(form: &Form, field: &'static str) -> Result<Option<serde_json::Value>, Fail> {
    match form.text(field) {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| invalid(field, format!("not valid JSON: {e}"))),
    }
}

/// A rate from two number fields: both blank → `None`.
fn rate_input(
    form: &Form,
    per_second: &str,
    burst: &str,
    field: &'static str,
) -> Result<Option<RateInput>, Fail> {
    let number = |name: &str, what: &str| -> Result<Option<u64>, Fail> {
        match form.text(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| invalid(field, format!("{what} must be a whole number, not {v:?}"))),
        }
    };
    match (
        number(per_second, "requests per second")?,
        number(burst, "burst")?,
    ) {
        (None, None) => Ok(None),
        (Some(per_second), Some(burst)) => Ok(Some(RateInput { per_second, burst })),
        _ => Err(invalid(
            field,
            "give both requests per second and burst, or neither",
        )),
    }
}

/// The admin request of a partner action (`/ui/partners/{id}/…`) and the page section to
/// return to; `Ok(None)`: no such action.
fn partner_request(
    id: &str,
    rest: &[&str],
    form: &Form,
) -> Result<Option<(Request, &'static str)>, Fail> {
    let partner = id.to_owned();
    let reason = || StatusInput {
        reason: form.text("reason"),
    };
    Ok(Some(match rest {
        ["suspend"] => (
            Request::Suspend {
                partner,
                input: reason(),
            },
            "lifecycle",
        ),
        ["reinstate"] => (
            Request::Reinstate {
                partner,
                input: reason(),
            },
            "lifecycle",
        ),
        ["offboard"] => {
            if form.get("confirm") != Some("yes") {
                return Err(invalid(
                    "confirm",
                    "tick \"I understand this cannot be undone\" to offboard",
                ));
            }
            (
                Request::Offboard {
                    partner,
                    input: reason(),
                },
                "lifecycle",
            )
        }
        ["keys", "rotate"] => (
            Request::RotateKey {
                partner,
                input: RotateInput {
                    kind: form.text("kind"),
                    overlap: form.text("overlap"),
                },
            },
            "keys",
        ),
        ["keys", "revoke"] => {
            let key_id = match form.text("id") {
                None => None,
                Some(v) => Some(
                    v.parse::<i64>()
                        .map_err(|_| invalid("id", format!("{v:?} is not a key id")))?,
                ),
            };
            (
                Request::RevokeKeys {
                    partner,
                    input: RevokeInput {
                        kind: if key_id.is_some() {
                            None
                        } else {
                            form.text("kind")
                        },
                        id: key_id,
                    },
                },
                "keys",
            )
        }
        ["allowlist"] => (
            Request::AddAllow {
                partner,
                cidr: form.text("cidr").unwrap_or_default(),
            },
            "allowlist",
        ),
        ["allowlist", "remove"] => (
            Request::RemoveAllow {
                partner,
                cidr: form.text("cidr").unwrap_or_default(),
            },
            "allowlist",
        ),
        ["grants", "add"] => (
            Request::AddGrant {
                partner,
                permission: form.text("permission").unwrap_or_default(),
            },
            "permissions",
        ),
        ["grants", "revoke"] => (
            Request::RevokeGrant {
                partner,
                permission: form.text("permission").unwrap_or_default(),
            },
            "permissions",
        ),
        ["group"] => (
            Request::AssignGroup {
                partner,
                group: form.text("group"),
            },
            "throttle",
        ),
        ["throttle"] => {
            let Some(rate) = rate_input(form, "per_second", "burst", "rate")? else {
                return Err(invalid(
                    "rate",
                    "give requests per second and burst (or clear the rate)",
                ));
            };
            (
                Request::PartnerThrottle {
                    partner,
                    rate: Some(rate),
                },
                "throttle",
            )
        }
        ["throttle", "clear"] => (
            Request::PartnerThrottle {
                partner,
                rate: None,
            },
            "throttle",
        ),
        _ => return Ok(None),
    }))
}

/// The partner page's data from the admin service's view.
fn partner_data(v: PartnerView, groups: &[GroupRecord]) -> PartnerData {
    let star = v.grants.iter().any(|g| g == "*");
    let mut matrix: Vec<MatrixDomain> = Vec::new();
    for op in Operation::ALL {
        let permission = op.permission();
        let wildcard = format!("{}.*", domain_of(permission));
        let wildcard_granted = v.grants.contains(&wildcard);
        let exact = v.grants.iter().any(|g| g == permission);
        let via = if exact {
            String::new()
        } else if wildcard_granted {
            wildcard.clone()
        } else if star {
            "*".to_owned()
        } else {
            String::new()
        };
        let o = MatrixOp {
            name: op.name(),
            permission,
            exact,
            via,
        };
        match matrix.iter_mut().find(|d| d.wildcard == wildcard) {
            Some(d) => d.ops.push(o),
            None => matrix.push(MatrixDomain {
                wildcard,
                wildcard_granted,
                all: star,
                ops: vec![o],
            }),
        }
    }
    let group = v
        .group
        .as_deref()
        .and_then(|g| groups.iter().find(|r| r.name == g));
    let rate_note = match (&v.rate, group) {
        (Some(_), _) => "The partner's own rate applies.".to_owned(),
        (None, Some(g)) if g.rate.is_some() => format!(
            "Group {}'s per-member rate applies: {}.",
            g.name,
            rate_text(g.rate)
        ),
        _ => "The gateway's default rate applies (throttle.default_rate_per_second).".to_owned(),
    } + &group
        .and_then(|g| g.aggregate.map(|a| (g, a)))
        .map(|(g, a)| {
            format!(
                " Group {} caps its members together at {}.",
                g.name,
                rate_text(Some(a))
            )
        })
        .unwrap_or_default();
    let features = match &v.feature_defaults {
        Some(serde_json::Value::Object(m)) => m
            .iter()
            .map(|(k, val)| (k.clone(), val.to_string()))
            .collect(),
        _ => Vec::new(),
    };
    let ca_note = v.callback_ca_pem.as_ref().map(|pem| {
        let certs = pem.matches("-----BEGIN CERTIFICATE-----").count();
        format!("{certs} certificate(s) (PEM); else the system roots")
    });
    PartnerData {
        id_query: encode(&v.partner_id),
        href: partner_href(&v.partner_id),
        name: v.name,
        status: v.status,
        active: v.status == "active",
        changeable: v.status != "offboarded",
        group: or_dash(v.group.as_deref()),
        country: or_dash(v.country.as_deref()),
        country_value: v.country.clone().unwrap_or_default(),
        contact: v.contact.clone().unwrap_or_default(),
        billing_rate: v.billing_rate.clone().unwrap_or_default(),
        callback_url: or_dash(v.callback_url.as_deref()),
        callback_url_value: v.callback_url.clone().unwrap_or_default(),
        callback_ca: ca_note.unwrap_or_else(|| "- (the system roots)".to_owned()),
        callback_ca_pem: v.callback_ca_pem.clone().unwrap_or_default(),
        feature_defaults: v
            .feature_defaults
            .as_ref()
            .and_then(|f| serde_json::to_string_pretty(f).ok())
            .unwrap_or_default(),
        features,
        rate: v.rate.map_or_else(
            || "none".to_owned(),
            |r| format!("{}/s, burst {}", r.per_second, r.burst),
        ),
        rate_note,
        rate_ps: v.rate.map(|r| r.per_second.to_string()).unwrap_or_default(),
        rate_burst: v.rate.map(|r| r.burst.to_string()).unwrap_or_default(),
        has_rate: v.rate.is_some(),
        keys: v
            .keys
            .iter()
            .rev()
            .map(|k| KeyRow {
                id: k.id,
                kind: k.kind,
                prefix: k.prefix.clone(),
                state: k.state,
                created: utc(k.created_at),
                expires: match k.revoked_at {
                    Some(at) => format!("revoked {}", utc(at)),
                    None => time(k.expires_at),
                },
                last_used: time(k.last_used_at),
                usable: matches!(k.state, "active" | "expiring"),
            })
            .collect(),
        has_star: star,
        allow: v.allow,
        grants: v.grants,
        matrix,
        created: utc(v.created_at),
        updated: utc(v.updated_at),
        id: v.partner_id,
    }
}
