//! End-to-end tests of the admin HTTP server over a real socket, with a tiny HTTP/1.1 client
//! written here (no HTTP client dependency), plus `promtool check metrics` on the exposition.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use recall_radar::admin::{self, AdminState, SignalSource};
use recall_radar::metrics::{Health, Metrics};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Names `/metrics` must expose (the contract with `deploy/`).
const METRIC_NAMES: [&str; 27] = [
    "recall_radar_events_consumed_total",
    "recall_radar_events_bad_total",
    "recall_radar_events_late_total",
    "recall_radar_events_duplicate_total",
    "recall_radar_dead_letters_published_total",
    "recall_radar_alerts_published_total",
    "recall_radar_live_keys",
    "recall_radar_open_episodes",
    "recall_radar_keys_evicted_total",
    "recall_radar_keys_refused_total",
    "recall_radar_processing_latency_seconds",
    "recall_radar_event_time_lag_seconds",
    "recall_radar_consumer_lag_messages",
    "recall_radar_producer_queue_messages",
    "recall_radar_rebalances_total",
    "recall_radar_partitions_assigned",
    "recall_radar_input_paused",
    "recall_radar_commits_total",
    "recall_radar_checkpoints_written_total",
    "recall_radar_offsets_recommitted_total",
    "recall_radar_partition_rebuilds_total",
    "recall_radar_rebuild_replayed_messages_total",
    "recall_radar_rebuild_duration_seconds",
    "recall_radar_repartitioned_messages_total",
    "recall_radar_repartitioned_unkeyed_total",
    "recall_radar_repartition_commits_total",
    "recall_radar_build_info",
];

struct FakeSignals;

impl SignalSource for FakeSignals {
    fn signals(&self) -> Value {
        json!({ "signals": [{ "product_id": "P-1", "defect_tag": "overheat", "level": "pattern" }] })
    }
    fn top(&self, n: usize) -> Value {
        let keys: Vec<Value> = (0..n)
            .map(|i| json!({ "product_id": format!("P-{i}"), "rank": i + 1 }))
            .collect();
        json!({ "n": n, "top": keys })
    }
}

struct PanickingSignals;

impl SignalSource for PanickingSignals {
    fn signals(&self) -> Value {
        panic!("signal source blew up (expected by the test)")
    }
    fn top(&self, _n: usize) -> Value {
        panic!("signal source blew up (expected by the test)")
    }
}

struct Server {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(source: Arc<dyn SignalSource>) -> Server {
        let listener = admin::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Metrics::new();
        let health = Health::new();
        let state = AdminState {
            metrics: Arc::clone(&metrics),
            health: Arc::clone(&health),
            signals: source,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(admin::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Server {
            addr,
            metrics,
            health,
            stop: Some(stop),
            task,
        }
    }

    async fn get(&self, target: &str) -> Reply {
        request(self.addr, "GET", target).await
    }

    async fn shutdown(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("server did not stop within 5 s after the shutdown future completed")
            .expect("server task panicked");
        result.expect("serve returned an error");
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    /// Lower-cased header names.
    headers: BTreeMap<String, String>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
    fn json(&self) -> Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("bad JSON ({e}): {self:?}"))
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), read to EOF.
async fn request(addr: SocketAddr, method: &str, target: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: admin-http-test\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
        .await
        .expect("response not complete within 5 s")
        .unwrap();
    parse_response(&raw, method == "HEAD")
}

fn parse_response(raw: &[u8], head_only: bool) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of headers");
    let head = std::str::from_utf8(&raw[..split]).expect("headers are not UTF-8");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(
        parts.next(),
        Some("HTTP/1.1"),
        "status line {status_line:?}"
    );
    let status: u16 = parts.next().unwrap().parse().unwrap();
    let mut headers = BTreeMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').expect("header without a colon");
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let rest = &raw[split + 4..];
    let body = if head_only {
        Vec::new()
    } else if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
        dechunk(rest)
    } else if let Some(len) = headers.get("content-length") {
        let len: usize = len.parse().unwrap();
        assert_eq!(rest.len(), len, "body length differs from content-length");
        rest.to_vec()
    } else {
        rest.to_vec()
    };
    Reply {
        status,
        headers,
        body: String::from_utf8(body).expect("body is not UTF-8"),
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = std::str::from_utf8(&rest[..eol]).unwrap();
        let size_hex = size_text.split(';').next().unwrap().trim();
        let size = usize::from_str_radix(size_hex, 16).unwrap();
        rest = &rest[eol + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// A basic check of the text exposition format: every sample line is `name{labels} value`,
/// its family was announced by `# HELP` and `# TYPE` lines first, values parse as floats.
fn check_exposition(text: &str) -> BTreeSet<String> {
    assert!(text.ends_with('\n'), "exposition must end with a newline");
    let mut helped = BTreeSet::new();
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut sampled = BTreeSet::new();
    for line in text.lines() {
        assert!(!line.is_empty(), "empty line in exposition");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP without text");
            assert!(!help.trim().is_empty(), "empty help for {name}");
            assert!(helped.insert(name.to_owned()), "second HELP for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE without a type");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "unknown type {kind} for {name}"
            );
            assert!(
                typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                "second TYPE for {name}"
            );
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line:?}");
        let name_end = line.find(['{', ' ']).expect("sample without a value");
        let name = &line[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "bad metric name {name:?}"
        );
        let after_labels = if line[name_end..].starts_with('{') {
            let close = line.rfind('}').expect("unclosed label set");
            let labels = &line[name_end + 1..close];
            for pair in labels.split("\",").filter(|p| !p.is_empty()) {
                let (label, value) = pair.split_once('=').expect("label without =");
                assert!(
                    label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "bad label name {label:?} in {line:?}"
                );
                assert!(value.starts_with('"'), "unquoted label value in {line:?}");
            }
            &line[close + 1..]
        } else {
            &line[name_end..]
        };
        let value = after_labels.trim();
        let value = value.split(' ').next().unwrap();
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "bad value {value:?} in {line:?}"
        );
        let family = typed
            .keys()
            .filter(|f| {
                name == f.as_str()
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(f.as_str()))
            })
            .max_by_key(|f| f.len())
            .unwrap_or_else(|| panic!("sample {name} before its TYPE line"))
            .clone();
        assert!(helped.contains(&family), "no HELP for {family}");
        sampled.insert(family);
    }
    assert_eq!(
        helped,
        typed.keys().cloned().collect(),
        "HELP and TYPE lines differ"
    );
    sampled
}

#[tokio::test]
async fn metrics_route_serves_the_exposition() {
    let server = Server::start(Arc::new(FakeSignals)).await;
    // Consumer lag has no series before a partition is assigned.
    server.metrics.set_consumer_lag("contacts", 0, 12);
    server
        .metrics
        .events_consumed
        .with_label_values(&["chat"])
        .inc();
    server
        .metrics
        .observe_processing_latency(Duration::from_millis(4));

    let reply = server.get("/metrics").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let families = check_exposition(&reply.body);
    for name in METRIC_NAMES {
        assert!(families.contains(name), "/metrics lacks {name}");
    }
    assert!(families.contains("process_resident_memory_bytes"));
    assert!(reply
        .body
        .contains("recall_radar_events_consumed_total{channel=\"chat\"} 1\n"));
    assert!(reply
        .body
        .contains("recall_radar_events_consumed_total{channel=\"web\"} 0\n"));
    assert!(reply
        .body
        .contains("recall_radar_consumer_lag_messages{partition=\"0\",topic=\"contacts\"} 12\n"));
    assert!(reply
        .body
        .contains("recall_radar_processing_latency_seconds_count 1\n"));

    let head = request(server.addr, "HEAD", "/metrics").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn healthz_follows_the_alive_flag() {
    let server = Server::start(Arc::new(FakeSignals)).await;
    let reply = server.get("/healthz").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
    server.health.set_alive(false);
    let reply = server.get("/healthz").await;
    assert_eq!(reply.status, 503);
    server.shutdown().await;
}

#[tokio::test]
async fn readyz_gives_the_reason_until_ready() {
    let server = Server::start(Arc::new(FakeSignals)).await;
    let reply = server.get("/readyz").await;
    assert_eq!(reply.status, 503);
    assert!(reply.body.contains("starting"), "{reply:?}");

    server
        .health
        .set_ready(false, "waiting for partition assignment");
    let reply = server.get("/readyz").await;
    assert_eq!(reply.status, 503);
    assert!(
        reply.body.contains("waiting for partition assignment"),
        "{reply:?}"
    );

    server.health.set_ready(true, "");
    let reply = server.get("/readyz").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "ready"));
    server.shutdown().await;
}

#[tokio::test]
async fn api_signals_returns_the_source_json() {
    let server = Server::start(Arc::new(FakeSignals)).await;
    let reply = server.get("/api/signals").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), FakeSignals.signals());
    server.shutdown().await;
}

#[tokio::test]
async fn api_top_passes_n_and_defaults_to_10() {
    let server = Server::start(Arc::new(FakeSignals)).await;
    let reply = server.get("/api/top?n=2").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), FakeSignals.top(2));

    let reply = server.get("/api/top").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["n"], 10);

    let reply = server.get("/api/top?n=1000").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["n"], 1000);
    server.shutdown().await;
}

#[tokio::test]
async fn api_top_rejects_a_bad_n() {
    let server = Server::start(Arc::new(FakeSignals)).await;
    for target in [
        "/api/top?n=abc",
        "/api/top?n=0",
        "/api/top?n=-3",
        "/api/top?n=1001",
        "/api/top?n=",
    ] {
        let reply = server.get(target).await;
        assert_eq!(reply.status, 400, "{target}: {reply:?}");
        let error = reply.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(error.contains("n must be"), "{target}: {error}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_and_methods_get_json_errors() {
    let server = Server::start(Arc::new(FakeSignals)).await;
    let reply = server.get("/nope").await;
    assert_eq!(reply.status, 404);
    let body = reply.json();
    assert_eq!(body["error"], "not found");
    assert_eq!(body["path"], "/nope");

    let reply = server.get("/api/signals/extra").await;
    assert_eq!(reply.status, 404);

    let reply = request(server.addr, "POST", "/metrics").await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.json()["error"], "method not allowed");
    server.shutdown().await;
}

#[tokio::test]
async fn a_panicking_source_gives_500_and_the_server_lives_on() {
    let server = Server::start(Arc::new(PanickingSignals)).await;
    let reply = server.get("/api/signals").await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.json()["error"], "signal source failed");
    let reply = server.get("/api/top?n=3").await;
    assert_eq!(reply.status, 500);
    let reply = server.get("/healthz").await;
    assert_eq!(reply.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_future_stops_the_server() {
    let server = Server::start(Arc::new(FakeSignals)).await;
    let addr = server.addr;
    assert_eq!(server.get("/healthz").await.status, 200);
    // An idle keep-alive connection must not hold the shutdown up.
    let idle = TcpStream::connect(addr).await.unwrap();
    server.shutdown().await;
    drop(idle);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting connections after shutdown"
    );
}

#[tokio::test]
async fn bind_error_names_the_address() {
    let first = admin::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = first.local_addr().unwrap();
    let err = admin::bind(addr).await.expect_err("port is taken");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[test]
fn promtool_accepts_the_exposition() {
    let promtool = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("promtool"))
            .find(|p| p.is_file())
    });
    let Some(promtool) = promtool else {
        println!("note: promtool not on PATH; skipping `promtool check metrics`");
        return;
    };
    let metrics = Metrics::new();
    metrics.set_consumer_lag("contacts", 0, 5);
    metrics.observe_processing_latency(Duration::from_millis(2));
    metrics.event_tally(&["call"]).consumed(0, 42.0);
    let text = metrics.render();

    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
