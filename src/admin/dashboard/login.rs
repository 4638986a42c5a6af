//! Logging in and out: the login form (a double-submit CSRF cookie), the exchange of the admin
//! token, posted in the form body, for a session cookie, and the logout that ends the session
//! on every node.

use std::net::SocketAddr;
use std::time::Duration;

use askama::Template;
use http::request::Parts;
use http::{header, HeaderValue, StatusCode};
use hyper::body::Incoming;

use super::form::cookie;
use super::response::{failure_page, html, redirect, Layout, Resp};
use super::session::{self, Current, LOGIN_COOKIE, SESSION_COOKIE};
use super::Dashboard;

/// A refused login answers after this long (a token has at least 24 characters, so this only
/// keeps a misbehaving client from spinning).
const LOGIN_FAILURE_DELAY: Duration = Duration::from_millis(250);

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
        let secure = if self.cookie_secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=1; Max-Age=0"))
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
