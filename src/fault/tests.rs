//! Unit tests of `fault` (beside the module, in their own file).
use super::*;
use crate::decode::{self, DecodeLimits};
use crate::envelope;
use crate::forward::UpstreamFault;
use crate::rejection::ActionError;

const RID: &str = "gw-1";

/// The semantic statuses for both SOAP versions.
const SEMANTIC: StatusModes = StatusModes {
    soap11: Soap11Status::Semantic,
    soap12: Soap12Status::Semantic,
};

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Texts a refusal may quote: every character XML 1.0 forbids that a Rust string can hold
/// (C0 controls, U+FFFE, U+FFFF), C1 controls and DEL, markup, the CDATA end, and length.
fn hostile_quotes() -> Vec<String> {
    let controls: String = ('\u{0}'..='\u{1F}').collect();
    vec![
        "</a\u{FFFF}b>".to_string(),
        "\u{FFFF}".to_string(),
        "\u{FFFE}x\u{FFFF}".to_string(),
        controls.clone(),
        format!("a{controls}b"),
        "\u{7F}\u{80}\u{85}\u{9F}".to_string(),
        "]]>".to_string(),
        "]]]]>>]]>".to_string(),
        "<x:y a=\"1\">&amp;&lt;&#0;&#xFFFF;</x:y>".to_string(),
        "& < > \" '".to_string(),
        format!("{}]]>\u{FFFF}", "]".repeat(498)),
        "x".repeat(100_000),
        "\u{FFFF}".repeat(5_000),
        format!("{}\u{FFFF}", "é".repeat(600)),
        " \t\r\n".to_string(),
        String::new(),
    ]
}

/// Every rejection that can carry a text, with `q` in every text, and every other variant.
pub(super) fn rejections(q: &str) -> Vec<Rejection> {
    use crate::allowlist::AllowError;
    use crate::authorize::AuthorizeError;
    use crate::decode::{DecodeError, Rule};
    use crate::envelope::EnvelopeError as E;
    use crate::limit::LimitError as L;
    use crate::store::PartnerStatus;
    use crate::throttle::{Scope, Throttled};
    use crate::transport::TransportError as T;
    let s = || q.to_string();
    let mut all = vec![
        Rejection::Transport(T::ContentType(s())),
        Rejection::Transport(T::VersionConflict),
        Rejection::Transport(T::DuplicateAction),
        Rejection::Transport(T::ContentEncoding(s())),
        Rejection::Route(crate::rejection::RouteError::NotFound),
        Rejection::Route(crate::rejection::RouteError::MethodNotAllowed {
            allow: "GET, PATCH",
        }),
        Rejection::Route(crate::rejection::RouteError::UnsupportedMediaType(s())),
        Rejection::Route(crate::rejection::RouteError::UnexpectedBody),
        Rejection::Limit(L::BodyTooLarge { limit: 1 }),
        Rejection::Limit(L::BodyTimeout(std::time::Duration::from_millis(1))),
        Rejection::Limit(L::BodyRead(s())),
        Rejection::Limit(L::BodyTooSlow {
            bytes_per_second: 512,
            window: std::time::Duration::from_secs(5),
        }),
        Rejection::Limit(L::NotUtf8),
        Rejection::Limit(L::DocumentStart),
        Rejection::Limit(L::Doctype),
        Rejection::Limit(L::ProcessingInstruction),
        Rejection::Limit(L::Malformed(s())),
        Rejection::Limit(L::Xml {
            what: "max_depth",
            limit: 1,
        }),
        Rejection::Envelope(E::Malformed(s())),
        Rejection::Envelope(E::Encoding),
        Rejection::Envelope(E::Doctype),
        Rejection::Envelope(E::ProcessingInstruction),
        Rejection::Envelope(E::NotAnEnvelope),
        Rejection::Envelope(E::VersionMismatch),
        Rejection::Envelope(E::UnexpectedElement(s())),
        Rejection::Envelope(E::NoBody),
        Rejection::Envelope(E::EmptyBody),
        Rejection::Envelope(E::MultipleBodyElements),
        Rejection::Envelope(E::Unqualified(s())),
        Rejection::Envelope(E::AttributeNotAllowed(s())),
        Rejection::Envelope(E::TextNotAllowed("Body")),
        Rejection::Envelope(E::TrailingContent),
        Rejection::Action(ActionError {
            action: s(),
            body: "GetAccount",
        }),
        Rejection::Auth(AuthError::Missing),
        Rejection::Auth(AuthError::Duplicate),
        Rejection::Auth(AuthError::Malformed(s())),
        Rejection::Auth(AuthError::UnknownPartner { claimed: s() }),
        Rejection::Auth(AuthError::WrongKey { claimed: s() }),
        Rejection::Auth(AuthError::Suspended {
            claimed: s(),
            status: PartnerStatus::Suspended,
        }),
        Rejection::Auth(AuthError::MustUnderstand(s())),
        Rejection::Allow(AllowError::NotAllowed([192, 0, 2, 1].into())),
        Rejection::Allow(AllowError::BadForwardingHeader),
        Rejection::ClientCert(crate::client_cert::ClientCertError::Missing),
        Rejection::ClientCert(crate::client_cert::ClientCertError::NotRegistered(s())),
        Rejection::Authorize(AuthorizeError {
            permission: "accounts.get",
        }),
        Rejection::Throttle(Throttled {
            scope: Scope::Group,
            per_second: 3,
            retry_after: std::time::Duration::from_millis(1500),
        }),
        Rejection::InFlight(crate::throttle::TooManyInFlight { limit: 2 }),
        Rejection::Forward(ForwardError::Unconfigured),
        Rejection::Forward(ForwardError::Connect(s())),
        Rejection::Forward(ForwardError::Timeout(std::time::Duration::from_secs(1))),
        Rejection::Forward(ForwardError::Status(599)),
        Rejection::Forward(ForwardError::TooLarge(1)),
        Rejection::Forward(ForwardError::Invalid(s())),
        Rejection::Forward(ForwardError::Encode(s())),
    ];
    for rule in [Rule::Pattern, Rule::InvalidCharacter, Rule::Malformed] {
        all.push(Rejection::Decode(DecodeError {
            path: s(),
            rule,
            detail: s(),
        }));
        all.push(Rejection::Decode(DecodeError {
            path: format!("/GetAccount/{q}"),
            rule,
            detail: s(),
        }));
    }
    // A new stage does not compile until it is added above.
    for r in &all {
        match r {
            Rejection::Transport(_)
            | Rejection::Route(_)
            | Rejection::Limit(_)
            | Rejection::Envelope(_)
            | Rejection::Action(_)
            | Rejection::Auth(_)
            | Rejection::ClientCert(_)
            | Rejection::Allow(_)
            | Rejection::Authorize(_)
            | Rejection::Throttle(_)
            | Rejection::InFlight(_)
            | Rejection::Decode(_)
            | Rejection::Forward(_) => {}
        }
    }
    all
}

/// The whole fault is well-formed XML 1.0 (every character allowed, quick-xml reads it to
/// the end with end names and comments checked, one root), a SOAP fault of `version` that
/// the envelope scan and the fault parser accept, with a typed detail that decodes strictly.
/// Returns the reason and the detail.
fn assert_well_formed(
    body: &[u8],
    version: SoapVersion,
    what: &str,
) -> (String, Option<FaultDetail>) {
    let (_, reason, detail) = assert_well_formed_fault(body, version, what);
    (reason, detail)
}

fn assert_well_formed_fault(
    body: &[u8],
    version: SoapVersion,
    what: &str,
) -> (FaultCode, String, Option<FaultDetail>) {
    let text = std::str::from_utf8(body).unwrap_or_else(|e| panic!("{what}: not UTF-8: {e}"));
    if let Some(c) = text.chars().find(|c| !is_xml_char(*c)) {
        panic!("{what}: U+{:04X} in the fault: {text:?}", u32::from(c));
    }
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    reader.config_mut().check_comments = true;
    let (mut depth, mut roots) = (0usize, 0usize);
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(s)) => {
                roots += usize::from(depth == 0);
                depth += 1;
                for a in s.attributes().with_checks(true) {
                    let a = a.unwrap_or_else(|e| panic!("{what}: attribute: {e}"));
                    a.decode_and_unescape_value(reader.decoder())
                        .unwrap_or_else(|e| panic!("{what}: attribute value: {e}"));
                }
            }
            Ok(quick_xml::events::Event::End(_)) => depth -= 1,
            Ok(quick_xml::events::Event::Empty(_)) => roots += usize::from(depth == 0),
            Ok(quick_xml::events::Event::Text(t)) => {
                t.decode().unwrap_or_else(|e| panic!("{what}: text: {e}"));
            }
            Ok(quick_xml::events::Event::GeneralRef(r)) => {
                let name = r.decode().unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(
                    matches!(&*name, "lt" | "gt" | "amp" | "quot" | "apos")
                        || r.resolve_char_ref().ok().flatten().is_some_and(is_xml_char),
                    "{what}: reference &{name};"
                );
            }
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(quick_xml::events::Event::CData(_) | quick_xml::events::Event::Decl(_)) => {}
            Ok(other) => panic!("{what}: unexpected {other:?}"),
            Err(e) => panic!("{what}: not well-formed ({e}): {text:?}"),
        }
    }
    assert_eq!((depth, roots), (0, 1), "{what}: {text:?}");
    let env = envelope::scan(body).unwrap_or_else(|e| panic!("{what}: scan: {e}"));
    assert_eq!(env.version, version, "{what}");
    let fault = envelope::parse_fault(&env).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        fault.reason.ends_with(&format!(" (request {RID})")),
        "{what}: {}",
        fault.reason
    );
    assert!(
        fault.reason.chars().count() <= FAULT_TEXT_CHARS + 20,
        "{what}: a reason of {} characters",
        fault.reason.chars().count()
    );
    let detail = fault.detail.as_ref().map(|d| {
        decode::partner_fault(d, DecodeLimits::default())
            .unwrap_or_else(|e| panic!("{what}: the detail does not decode ({e}): {text:?}"))
    });
    (fault.code, fault.reason.to_string(), detail)
}

/// Found by the `pipeline` fuzz target (`fuzz/regressions/pipeline/u-ffff-in-an-end-tag`):
/// a body holding `</a\u{FFFF}b>` got a fault quoting quick-xml's error text with the raw
/// U+FFFF, which no XML parser accepts. Every rule's error, quoting anything, renders as a
/// well-formed fault that keeps its typed detail, in both SOAP versions and status modes.
#[test]
fn every_rejection_quoting_hostile_text_renders_a_well_formed_fault() {
    let mut rendered = 0;
    for q in hostile_quotes() {
        for rejection in rejections(&q) {
            let with_detail = !matches!(
                rejection,
                Rejection::Envelope(crate::envelope::EnvelopeError::VersionMismatch)
                    | Rejection::Auth(AuthError::MustUnderstand(_))
            );
            for version in [SoapVersion::Soap11, SoapVersion::Soap12] {
                for mode in [StatusModes::default(), SEMANTIC] {
                    let f = render(&rejection, version, RID, mode);
                    let what = format!("{} {version:?} {q:?}", rejection.stage());
                    let (_, detail) = assert_well_formed(&f.body, version, &what);
                    assert_eq!(detail.is_some(), with_detail, "{what}");
                    rendered += 1;
                }
            }
        }
    }
    assert!(rendered > 3000, "{rendered}");
}

/// The quoted text itself: what the partner reads of `</a\u{FFFF}b>` and the rest.
#[test]
fn the_sanitiser_keeps_one_line_of_xml_characters() {
    assert_eq!(
        sanitize("</a\u{FFFF}b>", 500).as_deref(),
        Some("</a\u{FFFD}b>")
    );
    assert_eq!(
        sanitize("a\u{0}b\u{1F}c\u{7F}d\u{85}e\u{FFFE}f", 500).as_deref(),
        Some("a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{FFFD}e\u{FFFD}f")
    );
    assert_eq!(sanitize("a\tb\r\nc", 500).as_deref(), Some("a b  c"));
    assert_eq!(sanitize("x]]>y]]]>z", 500).as_deref(), Some("x]] >y]]] >z"));
    assert_eq!(sanitize(" \t\r\n", 500), None);
    assert_eq!(sanitize("", 500), None);
    assert_eq!(sanitize(&"é".repeat(600), 500), Some("é".repeat(500)));
    // The CDATA end cut in the middle stays harmless, and the cap holds with it.
    assert_eq!(sanitize("ab]]>", 4).as_deref(), Some("ab]]"));
    assert_eq!(sanitize("a]]>", 4).as_deref(), Some("a]]"));
    assert_eq!(log_text(&"x".repeat(1000)).len(), LOG_TEXT_CHARS);
    assert_eq!(log_text("\u{0}"), "\u{FFFD}");
    assert_eq!(log_text(""), "-");
}

/// The fuzz target's input, through the limits pass: quick-xml's error quotes the end tag
/// with its U+FFFF; the partner reads U+FFFD in its place.
#[test]
fn a_forbidden_character_in_an_end_tag_is_quoted_as_a_replacement_character() {
    let doc = "<soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\">\
        <soap:Body><a>x</a\u{FFFF}b></soap:Body></soap:Envelope>";
    let e = crate::limit::check_xml(doc.as_bytes(), &crate::config::XmlLimits::default())
        .expect_err("malformed");
    assert!(e.to_string().contains('\u{FFFF}'), "{e}");
    let f = render(
        &Rejection::Limit(e),
        SoapVersion::Soap12,
        RID,
        StatusModes::default(),
    );
    let (reason, detail) = assert_well_formed(&f.body, SoapVersion::Soap12, "end tag");
    let expected =
        "not well-formed XML: ill-formed document: expected `</a>`, but `</a\u{FFFD}b>` was found (malformed)";
    assert_eq!(
        reason,
        format!("Invalid Request: {expected} (request {RID})")
    );
    match detail {
        Some(FaultDetail::InvalidRequest(d)) => {
            assert_eq!(
                (d.path.as_str(), d.rule.as_str(), d.message.as_str()),
                ("/", "malformed", expected)
            );
        }
        other => panic!("{other:?}"),
    }
}

/// What a partner API layer's fault may say (issue 14: an Oracle error with a password).
const SECRET: &str =
    "java.sql.SQLException: ORA-01017 at db-int-7.corp.local:1521 user=prov_admin password=hunter2";

/// No piece of the upstream's text is in the fault.
fn assert_no_upstream_text(body: &[u8], what: &str) {
    let text = String::from_utf8_lossy(body);
    for piece in SECRET
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| p.len() >= 4)
        .chain(["gw-upstream-1"])
    {
        assert!(!text.contains(piece), "{what}: {piece:?} in {text}");
    }
}

fn secret_message() -> cmn::FaultMessage {
    cmn::FaultMessage::new(SECRET.into()).expect("a valid FaultMessage")
}

fn upstream_rid() -> cmn::GatewayRequestId {
    cmn::GatewayRequestId::new("gw-upstream-1".into()).expect("valid")
}

fn own_rid() -> cmn::GatewayRequestId {
    cmn::GatewayRequestId::new(RID.into()).expect("valid")
}

#[test]
fn an_upstream_fault_without_detail_becomes_our_upstream_unavailable() {
    for code in [FaultCode::Sender, FaultCode::Receiver] {
        let fault = UpstreamFault {
            code,
            reason: format!("{SECRET}\u{FFFF}\n\tat oracle.jdbc.driver"),
            detail: None,
        };
        for version in [SoapVersion::Soap11, SoapVersion::Soap12] {
            let f = render_upstream(&fault, version, RID, SEMANTIC);
            assert_eq!(
                (f.status, f.outcome, f.retry_after),
                (StatusCode::BAD_GATEWAY, "upstream-fault", None)
            );
            let (code, reason, detail) = assert_well_formed_fault(&f.body, version, "no detail");
            assert_eq!(code, FaultCode::Receiver);
            assert_eq!(
                reason,
                "Upstream Unavailable: the partner API could not serve the request (request gw-1)"
            );
            assert_eq!(
                detail,
                Some(FaultDetail::UpstreamUnavailable(Box::new(
                    cmn::UpstreamUnavailableFault {
                        message: message("the partner API could not serve the request"),
                        request_id: own_rid(),
                    }
                )))
            );
            assert_no_upstream_text(&f.body, "no detail");
        }
    }
}

/// Every contract fault of the upstream: its kind, status and typed fields, the gateway's
/// request id, and the gateway's own faultstring and `Message` — nothing of the upstream's.
#[test]
fn typed_upstream_faults_keep_their_typed_fields_and_get_our_texts() {
    use cmn::{AccessDeniedReason as A, ConflictReason as C, NotFoundEntity as E};
    let path = |p: &str| cmn::FaultPath::new(p.into()).expect("valid");
    let rule = cmn::ValidationRule::new("pattern".into()).expect("valid");
    let invalid = |p: &str, own: bool| {
        FaultDetail::InvalidRequest(Box::new(cmn::InvalidRequestFault {
            path: path(p),
            rule: rule.clone(),
            message: if own {
                message("The partner API refused the request: see Path and Rule.")
            } else {
                secret_message()
            },
            request_id: if own { own_rid() } else { upstream_rid() },
        }))
    };
    // (upstream detail, SOAP 1.2 status, outcome, Retry-After, reason, detail the partner gets)
    let cases = vec![
        (
            FaultDetail::NotFound(Box::new(cmn::NotFoundFault {
                entity: E::Device,
                message: secret_message(),
                request_id: upstream_rid(),
            })),
            404,
            "upstream-not-found",
            None,
            "Not Found: device",
            FaultDetail::NotFound(Box::new(cmn::NotFoundFault {
                entity: E::Device,
                message: message("The device does not exist or is not visible to this partner."),
                request_id: own_rid(),
            })),
        ),
        (
            FaultDetail::Conflict(Box::new(cmn::ConflictFault {
                reason: C::MacAddressInUse,
                message: secret_message(),
                request_id: upstream_rid(),
            })),
            409,
            "upstream-conflict",
            None,
            "Conflict: mac-address-in-use",
            FaultDetail::Conflict(Box::new(cmn::ConflictFault {
                reason: C::MacAddressInUse,
                message: message("The MAC address is registered elsewhere."),
                request_id: own_rid(),
            })),
        ),
        (
            invalid("/AddDevice/Device/MacAddress", false),
            400,
            "upstream-invalid-request",
            None,
            "Invalid Request: the partner API refused the request",
            invalid("/AddDevice/Device/MacAddress", true),
        ),
        (
            invalid(SECRET, false),
            400,
            "upstream-invalid-request",
            None,
            "Invalid Request: the partner API refused the request",
            invalid("/", true),
        ),
        (
            FaultDetail::Throttled(Box::new(cmn::ThrottledFault {
                retry_after_seconds: 30,
                message: secret_message(),
                request_id: upstream_rid(),
            })),
            429,
            "upstream-throttled",
            Some(30),
            "Throttled: the partner API is busy",
            FaultDetail::Throttled(Box::new(cmn::ThrottledFault {
                retry_after_seconds: 30,
                message: message("The partner API is busy: retry after 30 seconds."),
                request_id: own_rid(),
            })),
        ),
        (
            FaultDetail::AccessDenied(Box::new(cmn::AccessDeniedFault {
                reason: A::SourceNotAllowed,
                message: secret_message(),
                request_id: upstream_rid(),
            })),
            403,
            "upstream-access-denied",
            None,
            "Access Denied: caller not on allowlist",
            FaultDetail::AccessDenied(Box::new(cmn::AccessDeniedFault {
                reason: A::SourceNotAllowed,
                message: message("Access denied: caller not on allowlist."),
                request_id: own_rid(),
            })),
        ),
        (
            FaultDetail::UpstreamUnavailable(Box::new(cmn::UpstreamUnavailableFault {
                message: secret_message(),
                request_id: upstream_rid(),
            })),
            502,
            "upstream-fault",
            None,
            "Upstream Unavailable: the partner API could not serve the request",
            FaultDetail::UpstreamUnavailable(Box::new(cmn::UpstreamUnavailableFault {
                message: message("the partner API could not serve the request"),
                request_id: own_rid(),
            })),
        ),
    ];
    for (upstream, status, outcome, retry_after, reason, expected) in cases {
        let fault = UpstreamFault {
            code: FaultCode::Sender,
            reason: format!("{SECRET}\u{FFFF}"),
            detail: Some(upstream),
        };
        for version in [SoapVersion::Soap11, SoapVersion::Soap12] {
            let f = render_upstream(&fault, version, RID, SEMANTIC);
            assert_eq!(
                (f.status.as_u16(), f.outcome, f.retry_after),
                (status, outcome, retry_after),
                "{reason}"
            );
            let (code, got_reason, detail) = assert_well_formed_fault(&f.body, version, reason);
            assert_eq!(code, FaultCode::Sender);
            assert_eq!(got_reason, format!("{reason} (request gw-1)"));
            assert_eq!(detail.as_ref(), Some(&expected));
            assert_no_upstream_text(&f.body, reason);
        }
    }
}

/// Captures what a tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

fn log_of(f: impl FnOnce()) -> String {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = captured.0.lock().expect("log buffer").clone();
    String::from_utf8(bytes).expect("UTF-8 log")
}

/// The upstream's texts go to the log, with the request id: one line, sanitised, at most
/// LOG_TEXT_CHARS characters each.
#[test]
fn the_upstream_texts_are_logged_cut_and_on_one_line() {
    let long = format!("{SECRET}\n\tat\u{0}\u{FFFF} {}TAIL", "x".repeat(300));
    let fault = UpstreamFault {
        code: FaultCode::Receiver,
        reason: long.clone(),
        detail: None,
    };
    let log = log_of(|| {
        render_upstream(&fault, SoapVersion::Soap11, RID, StatusModes::default());
    });
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(log.contains(" WARN "), "{log}");
    assert!(log.contains("request_id=\"gw-1\""), "{log}");
    let cut = log_text(&long);
    assert_eq!(cut.chars().count(), LOG_TEXT_CHARS);
    assert!(
        cut.starts_with(&format!("{SECRET}  at\u{FFFD}\u{FFFD} xxx")),
        "{cut}"
    );
    // Quoted (Debug): text from outside cannot pose as further fields of the line.
    assert!(
        log.ends_with(&format!("upstream_reason={cut:?}\n")),
        "{log}"
    );
    assert!(!log.contains("TAIL"), "{log}");

    let fault = UpstreamFault {
        code: FaultCode::Sender,
        reason: "Not Found: account".into(),
        detail: Some(FaultDetail::NotFound(Box::new(cmn::NotFoundFault {
            entity: cmn::NotFoundEntity::Account,
            message: secret_message(),
            request_id: upstream_rid(),
        }))),
    };
    let log = log_of(|| {
        render_upstream(&fault, SoapVersion::Soap12, RID, StatusModes::default());
    });
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(log.contains(" INFO "), "{log}");
    assert!(log.contains("request_id=\"gw-1\""), "{log}");
    assert!(
        log.contains("upstream_reason=\"Not Found: account\" "),
        "{log}"
    );
    assert!(
        log.contains(&format!("upstream_message={:?} ", SECRET)),
        "{log}"
    );
}

#[test]
fn only_element_paths_of_an_upstream_are_passed_on() {
    for ok in [
        "/",
        "/GetAccount",
        "/AddDevice/Device/MacAddress",
        "/A/B[2]/_c-d.e",
    ] {
        assert!(is_element_path(ok), "{ok}");
    }
    for no in [
        "",
        "GetAccount",
        "//",
        "/a/",
        "/a b",
        "/1a",
        "/a[x]",
        "/a[]",
        "/a[1]b",
        "/password=hunter2",
        "/ORA-01017 at db",
        "/a/\u{e9}",
    ] {
        assert!(!is_element_path(no), "{no}");
    }
}

/// The standalone partner API layer answers the gateway with its own texts (the gateway
/// keeps them out of the partner's fault and logs them), sanitised like every fault text.
#[test]
fn the_layers_own_fault_keeps_its_texts() {
    let fault = UpstreamFault {
        code: FaultCode::Sender,
        reason: "Not Found: account: Account ACC-0000009999 does not exist.\u{FFFF}".into(),
        detail: Some(FaultDetail::NotFound(Box::new(cmn::NotFoundFault {
            entity: cmn::NotFoundEntity::Account,
            message: message("Account ACC-0000009999 does not exist."),
            request_id: upstream_rid(),
        }))),
    };
    let f = render_layer_fault(&fault, SoapVersion::Soap11, RID, StatusModes::default());
    assert_eq!(f.status, StatusCode::INTERNAL_SERVER_ERROR);
    let (reason, detail) = assert_well_formed(&f.body, SoapVersion::Soap11, "layer");
    assert_eq!(
        reason,
        "Not Found: account: Account ACC-0000009999 does not exist.\u{FFFD} (request gw-1)"
    );
    match detail {
        Some(FaultDetail::NotFound(d)) => {
            assert_eq!(d.message.as_str(), "Account ACC-0000009999 does not exist.");
            assert_eq!(d.request_id, own_rid());
        }
        other => panic!("{other:?}"),
    }
}

/// Found with the `pipeline` fuzz invariant "every refusal carries its typed detail": a
/// SOAPAction holding `]]>` is quoted in the detail's message, which the serializer refused
/// to write, so the fault went out without its detail.
#[test]
fn a_quoted_cdata_end_keeps_the_typed_detail() {
    let rejection = Rejection::Action(ActionError {
        action: "urn:x]]>y".into(),
        body: "GetAccount",
    });
    let f = render(
        &rejection,
        SoapVersion::Soap12,
        "gw-1",
        StatusModes::default(),
    );
    let env = envelope::scan(&f.body).expect("scan");
    let fault = envelope::parse_fault(&env).expect("fault");
    let detail = fault.detail.expect("the typed detail is kept");
    match decode::partner_fault(&detail, DecodeLimits::default()).expect("decode") {
        FaultDetail::InvalidRequest(d) => {
            assert_eq!(d.rule.as_str(), "soap-action");
            assert!(d.message.as_str().contains("urn:x]] >y"), "{d:?}");
        }
        other => panic!("{other:?}"),
    }
}
