//! What every page and action answers with: the failures and their HTTP status ([`Fail`]), the
//! HTML, plain-text, redirect and static-file responses, the error page, the layout every page
//! shares (title, navigation, CSRF token, flash message) and the small text helpers the pages
//! use (links, times, rates). The router, the pages and the actions use it; it uses none of
//! them (only the sessions' types, the form encoder and the admin service's error).

use askama::Template;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use super::form::encode;
use super::session::{Current, Flash, SessionError};
use crate::admin::text::utc;
use crate::admin::AdminError;
use crate::store::{Rate, Role};

pub(super) type Resp = Response<Full<Bytes>>;

// === failures ===

/// Why a page or action failed.
#[derive(Debug)]
pub(super) enum Fail {
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
    pub(super) fn status(&self) -> StatusCode {
        match self {
            Fail::Admin(AdminError::Invalid { .. }) => StatusCode::BAD_REQUEST,
            Fail::Admin(AdminError::NotFound { .. }) => StatusCode::NOT_FOUND,
            Fail::Admin(AdminError::Conflict(_)) => StatusCode::CONFLICT,
            Fail::Admin(AdminError::Forbidden { .. }) => StatusCode::FORBIDDEN,
            Fail::Admin(AdminError::Internal(e)) => {
                tracing::warn!(error = %e, "dashboard: internal error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
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

pub(super) fn invalid(field: &'static str, reason: impl Into<String>) -> Fail {
    Fail::Admin(AdminError::Invalid {
        field,
        reason: reason.into(),
    })
}

pub(super) fn unexpected() -> Fail {
    Fail::Internal("the admin service answered with an unexpected view".into())
}

/// Runs blocking database work off the async threads.
pub(super) async fn blocking<T, F>(f: F) -> Result<T, Fail>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Fail> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Fail::Internal(format!("task failed: {e}")))?
}

// === view models ===

pub(super) struct NavItem {
    pub(super) href: &'static str,
    pub(super) label: &'static str,
    pub(super) current: bool,
}

pub(super) struct Layout {
    pub(super) title: String,
    pub(super) logged_in: bool,
    pub(super) nav: Vec<NavItem>,
    pub(super) csrf: String,
    pub(super) flash: Option<Flash>,
    /// The logged-in operator's name and role (shown in the header).
    pub(super) operator: String,
    pub(super) role: &'static str,
    /// Whether the forms that change partners, keys, allowlists, grants and throttles are
    /// shown (role operator or admin); the service refuses the change anyway (403).
    pub(super) can_change: bool,
    /// Whether the forms only an admin may use are shown (groups, operators).
    pub(super) is_admin: bool,
}

impl Layout {
    pub(super) fn new(title: impl Into<String>, current: &str, session: &Current) -> Layout {
        let items = [
            ("/ui/partners", "Partners", "partners"),
            ("/ui/enrollments", "Enrollments", "enrollments"),
            ("/ui/groups", "Groups", "groups"),
            ("/ui/usage", "Usage", "usage"),
            ("/ui/audit", "Audit log", "audit"),
            ("/ui/nodes", "Nodes", "nodes"),
            ("/ui/operators", "Operators", "operators"),
        ];
        let role = session.operator.role;
        let is_admin = role >= Role::Admin;
        Layout {
            title: title.into(),
            logged_in: true,
            nav: items
                .iter()
                .filter(|(_, _, key)| is_admin || *key != "operators")
                .map(|(href, label, key)| NavItem {
                    href,
                    label,
                    current: *key == current,
                })
                .collect(),
            csrf: session.csrf.clone(),
            flash: session.flash.clone().map(|f| Flash {
                text: sentence(&f.text),
                ..f
            }),
            operator: session.operator.name.clone(),
            role: role.as_str(),
            can_change: role >= Role::Operator,
            is_admin,
        }
    }

    pub(super) fn anonymous(title: &str) -> Layout {
        Layout {
            title: title.to_owned(),
            logged_in: false,
            nav: Vec::new(),
            csrf: String::new(),
            flash: None,
            operator: String::new(),
            role: "",
            can_change: false,
            is_admin: false,
        }
    }
}

pub(super) struct Choice {
    pub(super) value: String,
    pub(super) label: String,
    pub(super) selected: bool,
}

pub(super) fn choice(value: &str, label: &str, selected: bool) -> Choice {
    Choice {
        value: value.to_owned(),
        label: label.to_owned(),
        selected,
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub(super) struct ErrorPage {
    pub(super) layout: Layout,
    pub(super) heading: String,
    pub(super) message: String,
    pub(super) back: String,
    pub(super) back_label: String,
}

// === helpers ===

pub(super) fn partner_href(id: &str) -> String {
    format!("/ui/partners/{}", encode(id))
}

pub(super) fn group_href(name: &str) -> String {
    format!("/ui/groups/{}", encode(name))
}

/// `text` in sentence case: its first letter upper case (the admin service's messages start
/// in lower case, as log lines do: `partner PARTNER-0005 created`).
pub(super) fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

pub(super) fn time(ts: Option<i64>) -> String {
    ts.map_or_else(|| "-".to_owned(), utc)
}

pub(super) fn or_dash(v: Option<&str>) -> String {
    v.unwrap_or("-").to_owned()
}

pub(super) fn rate_text(r: Option<Rate>) -> String {
    r.map_or_else(
        || "-".to_owned(),
        |r| format!("{}/s, burst {}", r.per_second, r.burst),
    )
}

pub(super) fn html(status: StatusCode, body: Result<String, askama::Error>) -> Resp {
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

pub(super) fn plain(status: StatusCode, text: &'static str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

pub(super) fn redirect(location: &str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

pub(super) fn asset(body: &'static str, content_type: &'static str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The error page for a failed page or action, with the failure's status.
pub(super) fn failure_page(session: &Current, e: &Fail) -> Resp {
    let status = e.status();
    let page = ErrorPage {
        layout: Layout::new("Error", "", session),
        heading: match status {
            StatusCode::NOT_FOUND => "Not found".into(),
            StatusCode::BAD_REQUEST => "Not accepted".into(),
            StatusCode::FORBIDDEN => "Not allowed".into(),
            _ => "Something went wrong".into(),
        },
        message: e.to_string(),
        back: "/ui/partners".into(),
        back_label: "Partners".into(),
    };
    html(status, page.render())
}

#[cfg(test)]
mod tests {
    use super::sentence;

    #[test]
    fn messages_start_in_upper_case() {
        assert_eq!(
            sentence("partner PARTNER-0005 created"),
            "Partner PARTNER-0005 created"
        );
        assert_eq!(sentence("ünknown"), "Ünknown");
        assert_eq!(sentence("Already"), "Already");
        assert_eq!(sentence(""), "");
    }
}
