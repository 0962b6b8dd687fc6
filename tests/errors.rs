//! Terminal and retryable errors: a terminal error is attempted once whatever the retry options,
//! a retryable one as often as they say; both keep their type's name, message and chain of
//! sources through storage; `Execution::into_result` gives the outcome as a `Result`.

use std::sync::atomic::{AtomicU32, Ordering};

use flux::prelude::*;
use flux::{Error, ErrorKind, TerminalError};

/// A card the bank refused: asking again gives the same answer.
#[derive(Debug)]
struct PaymentDeclined;

impl std::fmt::Display for PaymentDeclined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("payment declined by the bank")
    }
}

impl std::error::Error for PaymentDeclined {}

/// The payment service did not answer, because its gateway was down.
#[derive(Debug)]
struct ServiceDown(std::io::Error);

impl std::fmt::Display for ServiceDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("payment service unavailable")
    }
}

impl std::error::Error for ServiceDown {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// An error type that says which of its values are final.
#[derive(Debug)]
enum PaymentError {
    Declined,
    Timeout,
}

impl std::fmt::Display for PaymentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PaymentError::Declined => "declined",
            PaymentError::Timeout => "timed out",
        })
    }
}

impl std::error::Error for PaymentError {}

impl TerminalError for PaymentError {
    fn is_terminal(&self) -> bool {
        matches!(self, PaymentError::Declined)
    }
}

static DECLINED_ATTEMPTS: AtomicU32 = AtomicU32::new(0);
static DOWN_ATTEMPTS: AtomicU32 = AtomicU32::new(0);
static TYPED_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

#[flux::task(retry_max_attempts = 5, retry_delay = "1ms")]
async fn charge_declined(cents: u64) -> flux::Result<u64> {
    DECLINED_ATTEMPTS.fetch_add(1, Ordering::SeqCst);
    if cents > 0 { Err(Error::terminal(PaymentDeclined)) } else { Ok(0) }
}

#[flux::task(retry_max_attempts = 5, retry_delay = "1ms", retry_backoff = 1)]
async fn charge_while_down(cents: u64) -> Result<u64, ServiceDown> {
    DOWN_ATTEMPTS.fetch_add(1, Ordering::SeqCst);
    if cents > 0 { Err(ServiceDown(std::io::Error::other("gateway 10.0.0.7 refused the connection"))) } else { Ok(0) }
}

#[flux::task(retry_max_attempts = 3, retry_delay = "1ms", retry_backoff = 1)]
async fn charge_typed(outcome: String) -> Result<u64, PaymentError> {
    TYPED_ATTEMPTS.fetch_add(1, Ordering::SeqCst);
    match outcome.as_str() {
        "declined" => Err(PaymentError::Declined),
        _ => Err(PaymentError::Timeout),
    }
}

#[flux::workflow]
async fn pay_declined(ctx: ExecutionContext<u64>) -> flux::Result<u64> {
    charge_declined(*ctx.input()).await
}

#[flux::workflow]
async fn pay_while_down(ctx: ExecutionContext<u64>) -> flux::Result<u64> {
    charge_while_down(*ctx.input()).await
}

#[flux::workflow]
async fn pay_typed(ctx: ExecutionContext<String>) -> flux::Result<u64> {
    charge_typed(ctx.input().clone()).await
}

fn kinds(execution: &Execution<impl Sized, impl Sized>) -> Vec<String> {
    execution.events().iter().map(|e| e.kind().to_string()).collect()
}

#[tokio::test]
async fn a_terminal_error_is_attempted_once_and_reloads_with_its_type() {
    for place in flux_suite::places() {
        DECLINED_ATTEMPTS.store(0, Ordering::SeqCst);
        let id = {
            let engine = place.open();
            let execution = pay_declined.on(&engine).run(500).await.unwrap();
            assert_eq!(
                DECLINED_ATTEMPTS.load(Ordering::SeqCst),
                1,
                "{place}: retry_max_attempts = 5 does not retry it"
            );
            assert_eq!(kinds(&execution), ["WORKFLOW_STARTED", "TASK_STARTED", "TASK_FAILED", "WORKFLOW_FAILED"]);
            execution.execution_id().to_string()
        };
        // A new engine over the same store: the error reloads with everything it said.
        let engine = place.open();
        let stored = pay_declined.on(&engine).status(&id).await.unwrap();
        let error = stored.error().expect("a failed execution has its error");
        assert!(error.is_terminal(), "{place}: {error:?}");
        assert!(error.is::<PaymentDeclined>(), "{place}: {error:?}");
        assert_eq!(error.type_name(), Some(std::any::type_name::<PaymentDeclined>()), "{place}");
        assert_eq!(error.message(), "payment declined by the bank", "{place}");
        assert_eq!(error.kind(), ErrorKind::TaskFailed, "{place}");
        let failed = stored.events().iter().find(|e| e.kind() == EventType::TaskFailed).unwrap();
        assert!(failed.value::<Error>().unwrap().is_terminal(), "{place}");
    }
}

#[tokio::test]
async fn a_retryable_error_is_attempted_once_and_retried_five_times_and_reloads_with_its_chain() {
    for place in flux_suite::places() {
        DOWN_ATTEMPTS.store(0, Ordering::SeqCst);
        let id = {
            let engine = place.open();
            let execution = pay_while_down.on(&engine).run(500).await.unwrap();
            assert_eq!(DOWN_ATTEMPTS.load(Ordering::SeqCst), 6, "{place}: the first attempt and five retries");
            let events = kinds(&execution);
            assert_eq!(events.iter().filter(|k| *k == "TASK_RETRY_FAILED").count(), 6, "{place}");
            assert_eq!(events.iter().filter(|k| *k == "TASK_RETRY_STARTED").count(), 5, "{place}");
            execution.execution_id().to_string()
        };
        let engine = place.open();
        let stored = pay_while_down.on(&engine).status(&id).await.unwrap();
        let error = stored.error().expect("a failed execution has its error");
        assert!(!error.is_terminal(), "{place}");
        assert!(error.is::<ServiceDown>() && !error.is::<PaymentDeclined>(), "{place}: {error:?}");
        assert_eq!(error.message(), "payment service unavailable", "{place}");
        assert_eq!(error.chain(), ["gateway 10.0.0.7 refused the connection"], "{place}");
    }
}

#[tokio::test]
async fn an_error_type_says_which_of_its_values_are_terminal() {
    let engine = Engine::in_memory();
    let declined = pay_typed.on(&engine).run("declined".to_string()).await.unwrap();
    assert_eq!(TYPED_ATTEMPTS.swap(0, Ordering::SeqCst), 1, "Declined is terminal");
    let error = declined.error().unwrap();
    assert!(error.is_terminal() && error.is::<PaymentError>(), "{error:?}");
    let timed_out = pay_typed.on(&engine).run("timeout".to_string()).await.unwrap();
    assert_eq!(TYPED_ATTEMPTS.swap(0, Ordering::SeqCst), 4, "Timeout is retried three times");
    assert!(!timed_out.error().unwrap().is_terminal());
}

#[flux::task]
async fn price(item: String) -> Result<u64, PaymentError> {
    if item == "rare" { Err(PaymentError::Declined) } else { Ok(10) }
}

fn yesterdays_price(_item: String) -> Result<u64, PaymentError> {
    Ok(9)
}

#[flux::task(retry_max_attempts = 4, retry_delay = "1ms", fallback = yesterdays_price)]
async fn price_or_yesterdays(item: String) -> Result<u64, PaymentError> {
    price(item).await.map_err(|_| PaymentError::Declined)
}

#[flux::workflow]
async fn quote(ctx: ExecutionContext<String>) -> flux::Result<u64> {
    price_or_yesterdays(ctx.input().clone()).await
}

#[tokio::test]
async fn a_terminal_error_still_goes_to_the_fallback() {
    let engine = Engine::in_memory();
    let execution = quote.on(&engine).run("rare".to_string()).await.unwrap();
    assert_eq!(execution.output(), Some(&9));
    let events = kinds(&execution);
    assert!(!events.iter().any(|k| k.starts_with("TASK_RETRY")), "{events:?}");
    assert!(events.contains(&"TASK_FALLBACK_STARTED".to_string()), "{events:?}");
}

#[flux::workflow]
async fn approval(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    let ok: bool = flux::pause("approve").await?;
    Ok(if ok { *ctx.input() } else { 0 })
}

#[flux::workflow]
async fn refuse(_ctx: ExecutionContext<u32>) -> Result<u32, PaymentError> {
    Err(PaymentError::Declined)
}

#[tokio::test]
async fn into_result_gives_the_output_the_error_or_why_there_is_neither() {
    let engine = Engine::in_memory();
    let paused = approval.on(&engine).run(7).await.unwrap();
    let id = paused.execution_id().to_string();
    let err = paused.into_result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert!(err.to_string().contains("PAUSED at pause `approve`"), "{err}");
    assert_eq!(approval.on(&engine).resume(&id, true).await.unwrap().into_result().unwrap(), 7);
    let failed = refuse.on(&engine).run(1).await.unwrap();
    let expected = failed.error().cloned().expect("a failed execution has its error");
    assert!(expected.is::<PaymentError>() && expected.is_terminal(), "{expected:?}");
    assert_eq!(failed.into_result().err(), Some(expected));
}
