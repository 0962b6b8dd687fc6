//! Secrets (issue must-show 11): injected into tasks and workflows, missing ones named, never
//! stored or recorded in clear.

use EventType::*;
use flux::ErrorKind;
use flux::prelude::*;
use flux::secrets::{self, Secrets};
use flux_suite::kinds;

const VALUE: &str = "tok-7f3a9c-very-secret";

#[flux::task(secret_requests = ["API_TOKEN", "API_URL"])]
async fn call_api(path: String, secrets: Secrets) -> Result<String, String> {
    let token = secrets.get("API_TOKEN").ok_or("no token")?;
    let url = secrets.get("API_URL").ok_or("no url")?;
    Ok(format!("GET {url}{path} with a {}-character token", token.len()))
}

#[flux::workflow]
async fn api_workflow(ctx: ExecutionContext<String>) -> flux::Result<String> {
    call_api(ctx.input().clone()).await
}

#[flux::workflow(secret_requests = ["API_TOKEN"])]
async fn token_length(ctx: ExecutionContext<()>) -> flux::Result<usize> {
    Ok(ctx.secrets().get("API_TOKEN").map_or(0, str::len))
}

#[tokio::test]
async fn secrets_are_injected_and_never_stored_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flux.db");
    let engine = Engine::open(&path).unwrap();
    secrets::set(&engine, "API_TOKEN", VALUE).unwrap();
    secrets::set(&engine, "API_URL", "https://api.example/").unwrap();
    assert_eq!(secrets::list(&engine).unwrap(), ["API_TOKEN", "API_URL"]);

    let execution = api_workflow.on(&engine).run("v1/items".into()).await.unwrap();
    assert_eq!(
        execution.output().map(String::as_str),
        Some(format!("GET https://api.example/v1/items with a {}-character token", VALUE.len()).as_str())
    );
    assert_eq!(kinds(execution.events()), [WorkflowStarted, TaskStarted, TaskCompleted, WorkflowCompleted]);
    // The injected parameter is not an argument: not recorded, not part of the id.
    assert_eq!(execution.events()[1].value::<(String,)>().unwrap().0, "v1/items");
    let expected = flux::identity::task_id("call_api", &flux::value::to_msgpack(&("v1/items",)).unwrap());
    assert_eq!(execution.events()[1].source_id(), expected);

    let execution = token_length.on(&engine).run(()).await.unwrap();
    assert_eq!(execution.output(), Some(&VALUE.len()));

    // A fresh engine on the same files reads the same secret (the key file is reused).
    drop(engine);
    let engine = Engine::open(&path).unwrap();
    assert_eq!(secrets::get(&engine, "API_TOKEN").unwrap().as_deref(), Some(VALUE));
    drop(engine);

    // Nothing on disk holds the value in clear: database, write-ahead log, key file.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let file = entry.unwrap().path();
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()),
            "{} holds the secret in clear",
            file.display()
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(secrets::KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn a_missing_secret_fails_the_task_naming_every_missing_one() {
    let engine = Engine::in_memory();
    secrets::set(&engine, "API_URL", "https://api.example/").unwrap();
    let execution = api_workflow.on(&engine).run("x".into()).await.unwrap();
    assert!(execution.has_failed());
    assert_eq!(kinds(execution.events()), [WorkflowStarted, TaskStarted, TaskFailed, WorkflowFailed]);
    let err = execution.error().unwrap();
    assert_eq!(err.kind(), ErrorKind::MissingSecret);
    assert!(err.message().ends_with("needs secrets that are not set: API_TOKEN"), "{err}");

    let execution = token_length.on(&engine).run(()).await.unwrap();
    assert_eq!(kinds(execution.events()), [WorkflowStarted, WorkflowFailed]);
    assert_eq!(
        execution.error().unwrap().message(),
        "workflow `token_length` needs secrets that are not set: API_TOKEN"
    );
}

#[tokio::test]
async fn secrets_can_be_replaced_and_removed() {
    let engine = Engine::in_memory()
        .with_encryption_key("1111111111111111111111111111111111111111111111111111111111111111")
        .unwrap();
    secrets::set(&engine, "K", "one").unwrap();
    secrets::set(&engine, "K", "two").unwrap();
    assert_eq!(secrets::get(&engine, "K").unwrap().as_deref(), Some("two"));
    assert!(secrets::remove(&engine, "K").unwrap());
    assert!(!secrets::remove(&engine, "K").unwrap());
    assert_eq!(secrets::get(&engine, "K").unwrap(), None);
    let err = secrets::set(&engine, "", "x").unwrap_err();
    assert!(err.to_string().contains("invalid secret name"), "{err}");
}

#[tokio::test]
async fn a_secret_stored_under_another_key_is_refused_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().join("flux.db"))
        .unwrap()
        .with_encryption_key("1111111111111111111111111111111111111111111111111111111111111111")
        .unwrap();
    secrets::set(&engine, "K", "value").unwrap();
    let other = engine.with_encryption_key("2222222222222222222222222222222222222222222222222222222222222222").unwrap();
    assert!(Engine::in_memory().with_encryption_key("a password").is_err());
    let err = secrets::get(&other, "K").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.to_string().contains("stored under another key"), "{err}");
}

#[tokio::test]
async fn the_configured_key_is_the_one_used() {
    let dir = tempfile::tempdir().unwrap();
    let env = |k: &str, v: String| (k.to_string(), v);
    let config = flux::Config::from_sources(
        None,
        [
            env("FLUX_HOME", dir.path().display().to_string()),
            env(
                "FLUX_SECURITY__ENCRYPTION_KEY",
                "1111111111111111111111111111111111111111111111111111111111111111".to_string(),
            ),
        ],
    )
    .unwrap();
    assert!(!format!("{config:?}").contains("1111"), "Debug hides the key");
    let engine = Engine::from_config(&config).unwrap();
    secrets::set(&engine, "K", "value").unwrap();
    assert!(!dir.path().join(secrets::KEY_FILE).exists(), "no key file when a key is configured");
    // The same key reads it; another does not.
    let same = Engine::open(dir.path().join("flux.db"))
        .unwrap()
        .with_encryption_key("1111111111111111111111111111111111111111111111111111111111111111")
        .unwrap();
    assert_eq!(secrets::get(&same, "K").unwrap().as_deref(), Some("value"));
    let other = Engine::open(dir.path().join("flux.db")).unwrap();
    assert_eq!(secrets::get(&other, "K").unwrap_err().kind(), ErrorKind::Corrupt);

    let err = flux::Config::from_sources(None, [env("FLUX_SECURITY__ENCRYPTION_KEY", "hunter2".into())]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(!err.to_string().contains("hunter2"), "{err}");
}
