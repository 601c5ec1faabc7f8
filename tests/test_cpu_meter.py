"""local.cpu_meter charges each function the CPU its code uses, wherever that code runs.

The meter patches asyncio, ThreadPoolExecutor, threading and anyio process-wide, so the scenario
runs in a fresh interpreter and prints what the meters saw.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

SCENARIO = r"""
import asyncio, json, threading, time
from concurrent.futures import ThreadPoolExecutor

from local import cpu_meter

cpu_meter.install()

import anyio.to_thread


def burn(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


pool = ThreadPoolExecutor(max_workers=2)
burn(0.05)  # outside any function
with cpu_meter.invocation("Sync"):
    burn(0.05)  # on its own thread
    pool.submit(burn, 0.05).result()  # handed to a pool
    timer = threading.Timer(0, burn, [0.05])  # a thread it starts
    timer.start()
    timer.join()
    with cpu_meter.invocation("Nested"):  # an invocation inside another: not charged twice
        burn(0.05)
pool.submit(burn, 0.05).result()  # a pool task outside any function


async def spawned():
    burn(0.03)
    await asyncio.sleep(0)
    burn(0.03)


async def request():
    with cpu_meter.charging("Async"):
        burn(0.03)  # its own event loop steps
        await asyncio.sleep(0)
        await asyncio.to_thread(burn, 0.03)
        await anyio.to_thread.run_sync(burn, 0.03)
        await asyncio.create_task(spawned())  # a task it spawns inherits its context


async def bystander():  # another request's work interleaved on the same loop
    for _ in range(5):
        burn(0.01)
        await asyncio.sleep(0)


async def main():
    await anyio.to_thread.run_sync(burn, 0)  # first calls import and start what they need
    await asyncio.to_thread(burn, 0)
    await asyncio.gather(request(), bystander())


asyncio.run(main())
print(json.dumps(cpu_meter.snapshot()["functions"]))
"""


def test_each_function_is_charged_its_own_cpu_and_nothing_else() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCENARIO], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    meters = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(meters) == {"Sync", "Nested", "Async"}
    # Expected CPU plus at most a little of the machinery's own (thread starts, loop steps).
    assert 0.15 <= meters["Sync"]["cpu"] < 0.17, meters
    assert 0.05 <= meters["Nested"]["cpu"] < 0.06, meters
    assert 0.15 <= meters["Async"]["cpu"] < 0.17, meters  # the bystander's 0.05 s is not in it
    assert [meters[name]["invocations"] for name in ("Sync", "Nested", "Async")] == [1, 1, 1]
