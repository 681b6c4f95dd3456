"""`vlm-sandbox demo`: the whole loop on loopback, from the shipped samples to stored predictions.

`servers` runs a sandbox API and a receiver under uvicorn in threads of this process; `run`
sends the samples through the real `Submitter` with signed callback URLs and waits through the
receiver's lookup API; `report` prints what was stored.
"""

from sandbox.demo.report import DemoRow, summarize_response
from sandbox.demo.run import DemoOptions, run_demo
from sandbox.demo.servers import LoopbackServer, bind_loopback
from sandbox.errors import DemoError

__all__ = [
    "DemoError",
    "DemoOptions",
    "DemoRow",
    "LoopbackServer",
    "bind_loopback",
    "run_demo",
    "summarize_response",
]
