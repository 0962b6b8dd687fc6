//! A graph of tasks (`flux::Graph`), run as one durable workflow on the default engine (SQLite
//! in `.flux/`).
//!
//! ```text
//! cargo run --example graph            # order 7: a small order, shipped by post
//! cargo run --example graph -- 1200    # order 1200: a large order, shipped by freight
//! ```
//!
//! The graph `ship_order` (a task of the workflow `shipping`): `load_order` feeds `price` and
//! `check_stock`, which run concurrently; both feed `quote`, which takes the pair of their
//! outputs. `quote` goes on to `ship_by_post` when the total is small and to `ship_by_freight`
//! otherwise; the branch not taken never starts, and whichever ran is the graph's output.

use std::sync::LazyLock;

use flux::Graph;
use flux::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Order {
    id: u32,
    item: String,
    quantity: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Priced {
    order: u32,
    total_cents: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Quote {
    order: u32,
    total_cents: u64,
    in_stock: bool,
}

#[flux::task]
async fn load_order(id: u32) -> Order {
    // A real program would read a database here; the quantity grows with the id.
    Order { id, item: "widget".to_string(), quantity: id.max(1) }
}

#[flux::task]
async fn price(order: Order) -> Priced {
    Priced { order: order.id, total_cents: u64::from(order.quantity) * 250 }
}

#[flux::task]
async fn check_stock(order: Order) -> bool {
    order.quantity <= 5_000
}

#[flux::task]
async fn quote(inputs: (Priced, bool)) -> Quote {
    let (priced, in_stock) = inputs;
    Quote { order: priced.order, total_cents: priced.total_cents, in_stock }
}

#[flux::task]
async fn ship_by_post(quote: Quote) -> String {
    format!("order {} by post: {} cents, in stock: {}", quote.order, quote.total_cents, quote.in_stock)
}

#[flux::task]
async fn ship_by_freight(quote: Quote) -> String {
    format!("order {} by freight: {} cents, in stock: {}", quote.order, quote.total_cents, quote.in_stock)
}

/// Built once, run by every execution.
static SHIPPING: LazyLock<Graph> = LazyLock::new(|| {
    Graph::new("ship_order")
        .add_node("load_order", load_order)
        .add_node("price", price)
        .add_node("check_stock", check_stock)
        .add_node("quote", quote)
        .add_node("ship_by_post", ship_by_post)
        .add_node("ship_by_freight", ship_by_freight)
        .add_edge("load_order", "price")
        .add_edge("load_order", "check_stock")
        .add_edge("price", "quote")
        .add_edge("check_stock", "quote")
        .add_edge_if("quote", "ship_by_post", |q: &Quote| q.total_cents < 100_000)
        .add_edge_if("quote", "ship_by_freight", |q: &Quote| q.total_cents >= 100_000)
        .start_with("load_order")
        .end_with("ship_by_post")
        .end_with("ship_by_freight")
});

#[flux::workflow]
async fn shipping(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    SHIPPING.clone().validate()?.run(*ctx.input()).await
}

#[tokio::main]
async fn main() -> flux::Result<()> {
    let order = match std::env::args().nth(1) {
        Some(arg) => arg.parse().map_err(|e| flux::Error::new(flux::ErrorKind::Config, format!("order id: {e}")))?,
        None => 7,
    };
    let execution = shipping.run(order).await?;
    match execution.output() {
        Some(output) => println!("output: {output}"),
        None => println!("state: {}", execution.state()),
    }
    if let Some(error) = execution.error() {
        println!("error: {error}");
    }
    println!("execution: {}", execution.execution_id());
    println!("events:");
    for event in execution.events() {
        println!("  {:>2} {:<20} {}", event.seq(), event.kind().to_string(), event.source_id());
    }
    Ok(())
}
