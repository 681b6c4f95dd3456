"""Run by the SDK's own interpreter (tests/receiver/sdk_venv.py): the public `vlmrun` SDK,
used exactly as a backend written for the VLM Run API uses it, against a receiver.

Reads one JSON line of instructions on stdin, answers JSON lines on stdout:
1. the results of client creation, `get`, `list` (several skip/limit), a wrong key and an
   unknown id;
2. then, after a line `go` on stdin, the result of `wait` on a prediction still running.

With ``"mode": "generate_then_wait"`` instead: `image.generate(batch=True, callback_url=...)`
on the API, then at once `predictions.wait` on the receiver; one line with both answers.
"""

import json
import sys
import time
from pathlib import Path

from vlmrun.client import VLMRun
from vlmrun.client.exceptions import AuthenticationError, ResourceNotFoundError


def dump(prediction):
    return prediction.model_dump(mode="json")


def generate_then_wait(plan):
    api = VLMRun(api_key=plan["api_key"], base_url=plan["api_url"], max_retries=1)
    receiver = VLMRun(api_key=plan["receiver_key"], base_url=plan["base_url"], max_retries=1)
    generated = api.image.generate(
        images=[Path(plan["image"])],
        domain="image.caption",
        batch=True,
        callback_url=plan["callback_url"],
    )
    started = time.monotonic()
    try:
        waited = dump(receiver.predictions.wait(generated.id, timeout=30, sleep=1))
    except ResourceNotFoundError as exc:
        waited = {"error": type(exc).__name__, "message": str(exc)}
    seconds = time.monotonic() - started
    print(json.dumps({"generated": dump(generated), "wait": waited, "seconds": seconds}))


def main():
    plan = json.loads(sys.stdin.readline())
    if plan.get("mode") == "generate_then_wait":
        generate_then_wait(plan)
        return
    client = VLMRun(api_key=plan["api_key"], base_url=plan["base_url"], max_retries=1)
    out = {
        "get": dump(client.predictions.get(plan["done_id"])),
        "running": dump(client.predictions.get(plan["running_id"])),
        "lists": [
            [dump(p) for p in client.predictions.list(skip=skip, limit=limit)]
            for skip, limit in plan["pages"]
        ],
        "default_list": [p.id for p in client.predictions.list()],
    }
    try:
        VLMRun(api_key="not-a-key", base_url=plan["base_url"], max_retries=1)
        out["bad_key"] = None
    except AuthenticationError as exc:
        out["bad_key"] = type(exc).__name__
    try:
        client.predictions.get("never-received")
        out["missing"] = None
    except ResourceNotFoundError as exc:
        out["missing"] = type(exc).__name__
    print(json.dumps(out), flush=True)

    assert sys.stdin.readline().strip() == "go"
    started = time.monotonic()
    waited = client.predictions.wait(plan["running_id"], timeout=60, sleep=1)
    print(json.dumps({"wait": dump(waited), "seconds": time.monotonic() - started}), flush=True)


if __name__ == "__main__":
    main()
