//! [`TaskOptions`]: retries, timeout and cache of a task.

use std::borrow::Cow;
use std::time::Duration;

/// The longest wait between two attempts.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(600);

/// How a task is retried, bounded and cached. Set with `#[flux::task(...)]`, read from
/// `task::OPTIONS`, and overridden for one call with `task::with_options(options).call(args)`.
///
/// The fields can be read; new options are set with the builder methods, starting from
/// [`TaskOptions::new`] (or a task's `OPTIONS`), so that adding an option never breaks a caller.
///
/// ```
/// use std::time::Duration;
/// let options = flux::TaskOptions::new()
///     .retry_max_attempts(3)
///     .retry_delay(Duration::from_millis(100))
///     .timeout(Duration::from_secs(30));
/// assert_eq!(options.retry_backoff, 2.0);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TaskOptions {
    /// Extra attempts after the first (default 0).
    pub retry_max_attempts: u32,
    /// Wait before the first retry (default 1 s; capped at [`MAX_RETRY_DELAY`]).
    pub retry_delay: Duration,
    /// Multiplier applied to the delay after each failed retry (default 2).
    pub retry_backoff: f64,
    /// Limit for each attempt; `None` (or zero) waits forever (default).
    pub timeout: Option<Duration>,
    /// Reuse a result recorded by any execution for the same task id (without `~n`).
    pub cache: bool,
    /// How long a cached result stays valid; `None` keeps it until cleared.
    pub cache_ttl: Option<Duration>,
    /// Where the output is kept: `None` in the log (inline), or the name of one of the engine's
    /// output storages (`"file"`), with only a reference in the log.
    pub output_storage: Option<Cow<'static, str>>,
    /// How many attempts of this task (by name) an engine runs at once, across all executions;
    /// `None`: no limit (default). An attempt beyond the limit waits its turn, first come, first
    /// served, after its `TASK_STARTED`.
    pub max_concurrency: Option<usize>,
}

impl Default for TaskOptions {
    fn default() -> Self {
        TaskOptions::new()
    }
}

impl TaskOptions {
    /// The defaults: no retry, 1 s first delay, backoff 2, no timeout, no cache.
    pub const fn new() -> Self {
        TaskOptions {
            retry_max_attempts: 0,
            retry_delay: Duration::from_secs(1),
            retry_backoff: 2.0,
            timeout: None,
            cache: false,
            cache_ttl: None,
            output_storage: None,
            max_concurrency: None,
        }
    }

    /// Sets how many attempts of the task an engine runs at once (at least 1).
    pub const fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(if n == 0 { 1 } else { n });
        self
    }

    /// Sets the number of extra attempts.
    pub const fn retry_max_attempts(mut self, n: u32) -> Self {
        self.retry_max_attempts = n;
        self
    }

    /// Sets the first delay between attempts.
    pub const fn retry_delay(mut self, d: Duration) -> Self {
        self.retry_delay = d;
        self
    }

    /// Sets the backoff multiplier.
    pub const fn retry_backoff(mut self, b: f64) -> Self {
        self.retry_backoff = b;
        self
    }

    /// Sets the per-attempt limit (`Duration::ZERO` means none).
    pub const fn timeout(mut self, d: Duration) -> Self {
        self.timeout = if d.is_zero() { None } else { Some(d) };
        self
    }

    /// Turns the result cache on or off.
    pub const fn cache(mut self, on: bool) -> Self {
        self.cache = on;
        self
    }

    /// Turns the result cache on, with results valid for `ttl`.
    pub const fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache = true;
        self.cache_ttl = Some(ttl);
        self
    }

    /// The defaults, with outputs kept in the engine's output storage `name` (usable in
    /// constants, where [`TaskOptions::output_storage`] is not).
    pub const fn stored_in(name: &'static str) -> Self {
        TaskOptions {
            retry_max_attempts: 0,
            retry_delay: Duration::from_secs(1),
            retry_backoff: 2.0,
            timeout: None,
            cache: false,
            cache_ttl: None,
            output_storage: Some(Cow::Borrowed(name)),
            max_concurrency: None,
        }
    }

    /// Keeps the output in the engine's output storage of this name (`"file"`).
    pub fn output_storage(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.output_storage = Some(name.into());
        self
    }

    /// The wait before retry `k` (from 1): the first delay, multiplied by the backoff after each
    /// failed retry, never more than [`MAX_RETRY_DELAY`].
    pub fn delay_before(&self, k: u32) -> Duration {
        let cap = MAX_RETRY_DELAY.as_secs_f64();
        let mut secs = self.retry_delay.as_secs_f64().min(cap);
        for _ in 1..k {
            let next = secs * self.retry_backoff;
            if next.is_finite() && next > 0.0 {
                secs = next.min(cap);
            }
            if secs >= cap {
                break;
            }
        }
        Duration::from_secs_f64(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_by_the_backoff_and_are_capped() {
        let o = TaskOptions::new().retry_delay(Duration::from_secs(1)).retry_backoff(3.0);
        let delays: Vec<u64> = (1..=4).map(|k| o.delay_before(k).as_secs()).collect();
        assert_eq!(delays, [1, 3, 9, 27]);
        assert_eq!(o.delay_before(20), MAX_RETRY_DELAY);
        let big = TaskOptions::new().retry_delay(Duration::from_secs(3600));
        assert_eq!(big.delay_before(1), MAX_RETRY_DELAY);
        assert_eq!(TaskOptions::new().retry_delay(Duration::ZERO).delay_before(3), Duration::ZERO);
    }
}
