//! Changing a workflow while executions of the old code wait at a pause, on a SQLite engine in a
//! temporary directory.
//!
//! ```text
//! cargo run --example versioning
//! ```
//!
//! Version 1 of `order` reserves the item, then waits for an approval. Version 2 reserves it
//! from a warehouse's stock instead. Resuming an execution paused under version 1 with the
//! unpatched version 2 stops with a non-determinism error and changes nothing; with
//! `flux::patched`, the old execution keeps its old path and new executions take the new one.
//! (Each version is a module here; in a real service it is the code of the next deploy.)

use flux::prelude::*;

#[flux::task]
async fn reserve(item: String) -> String {
    println!("  reserve({item}) ran");
    format!("reserved {item}")
}

#[flux::task]
async fn reserve_from_stock(item: String, warehouse: String) -> String {
    println!("  reserve_from_stock({item}, {warehouse}) ran");
    format!("reserved {item} from {warehouse}")
}

mod v1 {
    use super::*;

    #[flux::workflow(name = "order", version = 1)]
    pub async fn order(ctx: ExecutionContext<String>) -> flux::Result<String> {
        let reserved = reserve(ctx.input().clone()).await?;
        let approved: bool = flux::pause("approve").await?;
        Ok(format!("{reserved} (approved: {approved})"))
    }
}

mod v2_unpatched {
    use super::*;

    #[flux::workflow(name = "order", version = 2)]
    pub async fn order(ctx: ExecutionContext<String>) -> flux::Result<String> {
        let reserved = reserve_from_stock(ctx.input().clone(), "north".to_string()).await?;
        let approved: bool = flux::pause("approve").await?;
        Ok(format!("{reserved} (approved: {approved})"))
    }
}

mod v2 {
    use super::*;

    #[flux::workflow(name = "order", version = 2)]
    pub async fn order(ctx: ExecutionContext<String>) -> flux::Result<String> {
        let item = ctx.input().clone();
        let reserved = if flux::patched("reserve-from-stock") {
            reserve_from_stock(item, "north".to_string()).await?
        } else {
            reserve(item).await?
        };
        let approved: bool = flux::pause("approve").await?;
        Ok(format!("{reserved} (approved: {approved})"))
    }
}

#[tokio::main]
async fn main() -> flux::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| flux::Error::new(flux::ErrorKind::Storage, e.to_string()))?;
    let engine = Engine::open(dir.path().join("flux.db"))?;

    println!("version 1 starts an order:");
    let old = v1::order.on(&engine).run("lamp".to_string()).await?;
    println!("  -> {} at `{}`", old.state(), old.pause_name().unwrap_or_default());
    let id = old.execution_id().to_string();

    println!("version 2 without a patch resumes it:");
    match v2_unpatched::order.on(&engine).resume(&id, true).await {
        Err(e) if e.kind() == flux::ErrorKind::NonDeterminism => println!("  -> refused: {e}"),
        other => println!("  -> unexpected: {other:?}"),
    }
    println!("  stored state is still {}", v1::order.on(&engine).status(&id).await?.state());

    println!("version 2 with `flux::patched` resumes it:");
    let old = v2::order.on(&engine).resume(&id, true).await?;
    println!("  -> {}: {}", old.state(), old.output().cloned().unwrap_or_default());

    println!("version 2 starts a new order:");
    let new = v2::order.on(&engine).run("desk".to_string()).await?;
    let new = v2::order.on(&engine).resume(new.execution_id(), true).await?;
    println!("  -> {}: {}", new.state(), new.output().cloned().unwrap_or_default());
    Ok(())
}
