//! Traces exported over OTLP/HTTP as the standard variables say: the `otel` example (a server, a
//! worker and a client in one process) runs with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a
//! loopback OTLP/HTTP receiver in this test and `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`; the
//! receiver gets one trace, with the client's id, holding the server's, the worker's, the
//! workflow's and each task attempt's spans with their attributes.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::Value;

type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// `POST /v1/traces`: keeps the body's content type and JSON.
async fn receive(State(received): State<Received>, headers: HeaderMap, body: Bytes) -> &'static str {
    let kind = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    received.lock().unwrap().push((kind, json));
    "{}"
}

/// An attribute's value as text (`stringValue` or `intValue`).
fn value_of(attributes: &Value, key: &str) -> Option<String> {
    let found = attributes.as_array()?.iter().find(|a| a["key"] == key)?;
    let value = &found["value"];
    value["stringValue"]
        .as_str()
        .map(str::to_string)
        .or_else(|| value["intValue"].as_str().map(str::to_string))
        .or_else(|| value["intValue"].as_i64().map(|n| n.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_exports_one_trace_over_otlp_http() {
    let received: Received = Arc::default();
    let app = axum::Router::new().route("/v1/traces", axum::routing::post(receive)).with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let serving = tokio::spawn(async move { axum::serve(listener, app).await });

    let example = flux_suite::example("otel");
    let output = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(example)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
            .env("OTEL_SERVICE_NAME", "flux-otel-test")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_HEADERS")
            .env_remove("OTEL_RESOURCE_ATTRIBUTES")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the example starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the example did not finish within a minute");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("COMPLETED") && stdout.contains("order 42 charged"), "{stdout}");
    let trace = stdout.lines().find_map(|l| l.strip_prefix("trace ")).expect("the trace id is printed").trim();
    assert_eq!(trace.len(), 32, "{trace}");

    let batches = received.lock().unwrap().clone();
    assert!(!batches.is_empty(), "nothing was exported; the example said:\n{stderr}");
    let mut spans = Vec::new();
    for (kind, body) in &batches {
        assert_eq!(kind, "application/json", "OTEL_EXPORTER_OTLP_PROTOCOL=http/json is followed");
        for resource in body["resourceSpans"].as_array().expect("an OTLP trace request") {
            let service = value_of(&resource["resource"]["attributes"], "service.name");
            assert_eq!(service.as_deref(), Some("flux-otel-test"), "OTEL_SERVICE_NAME is followed");
            for scope in resource["scopeSpans"].as_array().unwrap() {
                spans.extend(scope["spans"].as_array().unwrap().iter().cloned());
            }
        }
    }
    let in_trace: Vec<&Value> = spans.iter().filter(|s| s["traceId"].as_str() == Some(trace)).collect();
    let mut names: Vec<&str> = in_trace.iter().filter_map(|s| s["name"].as_str()).collect();
    names.sort_unstable();
    let wanted = ["example.checkout", "flux.server.request", "flux.worker.claim", "flux.workflow.execute"];
    for name in wanted {
        assert!(names.contains(&name), "no {name} in the trace: {names:?}");
    }
    let attempts: Vec<&&Value> = in_trace.iter().filter(|s| s["name"] == "flux.task.execute").collect();
    assert_eq!(attempts.len(), 3, "two attempts of reserve_stock, one of charge: {names:?}");
    let workflow = in_trace.iter().find(|s| s["name"] == "flux.workflow.execute").unwrap();
    assert_eq!(value_of(&workflow["attributes"], "flux.workflow.name").as_deref(), Some("checkout"));
    assert_eq!(value_of(&workflow["attributes"], "flux.worker.name").as_deref(), Some("example-worker"));
    assert!(value_of(&workflow["attributes"], "flux.execution.id").is_some());
    for attempt in &attempts {
        assert_eq!(attempt["parentSpanId"], workflow["spanId"], "{attempt}");
        assert!(value_of(&attempt["attributes"], "flux.task.name").is_some(), "{attempt}");
    }
    serving.abort();
}
