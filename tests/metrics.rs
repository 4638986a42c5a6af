#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! `/metrics` of the real binary, parsed: `partnergate_build_info`, the `process_*` families and
//! the per-partner latency histograms (bounded to active partners), beside the families that were
//! there before.

mod common;
#[path = "common/serve.rs"]
mod serve;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use partnergate::envelope::SoapVersion;
use partnergate::generated::partner::Operation;
use partnergate::store::{PartnerStatus, Store};
use serve::Binary;

const FAMILY: &str = "partnergate_partner_request_duration_seconds";

/// A parsed exposition: `# TYPE` per family and every sample (name with labels → value).
struct Exposition {
    types: HashMap<String, String>,
    samples: Vec<(String, HashMap<String, String>, f64)>,
}

fn parse(text: &str) -> Exposition {
    let mut types = HashMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "family {name} declared twice"
            );
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let labels = body
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once("=\"").expect("label");
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (series.to_string(), HashMap::new()),
        };
        samples.push((name, labels, value));
    }
    Exposition { types, samples }
}

impl Exposition {
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.2)
    }

    fn one(&self, name: &str) -> f64 {
        self.value(name, &[])
            .unwrap_or_else(|| panic!("no sample {name}"))
    }

    fn partners_in(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .filter_map(|(_, l, _)| l.get("partner").cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

async fn scrape(addr: std::net::SocketAddr) -> Exposition {
    let r = get(addr, "/metrics", None).await;
    assert_eq!(r.status, 200);
    parse(&r.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_process_and_per_partner_families_from_the_real_binary() {
    let up = StubUpstream::start(Reply::Fixture).await;
    let db = temp_path("metrics-bin", "db");
    let url = db.display().to_string();
    let store = Store::open(&url).unwrap();
    let allow = ["127.0.0.0/8"];
    let (a, b, c) = (
        onboard_partner(&store, &["*"], &allow, None),
        onboard_partner(&store, &["*"], &allow, None),
        onboard_partner(&store, &["*"], &allow, None),
    );
    let before_start = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let gw = Binary::serve(db, &up.url, &[]).await;
    let op = Operation::GetAccount;
    for (p, n) in [(&a, 3), (&b, 2), (&c, 1)] {
        for _ in 0..n {
            let body = request_fixture(op, SoapVersion::Soap11, p);
            let r = post_soap(gw.addr, SoapVersion::Soap11, Some(op.soap_action()), &body).await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
    }

    let m = scrape(gw.addr).await;
    // build_info: the Cargo version and a commit label, value 1.
    assert_eq!(m.types["partnergate_build_info"], "gauge");
    let (_, labels, v) = m
        .samples
        .iter()
        .find(|s| s.0 == "partnergate_build_info")
        .expect("build_info sample");
    assert_eq!(*v, 1.0);
    assert_eq!(labels["version"], env!("CARGO_PKG_VERSION"));
    assert!(!labels["commit"].is_empty());
    // process_*: types and plausible values.
    for (name, kind) in [
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_virtual_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ] {
        assert_eq!(m.types.get(name).map(String::as_str), Some(kind), "{name}");
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start = m.one("process_start_time_seconds");
    // The start time has a resolution of one clock tick (10 ms) and the boot time one second.
    assert!(
        start <= now + 1.0 && start >= before_start.as_secs_f64() - 2.0,
        "start {start}, now {now}"
    );
    assert!(m.one("process_resident_memory_bytes") > 1e6);
    assert!(m.one("process_virtual_memory_bytes") >= m.one("process_resident_memory_bytes"));
    assert!(m.one("process_open_fds") > 0.0);
    assert!(m.one("process_max_fds") >= m.one("process_open_fds"));
    assert!(m.one("process_cpu_seconds_total") >= 0.0);
    // The families that were there before are still there.
    assert_eq!(m.types["partnergate_requests_total"], "counter");
    assert_eq!(m.types["partnergate_request_duration_seconds"], "histogram");
    assert_eq!(m.one("partnergate_request_duration_seconds_count"), 6.0);

    // Per partner: one histogram each, counts as called, buckets cumulative up to +Inf.
    assert_eq!(m.types[FAMILY], "histogram");
    for (p, n) in [(&a, 3.0), (&b, 2.0), (&c, 1.0)] {
        let id = p.id.as_str();
        assert_eq!(
            m.value(&format!("{FAMILY}_count"), &[("partner", id)]),
            Some(n)
        );
        assert_eq!(
            m.value(
                &format!("{FAMILY}_bucket"),
                &[("partner", id), ("le", "+Inf")]
            ),
            Some(n)
        );
        assert!(
            m.value(&format!("{FAMILY}_sum"), &[("partner", id)])
                .unwrap()
                > 0.0
        );
        let buckets: Vec<f64> = m
            .samples
            .iter()
            .filter(|s| s.0 == format!("{FAMILY}_bucket") && s.1["partner"] == id)
            .map(|s| s.2)
            .collect();
        assert_eq!(buckets.len(), 25, "24 bounds and +Inf");
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    }
    let mut all = vec![a.id.clone(), b.id.clone(), c.id.clone()];
    all.sort();
    assert_eq!(m.partners_in(&format!("{FAMILY}_count")), all);

    // Offboarded and suspended partners drop out at the next refresh; the others stay.
    store.set_status(&b.id, PartnerStatus::Offboarded).unwrap();
    store.set_status(&c.id, PartnerStatus::Suspended).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = scrape(gw.addr).await;
        let left = m.partners_in(&format!("{FAMILY}_count"));
        if left == vec![a.id.clone()] {
            assert_eq!(
                m.value(&format!("{FAMILY}_count"), &[("partner", &a.id)]),
                Some(3.0)
            );
            // The request counter keeps every partner (it is not the bounded family).
            assert_eq!(m.partners_in("partnergate_requests_total").len(), 3);
            break;
        }
        assert!(Instant::now() < deadline, "series left: {left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
