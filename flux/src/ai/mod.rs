//! AI agents as durable tasks (feature `ai`).
