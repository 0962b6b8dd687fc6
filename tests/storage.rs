//! The SQLite event log under bad input: corrupt files, newer schemas, unusable URLs. Nothing
//! already recorded may be lost or changed. And the store conformance suite run from outside
//! flux, as another crate's store runs it.

use std::path::Path;
use std::process::Command;

use flux::prelude::*;
use flux::{Config, Durability, ErrorKind};

#[flux::task]
async fn double(x: u64) -> u64 {
    x * 2
}

#[flux::workflow]
async fn doubler(ctx: ExecutionContext<u64>) -> flux::Result<u64> {
    double(*ctx.input()).await
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flux.db");
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();
    let err = Engine::open(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("flux.db") && msg.contains("not a flux database"), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage, "the file was not modified");
}

#[tokio::test]
async fn a_database_from_a_newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flux.db");
    let id = {
        let engine = Engine::open(&path).unwrap();
        doubler.on(&engine).run(21).await.unwrap().execution_id().to_string()
    };
    let version: i64 = {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let version = conn.query_row("SELECT version FROM flux_schema", [], |r| r.get(0)).unwrap();
        conn.execute("UPDATE flux_schema SET version = 99", []).unwrap();
        version
    };
    let err = Engine::open(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SchemaTooNew);
    assert!(err.to_string().contains("schema version 99"), "{err}");

    // Put the version back: the execution recorded before is all there.
    rusqlite::Connection::open(&path).unwrap().execute("UPDATE flux_schema SET version = ?1", [version]).unwrap();
    let engine = Engine::open(&path).unwrap();
    let execution = doubler.on(&engine).status(&id).await.unwrap();
    assert_eq!(execution.output(), Some(&42));
    assert_eq!(execution.events().len(), 4);
}

#[test]
fn database_urls_that_cannot_be_opened_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be.
    std::fs::create_dir(dir.path().join("taken.db")).unwrap();
    let url = format!("sqlite://{}", dir.path().join("taken.db").display());
    let config = Config::from_sources(None, [("FLUX_DATABASE_URL".to_string(), url.clone())]).unwrap();
    let err = Engine::from_config(&config).unwrap_err();
    assert!(err.to_string().contains(&url), "{err}");

    let err = Config::from_sources(None, [("FLUX_DATABASE_URL".to_string(), "mysql://db".to_string())]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("mysql://db"), "{err}");
}

#[test]
fn the_default_engine_reports_an_unusable_database_url() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    // A path below a regular file can never be created.
    let url = format!("sqlite://{}/under/flux.db", dir.path().join("file").display());
    let out = Command::new(flux_suite::example("hello_world"))
        .env("FLUX_DATABASE_URL", &url)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&url) && stderr.contains("cannot create directory"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn full_durability_records_the_same_log() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_with(dir.path().join("flux.db"), Durability::Full).unwrap();
    let execution = doubler.on(&engine).run(4).await.unwrap();
    assert_eq!(execution.output(), Some(&8));
    let stored = engine.store().load(execution.execution_id()).unwrap().unwrap();
    assert_eq!(stored.events, execution.events());
}

#[tokio::test]
async fn batched_durability_records_the_same_log_and_stores_it_before_run_returns() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_with(dir.path().join("flux.db"), Durability::Batched).unwrap();
    assert_eq!(engine.store().durability(), Durability::Batched);
    let execution = doubler.on(&engine).run(4).await.unwrap();
    assert_eq!(execution.output(), Some(&8));
    // The task's result was handed back before its commit, but the final event is waited for,
    // and everything queued before it is committed with it.
    let stored = engine.store().load(execution.execution_id()).unwrap().unwrap();
    assert_eq!(stored.events, execution.events());
    use flux::EventType::*;
    assert_eq!(flux_suite::kinds(&stored.events), [WorkflowStarted, TaskStarted, TaskCompleted, WorkflowCompleted]);
}

#[test]
fn durability_is_read_from_its_name() {
    assert_eq!("batched".parse::<Durability>().unwrap(), Durability::Batched);
    assert_eq!(" Full ".parse::<Durability>().unwrap(), Durability::Full);
    assert_eq!("normal".parse::<Durability>().unwrap(), Durability::Default);
    let err = "fast".parse::<Durability>().unwrap_err();
    assert!(err.to_string().contains("`fast`") && err.to_string().contains("`batched`"), "{err}");
    let config = Config::from_sources(None, [("FLUX_DURABILITY".to_string(), "batched".to_string())]).unwrap();
    assert_eq!(config.durability, Durability::Batched);
    assert_eq!(Durability::Batched.to_string(), "batched");
}

#[test]
fn missing_directories_are_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c/flux.db");
    Engine::open(&path).unwrap();
    assert!(Path::new(&path).exists());
}

#[test]
fn the_default_engine_follows_flux_toml_and_the_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flux.toml"), "[flux]\nhome = \"from-file\"\ndurability = \"full\"\n").unwrap();
    let run = |envs: &[(&str, &str)]| {
        let mut cmd = Command::new(flux_suite::example("hello_world"));
        cmd.current_dir(dir.path()).env_remove("FLUX_HOME").env_remove("FLUX_DATABASE_URL").env_remove("FLUX_CONFIG");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    run(&[]);
    assert!(dir.path().join("from-file/flux.db").exists());
    run(&[("FLUX_HOME", "from-env")]);
    assert!(dir.path().join("from-env/flux.db").exists());

    std::fs::write(dir.path().join("flux.toml"), "[flux]\ndurability = \"sometimes\"\n").unwrap();
    let out = Command::new(flux_suite::example("hello_world")).current_dir(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown durability `sometimes`"), "{stderr}");
}

/// A store of another crate than flux: the suite's hooked store, writing through a memory store.
fn hooked_store() -> impl flux::store::Store {
    flux_suite::HookedStore::new(|inner: &flux::store::MemoryStore, writes| flux::store::Store::write(inner, writes))
}

flux::store::conformance_tests!(a_store_of_another_crate, hooked_store);
