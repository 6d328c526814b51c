"""A simulated AWS (Lambda and SQS as AWS documents them) for the real engine, in virtual time.

How long will a million items take, what will it cost, will it be throttled, how fast does
Lambda add environments? :class:`SimulatedAws` answers before the bill does: its clients stand
in for aioboto3's, so ``LambdaTarget(client=aws.lambda_client())`` and
``SqsTarget(client=aws.sqs_client())`` make the calls they make to AWS and meet 429s with AWS's
reasons, and ``adaptive=True``, retries and deadlines act as they do there. On a
:class:`VirtualClockLoop` hours of simulated fan-out take seconds. ``python -m aiofanout plan``
is the command line over it.

Example::

    from aiofanout import LambdaTarget, dispatch_many
    from aiofanout.sim import SimulatedAws, run_in_virtual_time

    async def main():
        async with SimulatedAws(account_concurrency=1000, seed=1) as aws:
            aws.function("worker", duration=0.5, memory=1024)
            target = LambdaTarget("worker", task=None, client=aws.lambda_client())
            result = await dispatch_many(target, range(100_000), concurrency=1000)
            return result.counts, aws.cost().total

    print(run_in_virtual_time(main()))
"""

from __future__ import annotations

from .._public import show_public_path
from ._clock import VirtualClockLoop, run_in_virtual_time
from ._cost import Cost, Prices
from ._durations import Fixed, LogNormal, Samples, Uniform
from ._simulated_aws import SimulatedAws

__all__ = [
    "Cost",
    "Fixed",
    "LogNormal",
    "Prices",
    "Samples",
    "SimulatedAws",
    "Uniform",
    "VirtualClockLoop",
    "run_in_virtual_time",
]

show_public_path(__name__, __all__, globals())
