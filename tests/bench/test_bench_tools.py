"""The bench tools that issue 13's figures rest on: per-thread CPU from /proc, the
early-answering copies of the receiver that bound each stage's cost, and the issue's own
reference sketch."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa

from bench.ceiling import STAGES, VARIANTS, variant_tree
from bench.disk_writes import group_write_bytes, process_write_bytes
from bench.harness import ContentLengthServer, receiver_env
from bench.ingest import REQUESTS_FILE_SIZE, measured_from, wrk_command
from bench.ingest_cpu import app_runs
from bench.openloop import offered_rate
from bench.payloads import SignedCallback, bench_tokens, signed_callbacks
from bench.server_cpu import cpu_per_request, thread_times
from bench.sketch import sketch_asgi_app
from vlmhooks.store import migrate
from vlmhooks.store.db import make_engine


def _burn(
    seconds: float, tids: list[int], burned: threading.Event, release: threading.Event
) -> None:
    tids.append(threading.get_native_id())
    deadline = time.thread_time() + seconds
    while time.thread_time() < deadline:  # a system call: made rarely, so user time leads
        sum(range(10_000))
    burned.set()
    release.wait()  # alive until sampled: /proc forgets a thread once it ends


def test_cpu_per_request_charges_the_thread_that_spent_it() -> None:
    before = thread_times(os.getpid())
    tids: list[int] = []
    burned, release = threading.Event(), threading.Event()
    burner = threading.Thread(target=_burn, args=(0.3, tids, burned, release))
    burner.start()
    try:
        assert burned.wait(30)
        after = thread_times(os.getpid())
    finally:
        release.set()
        burner.join()
    threads = cpu_per_request(before, after, requests=100)
    by_tid = {thread.tid: thread for thread in threads}
    burned = by_tid[tids[0]]
    # 0.3 s over 100 requests is 3,000 µs each; /proc counts in ticks of 10 ms.
    assert 2_500 <= burned.total_us <= 4_500
    assert burned.user_us > burned.system_us


def test_cpu_per_request_sorts_busiest_first_and_leaves_out_idle_threads() -> None:
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    sample = {(1, 1): (10, 5), (1, 2): (7, 0)}
    # Thread 1: 2 ticks of user time; thread 2: none; thread 3 (new): 4 ticks of kernel.
    later = {(1, 1): (12, 5), (1, 2): (7, 0), (1, 3): (0, 4)}
    threads = cpu_per_request(sample, later, requests=10)
    assert [(t.tid, t.user_us, t.system_us) for t in threads] == [
        (3, 0.0, 4 * tick_us / 10),
        (1, 2 * tick_us / 10, 0.0),
    ]
    assert cpu_per_request(sample, later, requests=0) == []


@pytest.mark.parametrize("name", sorted({**VARIANTS, **STAGES}))
def test_each_ceiling_variant_applies_and_compiles(name: str, tmp_path: Path) -> None:
    # Fails here, in CI, when receiver/ingest/callbacks.py moves the line an edit goes after.
    root = variant_tree(name, tmp_path)
    source = (root / "receiver" / "ingest" / "callbacks.py").read_text()
    _anchor, addition = {**VARIANTS, **STAGES}[name]
    assert addition in source
    compile(source, "callbacks.py", "exec")


def test_the_issues_sketch_stores_each_callback_once_and_refuses_a_bad_signature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench.sketch is a bench target: it must really store what it acknowledges, in its
    own minimal tables (an empty file, not the receiver's migrations)."""
    url = f"sqlite:///{tmp_path / 'sketch.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    first, second = signed_callbacks(2, prefix="sketch", ids="ordered")

    async def post_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=sketch_asgi_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

            def post(callback: SignedCallback, signature: str) -> Any:
                headers = {"x-vlmrun-signature": signature}
                return client.post(callback.path, content=callback.body, headers=headers)

            # Concurrently, so that both ride one group commit; then a redelivery.
            together = await asyncio.gather(
                post(first, first.signature), post(second, second.signature)
            )
            again = await post(first, first.signature)
            forged = await post(second, "sha256=" + "0" * 64)
            return [*together, again, forged]

    answers = asyncio.run(post_all())
    assert [answer.status_code for answer in answers] == [200, 200, 200, 401]
    assert answers[0].json() == {"id": "sketch_00000000", "status": "completed"}
    engine = make_engine(url)
    with engine.connect() as connection:

        def count(table: str) -> int:
            query = sa.select(sa.func.count()).select_from(sa.table(table))
            return int(connection.execute(query).scalar_one())

        def rows(sql: str) -> list[tuple[Any, ...]]:
            return [tuple(row) for row in connection.execute(sa.text(sql))]

        counts = {table: count(table) for table in ("prediction", "delivery", "prediction_event")}
        stored = connection.execute(
            sa.text(
                "SELECT submission_id, domain, status, delivery_count, body_sha256, "
                "received_at = updated_at, response FROM prediction WHERE id = 'sketch_00000000'"
            )
        ).one()
        deliveries = rows("SELECT prediction_id, body FROM delivery ORDER BY id")
        events = rows(
            "SELECT e.prediction_id, e.type, e.data, e.prediction_key = p.row_key "
            "FROM prediction_event e JOIN prediction p ON p.id = e.prediction_id ORDER BY e.seq"
        )
        # Every index in the file: the prediction id's uniqueness, and nothing else.
        indexes = rows("SELECT tbl_name, name, sql FROM sqlite_master WHERE type = 'index'")
        unique = rows("PRAGMA index_list(prediction)")
        unique_columns = rows(f"PRAGMA index_info({indexes[0][1]})") if indexes else []
    engine.dispose()
    # The redelivery is logged and evented (the sketch keeps no dedup beyond the upsert's).
    assert counts == {"prediction": 2, "delivery": 3, "prediction_event": 3}
    assert tuple(stored) == (
        "sub_bench_sketch_0",
        "document.invoice",
        "completed",
        1,
        hashlib.sha256(first.body).hexdigest(),
        1,
        orjson.dumps(orjson.loads(first.body)["response"]),
    )
    # Each delivery and each event carries the body it came with, keyed to its prediction.
    sent = [(orjson.loads(body)["id"], body) for body in (first.body, second.body, first.body)]
    assert sorted(deliveries) == sorted(sent)
    assert sorted(events) == sorted((pid, "prediction.completed", body, 1) for pid, body in sent)
    assert indexes == [("prediction", "sqlite_autoindex_prediction_1", None)]
    assert [(name, is_unique) for _, name, is_unique, *_ in unique] == [
        ("sqlite_autoindex_prediction_1", 1)
    ]
    assert [column for *_, column in unique_columns] == ["id"]


@pytest.mark.parametrize("app", ["receiver", "sketch"])
def test_the_cpu_bench_drives_each_app_through_every_run(
    app: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench.ingest_cpu's runs, two per app: each run stores its own callbacks (the sketch
    is rebuilt per run, since its committer lives on the first run's event loop)."""
    url = f"sqlite:///{tmp_path / 'cpu.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    for name, value in receiver_env(url).items():
        monkeypatch.setenv(name, value)
    callbacks = list(signed_callbacks(24, prefix=f"cpu_{app}"))
    statuses = [
        drive(callbacks[run * 12 : (run + 1) * 12], 4) for run, drive in enumerate(app_runs(app, 2))
    ]
    with engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT id FROM prediction ORDER BY id")).scalars()
        stored_ids = list(stored)
    engine.dispose()
    assert statuses == [[200] * 12, [200] * 12]
    assert stored_ids == sorted(orjson.loads(callback.body)["id"] for callback in callbacks)


def test_the_open_loops_rate_is_half_or_a_positive_number() -> None:
    assert offered_rate("half") is None
    assert offered_rate("1500") == 1500.0
    assert offered_rate("2.5e3") == 2500.0
    for bad in ("", "abc", "0", "-3", "nan", "inf", "HALF"):
        with pytest.raises(argparse.ArgumentTypeError, match="neither 'half' nor a positive"):
            offered_rate(bad)


def test_bench_callbacks_carry_random_uuid_ids_ulid_submissions_and_rising_created_at() -> None:
    """As the API and vlm-submit mint them: random prediction ids (so each callback lands
    on a random page of the id's index), submission ids and `created_at` in time order."""
    callbacks = list(signed_callbacks(50))
    bodies = [orjson.loads(callback.body) for callback in callbacks]
    ids = [body["id"] for body in bodies]
    assert all(uuid.UUID(prediction_id).version == 4 for prediction_id in ids)
    assert ids != sorted(ids) and len(set(ids)) == len(ids)
    created = [body["created_at"] for body in bodies]
    assert created == sorted(created) and len(set(created)) == len(created)
    tokens = bench_tokens()
    submissions = [tokens.verify(c.path.rsplit("/", 1)[1]) for c in callbacks]
    assert all(s.startswith("sub_") for s in submissions)
    # ULIDs sort by their first 10 characters, the millisecond (two callbacks share one).
    millis = [submission[4:14] for submission in submissions]
    assert millis == sorted(millis) and len(set(submissions)) == len(submissions)
    assert [orjson.loads(c.body)["id"] for c in signed_callbacks(50)] == ids  # reproducible
    ordered = [orjson.loads(c.body)["id"] for c in signed_callbacks(3, ids="ordered")]
    assert ordered == ["pred_bench_00000000", "pred_bench_00000001", "pred_bench_00000002"]


def test_bytes_written_count_what_a_process_of_the_group_wrote(tmp_path: Path) -> None:
    """bench.disk_writes: 1 MiB written and fsynced here shows in this process's count and
    in its process group's (other processes of the group can only add to it)."""
    own, group = process_write_bytes(), group_write_bytes(os.getpgid(0))
    with (tmp_path / "written").open("wb") as out:
        out.write(b"x" * (1 << 20))
        out.flush()
        os.fsync(out.fileno())
    assert process_write_bytes() - own >= 1 << 20
    assert group_write_bytes(os.getpgid(0)) - group >= 1 << 20


def test_the_bench_peer_answers_each_request_once_its_whole_body_arrived() -> None:
    answered: list[bytes] = []

    class Echo(ContentLengthServer):
        def answer(self, body: bytes) -> bytes:
            answered.append(body)
            return b"HTTP/1.1 204 No Content\r\n\r\n"

    class Transport(asyncio.Transport):
        def __init__(self) -> None:
            super().__init__()
            self.written: list[bytes] = []

        def write(self, data: bytes | bytearray | memoryview) -> None:
            self.written.append(bytes(data))

    peer, transport = Echo(), Transport()
    peer.connection_made(transport)
    peer.data_received(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcPOST / HTTP/1.1\r\n")
    peer.data_received(b"Content-Length: 2\r\n\r\nx")
    assert answered == [b"abc"]  # the second body is not whole yet
    peer.data_received(b"y")
    assert answered == [b"abc", b"xy"]
    assert transport.written == [b"HTTP/1.1 204 No Content\r\n\r\n"] * 2


def test_the_measured_run_sends_new_predictions_not_the_warm_ups() -> None:
    """The warm-up sends from the first line of the request file, the measured run from a
    quarter on: at a rate far above this machine's (10,000 callbacks/s), the 2 s warm-up
    stays below that line and the 10 s run does not wrap around the rest."""
    rate, warm_up_seconds, run_seconds = 10_000, 2, 10
    skip = measured_from(REQUESTS_FILE_SIZE)
    assert rate * warm_up_seconds < skip
    assert skip + rate * run_seconds <= REQUESTS_FILE_SIZE
    command = wrk_command(
        "http://127.0.0.1:1",
        Path("requests.tsv"),
        threads=2,
        connections=32,
        duration=10,
        skip=skip,
    )
    # The Lua script's arguments: the file, the thread count, the lines to skip.
    assert command[-3:] == ["requests.tsv", "2", str(skip)]
