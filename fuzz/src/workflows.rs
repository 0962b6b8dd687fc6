//! The workflows the harnesses run and replay: small, fast, and never waiting on anything but
//! the log (no timers), so that one input never takes long.

use flux::prelude::*;
use serde::{Deserialize, Serialize};

/// A typed input: the server refuses JSON that does not fit it (422).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Order number; doubled by [`double`].
    pub id: i64,
    /// Line items.
    pub items: Vec<String>,
}

/// A task whose recorded output replay must decode as an `i64`.
#[flux::task]
pub async fn double(n: i64) -> i64 {
    n.wrapping_mul(2)
}

/// A task that fails for negative numbers: a recorded error to decode.
#[flux::task]
pub async fn check(n: i64) -> Result<i64, String> {
    if n < 0 { Err(format!("{n} is negative")) } else { Ok(n) }
}

/// Any JSON value in, the same value out: every JSON body is a valid input.
#[flux::workflow]
pub async fn echo(ctx: ExecutionContext<serde_json::Value>) -> serde_json::Value {
    ctx.input().clone()
}

/// A typed workflow with two tasks: what stored logs are replayed against.
#[flux::workflow]
pub async fn orders(ctx: ExecutionContext<Order>) -> flux::Result<Vec<String>> {
    let order = ctx.input();
    let doubled = double(order.id).await?;
    let checked = check(doubled).await?;
    let mut out = order.items.clone();
    out.push(checked.to_string());
    Ok(out)
}

/// Pauses for a `String`, exposing a question while paused.
#[flux::workflow]
pub async fn approval(ctx: ExecutionContext<String>) -> flux::Result<String> {
    let decision = flux::pause_with::<String, String>("approval", format!("approve {}?", ctx.input())).await?;
    Ok(format!("{}: {decision}", ctx.input()))
}
