//! Shared helpers of the examples, integration tests and benchmarks of flux (not published).
