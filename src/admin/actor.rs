//! Who runs an administrative operation: the name recorded in `audit_log.actor` and the role
//! [`super::role`] checks. Every actor but the command line's own user is an operator who
//! proved it (an API token, a dashboard session): the admin API and the dashboard have no
//! anonymous or shared identity any more.

use std::net::SocketAddr;

use crate::store::{OperatorIdentity, Role};

/// Where an operator acts from, for the audit row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The admin HTTP API, from this peer.
    Api(SocketAddr),
    /// The web dashboard, from this browser's address.
    Ui(SocketAddr),
    /// The command line with `--as` / `PARTNERGATE_OPERATOR_TOKEN`.
    Cli,
}

/// Who made a change, as recorded in `audit_log.actor`, and the role it acts with:
/// - `cli:<user>`: the command line without an operator token — the operating-system user,
///   with the admin role (whoever can run the binary against the database owns it anyway);
/// - `op:<name>/api:<peer>`, `op:<name>/ui:<peer>`, `op:<name>/cli:<user>`: an operator, by
///   its account name and where it acted from, with its role;
/// - `bootstrap/api:<peer>`: the shared admin token making the first admin (nothing else).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    name: String,
    role: Role,
    operator: Option<String>,
}

impl Actor {
    /// The CLI's operator: `cli:$USER` when `USER` is a plain user name; without one, the
    /// process's user name from `/etc/passwd` — so root is `cli:root` whether `USER` is set or
    /// not — and `cli:uid:<uid>` only for a uid without a (plain) passwd entry. Role admin.
    pub fn cli() -> Actor {
        Actor {
            name: format!("cli:{}", os_user()),
            role: Role::Admin,
            operator: None,
        }
    }

    /// An operator who proved its identity, acting from `via`.
    pub fn operator(who: &OperatorIdentity, via: Via) -> Actor {
        let place = match via {
            Via::Api(peer) => format!("api:{peer}"),
            Via::Ui(peer) => format!("ui:{peer}"),
            Via::Cli => format!("cli:{}", os_user()),
        };
        Actor {
            name: format!("op:{}/{place}", who.name),
            role: who.role,
            operator: Some(who.name.clone()),
        }
    }

    /// The shared admin token making the first admin operator (its only use).
    pub fn bootstrap(peer: SocketAddr) -> Actor {
        Actor {
            name: format!("bootstrap/api:{peer}"),
            role: Role::Viewer,
            operator: None,
        }
    }

    /// As stored.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The role it acts with.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The operator's account name, when it is one.
    pub fn operator_name(&self) -> Option<&str> {
        self.operator.as_deref()
    }
}

fn os_user() -> String {
    use std::os::unix::fs::MetadataExt as _;
    let uid = std::fs::metadata("/proc/self").ok().map(|m| m.uid());
    let passwd = std::fs::read_to_string("/etc/passwd").ok();
    os_user_from(std::env::var("USER").ok(), uid, passwd.as_deref())
}

fn os_user_from(user: Option<String>, uid: Option<u32>, passwd: Option<&str>) -> String {
    let plain = |u: &str| {
        !u.is_empty()
            && u.len() <= 64
            && u.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    if let Some(user) = user.filter(|u| plain(u)) {
        return user;
    }
    let Some(uid) = uid else {
        return "unknown".into();
    };
    // name:password:uid:…
    let name = passwd.and_then(|text| {
        text.lines().find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id = fields.nth(1)?;
            (id.parse::<u32>().ok() == Some(uid) && plain(name)).then(|| name.to_string())
        })
    });
    name.unwrap_or_else(|| format!("uid:{uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        odd name:x:1001:1001::/home/odd:/bin/sh\n";

    /// One identity per operating-system user: root is `root` with `USER=root` and without
    /// `USER`; `uid:N` only when passwd has no plain name.
    #[test]
    fn the_cli_user_is_the_same_with_and_without_user() {
        let with = os_user_from(Some("root".into()), Some(0), Some(PASSWD));
        let without = os_user_from(None, Some(0), Some(PASSWD));
        assert_eq!(with, "root");
        assert_eq!(without, with);
        assert_eq!(
            os_user_from(Some("a b".into()), Some(1), Some(PASSWD)),
            "daemon"
        );
        assert_eq!(os_user_from(None, Some(1001), Some(PASSWD)), "uid:1001");
        assert_eq!(os_user_from(None, Some(4242), Some(PASSWD)), "uid:4242");
        assert_eq!(os_user_from(None, Some(0), None), "uid:0");
        assert_eq!(os_user_from(None, None, None), "unknown");
        assert_eq!(
            os_user_from(Some("tester".into()), Some(0), Some(PASSWD)),
            "tester"
        );
    }

    #[test]
    fn operators_are_named_with_where_they_acted_from() {
        let alice = OperatorIdentity {
            id: 1,
            name: "alice".into(),
            role: Role::Viewer,
        };
        let peer = SocketAddr::from(([127, 0, 0, 1], 4000));
        let a = Actor::operator(&alice, Via::Api(peer));
        assert_eq!(a.as_str(), "op:alice/api:127.0.0.1:4000");
        assert_eq!(a.role(), Role::Viewer);
        assert_eq!(a.operator_name(), Some("alice"));
        assert_eq!(
            Actor::operator(&alice, Via::Ui(peer)).as_str(),
            "op:alice/ui:127.0.0.1:4000"
        );
        assert!(Actor::operator(&alice, Via::Cli)
            .as_str()
            .starts_with("op:alice/cli:"));
        assert_eq!(Actor::cli().role(), Role::Admin);
        assert_eq!(
            Actor::bootstrap(peer).as_str(),
            "bootstrap/api:127.0.0.1:4000"
        );
    }
}
