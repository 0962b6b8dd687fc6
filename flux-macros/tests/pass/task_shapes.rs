//! Task and workflow shapes that must compile and run.
#![deny(warnings)]

use flux::prelude::*;

mod billing {
    use flux::prelude::*;

    /// Documented, crate-visible, with a mutable argument and a lint attribute.
    #[flux::task]
    #[allow(clippy::needless_pass_by_value)]
    pub(crate) async fn total(mut prices: Vec<u32>) -> u32 {
        prices.sort_unstable();
        prices.iter().sum()
    }

    /// Returns an `io::Result` alias: still fallible, `u64` is recorded.
    #[flux::task(retry_max_attempts = 1, retry_delay = 0)]
    pub fn read_size(len: u64) -> std::io::Result<u64> {
        Ok(len)
    }

    /// Returns nothing.
    #[flux::task]
    pub async fn log(_line: String) {}

    /// A raw identifier and an unnamed argument.
    #[flux::task]
    pub async fn r#match(_: u8, pattern: String) -> bool {
        pattern.is_empty()
    }

    /// Arguments named like the macro's own locals.
    #[flux::task]
    pub async fn collide(__flux_call: u32, __flux_args: u32, __flux_bytes: u32) -> u32 {
        __flux_call + __flux_args + __flux_bytes
    }

    #[flux::workflow]
    #[inline]
    pub async fn checkout(ctx: ExecutionContext<Vec<u32>>) -> flux::Result<(u32, u64, bool, u32)> {
        let sum = total(ctx.input().clone()).await?;
        let size = read_size(3).await?;
        log(format!("total {sum}")).await?;
        let matched = r#match(1, String::new()).await?;
        let collided = collide(1, 2, 3).await?;
        Ok((sum, size, matched, collided))
    }
}

mod handlers {
    pub fn offline(x: u32) -> Result<u32, String> {
        Ok(x)
    }

    pub async fn undo(_x: u32) {}

    pub fn nothing_fallback() -> u32 {
        0
    }
}

mod chained {
    /// Fallbacks and rollbacks named by `crate::` and `super::` paths, async handlers for a
    /// blocking task, and a task without arguments with a fallback.
    #[flux::task(fallback = crate::handlers::offline, rollback = super::handlers::undo)]
    pub async fn charge(x: u32) -> Result<u32, String> {
        Err(format!("{x}"))
    }

    #[flux::task(rollback = crate::handlers::undo)]
    pub fn blocking_charge(x: u32) -> Result<u32, String> {
        Ok(x)
    }

    #[flux::task(fallback = crate::handlers::nothing_fallback, timeout = "1s")]
    pub async fn nothing() -> u32 {
        1
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // A task declared inside a function body.
    #[flux::task(name = "local_{x}")]
    async fn local(x: u32) -> u32 {
        x + 1
    }

    #[flux::workflow]
    async fn uses_local(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
        local(*ctx.input()).await
    }

    let engine = Engine::in_memory();
    let execution = billing::checkout.on(&engine).run(vec![3, 1, 2]).await.expect("run");
    assert_eq!(execution.output(), Some(&(6, 3, true, 6)));
    assert_eq!(billing::r#match::NAME, "match");
    assert_eq!(billing::checkout::NAME, "checkout");
    let execution = uses_local.on(&engine).run(41).await.expect("run");
    assert_eq!(execution.output(), Some(&42));
    assert_eq!(execution.events()[1].name(), "local_41");
    assert_eq!(chained::charge(2).await, Err(flux::Error::new(flux::ErrorKind::TaskFailed, "2")));
    assert_eq!(chained::blocking_charge(3).await, Ok(3));
    assert_eq!(chained::nothing().await, Ok(1));
}
