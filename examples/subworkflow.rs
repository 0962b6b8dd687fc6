//! Sub-workflows: a parent workflow awaits a child workflow, which runs as an execution of its own
//! linked to the parent. When the parent replays, the child's recorded output is returned and the
//! child does not run again.
//!
//! ```text
//! cargo run --example subworkflow                        # one order, start to end
//! cargo run --example subworkflow -- run <id> <file>     # start (or continue) execution <id>
//! cargo run --example subworkflow -- replay <id>         # continue it after a crash
//! ```
//!
//! Every task appends a line to `<file>` (a side-effect log). With `FLUX_SLOW_NOTIFY=1`, the
//! last task of the parent waits a minute: a test kills the process there, after the child
//! finished. Data lives where the default engine puts it (`FLUX_HOME`, default `.flux`).

use std::io::Write as _;

use flux::prelude::*;
use serde::{Deserialize, Serialize};

/// An order and the side-effect log.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Order {
    id: u32,
    file: String,
}

fn append(file: &str, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(file)?;
    writeln!(f, "{line}")?;
    f.sync_data()
}

#[flux::task]
async fn reserve(order: Order) -> Result<String, std::io::Error> {
    append(&order.file, &format!("reserve {}", order.id))?;
    Ok(format!("reserved {}", order.id))
}

#[flux::task]
async fn pack(order: Order) -> Result<String, std::io::Error> {
    append(&order.file, &format!("pack {}", order.id))?;
    Ok(format!("packed {}", order.id))
}

#[flux::task]
async fn notify(order: Order) -> Result<String, std::io::Error> {
    append(&order.file, &format!("notify start {}", order.id))?;
    if std::env::var_os("FLUX_SLOW_NOTIFY").is_some() {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    }
    append(&order.file, &format!("notify done {}", order.id))?;
    Ok(format!("notified {}", order.id))
}

/// The child: packs the order.
#[flux::workflow]
async fn fulfil(ctx: ExecutionContext<Order>) -> flux::Result<String> {
    pack(ctx.input().clone()).await
}

/// The parent: reserves, has the child fulfil the order, then notifies.
#[flux::workflow]
async fn order_flow(ctx: ExecutionContext<Order>) -> flux::Result<Vec<String>> {
    let order = ctx.input().clone();
    let reserved = reserve(order.clone()).await?;
    let packed = fulfil.call(order.clone()).await?;
    let notified = notify(order).await?;
    Ok(vec![reserved, packed, notified])
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => {
            let file = std::env::temp_dir().join(format!("flux-subworkflow-{}.log", std::process::id()));
            order_flow.run(Order { id: 7, file: file.display().to_string() }).await
        }
        ["run", id, file] => order_flow.run_with_id(*id, Order { id: 7, file: file.to_string() }).await,
        ["replay", id] => order_flow.replay(id).await,
        _ => {
            eprintln!("usage: subworkflow [run <id> <file> | replay <id>]");
            return std::process::ExitCode::from(2);
        }
    };
    let execution = match result {
        Ok(execution) => execution,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("parent {}: {}", execution.execution_id(), execution.state());
    if let Some(output) = execution.output() {
        println!("output: {output:?}");
    }
    // The child's execution id is derived from the parent's: find it through the parent's log.
    for event in execution.events() {
        println!("  {:<22} {}", event.kind().to_string(), event.name());
    }
    std::process::ExitCode::SUCCESS
}
