//! `GET /metrics`, read by a Prometheus text-format parser: the counters move as executions run,
//! for the tasks the server runs itself and those its workers report.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use flux::Client;
use flux::prelude::*;
use flux::server::Server;
use flux::worker::Worker;
use prometheus_parse::{Scrape, Value};

const BOOTSTRAP: &str = "bootstrap-token-for-metrics";

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

/// Fails its first attempt in the process, then succeeds.
#[flux::task(retry_max_attempts = 2, retry_delay = 0)]
async fn flaky_metric_step(n: u32) -> flux::Result<u32> {
    if FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        return Err(flux::Error::new(flux::ErrorKind::TaskFailed, "first attempt fails"));
    }
    Ok(n + 1)
}

#[flux::task]
async fn steady_metric_step(n: u32) -> u32 {
    n * 2
}

#[flux::workflow]
async fn metered_here(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    let n = flaky_metric_step(*ctx.input()).await?;
    steady_metric_step(n).await
}

#[flux::task(retry_max_attempts = 1, retry_delay = 0)]
async fn remote_metric_step(n: u32) -> flux::Result<u32> {
    if n == 0 {
        return Err(flux::Error::new(flux::ErrorKind::TaskFailed, "zero is refused"));
    }
    Ok(n)
}

#[flux::workflow]
async fn metered_remote(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    remote_metric_step(*ctx.input()).await
}

/// One scrape: each sample's value by its metric name and labels (`name{k=v,...}`, sorted).
struct Metrics(HashMap<String, f64>);

impl Metrics {
    async fn scrape(http: &reqwest::Client, url: &str) -> Metrics {
        let answer = http.get(format!("{url}/metrics")).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        let content_type = answer.headers()["content-type"].to_str().unwrap().to_string();
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        let text = answer.text().await.unwrap();
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        let mut values = HashMap::new();
        for sample in scrape.samples {
            let mut labels: Vec<String> = sample.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            let key = format!("{}{{{}}}", sample.metric, labels.join(","));
            let value = match sample.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                Value::Histogram(buckets) => {
                    for b in &buckets {
                        values.insert(format!("{}{{le={}}}", sample.metric, b.less_than), b.count);
                    }
                    continue;
                }
                Value::Summary(_) => panic!("no summaries are served"),
            };
            values.insert(key, value);
        }
        // The parser keeps a histogram's count and sum as untyped samples of their own names.
        Metrics(values)
    }

    fn get(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_as_executions_run_here_and_on_workers() {
    let engine = flux::Engine::in_memory();
    engine.queue("metered").concurrency(1);
    let running = Server::new()
        .engine(&engine)
        .bootstrap_token(BOOTSTRAP)
        .register(metered_here)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let url = running.url();
    let http = reqwest::Client::new();
    let api = Client::builder(&url).timeout(Duration::from_secs(30)).build().unwrap();

    let before = Metrics::scrape(&http, &url).await;
    assert_eq!(before.get("flux_executions{state=COMPLETED}"), 0.0);
    assert_eq!(before.get("flux_workers_connected{}"), 0.0);
    assert_eq!(before.get("flux_task_attempt_duration_seconds_count{}"), 0.0);

    // Two executions here: the flaky step fails once in all, then every attempt succeeds.
    let here = api.workflow::<u32, u32>("metered_here");
    assert_eq!(here.run(&1).await.unwrap().output(), Some(&4));
    assert_eq!(here.clone().queue("metered").run(&2).await.unwrap().output(), Some(&6));
    let after = Metrics::scrape(&http, &url).await;
    assert_eq!(after.get("flux_executions{state=COMPLETED}"), 2.0);
    assert_eq!(after.get("flux_task_attempts_total{task=flaky_metric_step}"), 3.0);
    assert_eq!(after.get("flux_task_failures_total{task=flaky_metric_step}"), 1.0);
    assert_eq!(after.get("flux_task_attempts_total{task=steady_metric_step}"), 2.0);
    assert_eq!(after.get("flux_task_failures_total{task=steady_metric_step}"), 0.0);
    assert_eq!(after.get("flux_task_attempt_duration_seconds_count{}"), 5.0);
    assert_eq!(after.get("flux_task_attempt_duration_seconds{le=inf}"), 5.0, "every attempt under +Inf");
    assert_eq!(after.get("flux_queue_waiting{kind=queue,name=metered}"), 0.0);
    assert!(after.0.contains_key("flux_queue_running{kind=queue,name=metered}"));

    // A worker: registered and connected, its attempts counted from its checkpoints.
    let worker = Worker::new(&url).name("metrics-worker").bootstrap_token(BOOTSTRAP).register(metered_remote).run();
    let worker = tokio::spawn(worker);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while Metrics::scrape(&http, &url).await.get("flux_workers_connected{}") < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "the worker never connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let remote = api.workflow::<u32, u32>("metered_remote");
    assert_eq!(remote.run(&5).await.unwrap().output(), Some(&5));
    let failed = remote.run(&0).await.unwrap();
    assert_eq!(failed.state(), flux::ExecutionState::Failed);
    let last = Metrics::scrape(&http, &url).await;
    assert_eq!(last.get("flux_workers_registered{}"), 1.0);
    assert_eq!(last.get("flux_workers_connected{}"), 1.0);
    assert_eq!(last.get("flux_executions{state=COMPLETED}"), 3.0);
    assert_eq!(last.get("flux_executions{state=FAILED}"), 1.0);
    // 5 succeeds at once; 0 fails its attempt and its one retry.
    assert_eq!(last.get("flux_task_attempts_total{task=remote_metric_step}"), 3.0);
    assert_eq!(last.get("flux_task_failures_total{task=remote_metric_step}"), 2.0);
    assert_eq!(last.get("flux_task_attempt_duration_seconds_count{}"), 8.0);
    // Cumulative buckets never fall.
    let mut bounds: Vec<(f64, f64)> = last
        .0
        .iter()
        .filter_map(|(k, v)| {
            let le = k.strip_prefix("flux_task_attempt_duration_seconds{le=")?.strip_suffix('}')?;
            Some((le.parse::<f64>().unwrap(), *v))
        })
        .collect();
    bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(bounds.len(), 15, "{bounds:?}");
    assert!(bounds.windows(2).all(|w| w[0].1 <= w[1].1), "{bounds:?}");

    // Checkpoints of executions running at once travel together: fewer requests than
    // checkpoints (each execution sends several).
    let before = Metrics::scrape(&http, &url).await;
    assert!(before.get("flux_checkpoints_total{}") >= 2.0, "the two runs above sent checkpoints");
    let runs = futures::future::join_all((0..20).map(|_| remote.run(&5))).await;
    assert!(runs.into_iter().all(|run| run.unwrap().output() == Some(&5)));
    let after = Metrics::scrape(&http, &url).await;
    let sent = |m: &Metrics, name: &str| m.get(name) - before.get(name);
    let (checkpoints, requests) =
        (sent(&after, "flux_checkpoints_total{}"), sent(&after, "flux_checkpoint_requests_total{}"));
    assert!(checkpoints >= 20.0, "{checkpoints} checkpoints for 20 executions");
    assert!(requests < checkpoints, "{checkpoints} checkpoints in {requests} requests");
    eprintln!("20 executions at once: {checkpoints} checkpoints in {requests} requests");

    worker.abort();
    running.shutdown().await.unwrap();
}
