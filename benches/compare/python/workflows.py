"""Workflows measured by bench_flux.py.

This file is also registered with the Flux server for the `server` workload,
which imports it on the server and on the worker: keep it free of top-level
side effects.
"""

from flux import ExecutionContext, task, workflow
from flux.tasks import parallel

# How many times add_one's body has run in this process. The replay workload
# uses it to prove that replaying an execution does not run its tasks again.
calls = 0


@task
async def add_one(i: int) -> int:
    global calls
    calls += 1
    return i + 1


@workflow
async def sequential(ctx: ExecutionContext[int]) -> int:
    total = 0
    for i in range(ctx.input):
        total += await add_one(i)
    return total


@workflow
async def mapped(ctx: ExecutionContext[int]) -> int:
    return sum(await add_one.map(range(ctx.input)))


@workflow
async def fan_out(ctx: ExecutionContext[int]) -> int:
    return sum(await parallel(*(add_one(i) for i in range(ctx.input))))
