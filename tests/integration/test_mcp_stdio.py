"""``inboxd mcp`` over stdio, started by the SDK's own client: as a named user or an API key's
owner, a fetch waited for with progress (a worker of this process runs it), cancel, owner
isolation, and no start without knowing who the agent is."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from inboxd.jobs.worker import Worker
from inboxd.mail.demo import generate_demo_maildir
from inboxd.store.accounts import Accounts
from inboxd.store.users import Users
from tests.support.agents import TOOLS, data, over_stdio, text
from tests.support.apps import make_app, run_cli, subprocess_env
from tests.support.mail import make_message


def test_an_agent_on_stdio_fetches_waits_cancels_and_sees_only_its_own(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/inboxd.db"
    app = make_app(url, tmp_path, sync_batch_messages=20)
    worker = Worker(app, concurrency=1)
    runner = threading.Thread(target=worker.run, kwargs={"install_signals": False})
    try:
        users = Users(app.engine)
        ann, bob = users.add("ann"), users.add("bob")
        bob_key = users.create_key(bob).key
        generate_demo_maildir(tmp_path / "demo", count=300)
        registry = Accounts(app.engine, app.settings)
        registry.add("maildir", "inbox", {"path": str(tmp_path / "demo")}, owner=ann.id)
        bobs = tmp_path / "bobs"
        for sub in ("cur", "new", "tmp"):
            (bobs / sub).mkdir(parents=True)
        (bobs / "new" / "1.M1P1.test").write_bytes(make_message(1))
        registry.add("maildir", "bobs", {"path": str(bobs)}, owner=bob.id)
        env = subprocess_env(url, tmp_path / "data")
        log = tmp_path / "mcp-stderr.log"
        notes: list[float] = []

        async def progress(progress: float, total: float | None, message: str | None) -> None:
            if not notes:
                runner.start()  # only now: the wait sees the job pending, then moving
            notes.append(progress)

        async def as_ann() -> dict[str, Any]:
            async with over_stdio(env, "--user", "ann", errlog=log) as client:
                assert {t.name for t in (await client.list_tools()).tools} == TOOLS
                fetch = data(await client.call_tool("trigger_email_fetch", {"account": "inbox"}))
                waited = data(
                    await client.call_tool(
                        "wait_for_job",
                        {"job_id": fetch["job_id"], "timeout_seconds": 60},
                        progress_callback=progress,
                    )
                )
                assert waited["job"]["status"] == "completed", waited["job"]["error"]
                assert waited["job"]["result"]["fetched"] == 300
                await asyncio.to_thread(worker.stop)
                await asyncio.to_thread(runner.join, 15)
                again = data(await client.call_tool("trigger_email_fetch", {"account": "inbox"}))
                assert again["job_id"] != fetch["job_id"]
                cancelled = data(await client.call_tool("cancel_job", {"job_id": again["job_id"]}))
                assert cancelled["job"]["status"] == "cancelled"
                return fetch

        fetch = asyncio.run(as_ann())
        assert len(notes) >= 2 and notes[0] == 0.0 and notes[-1] == 100.0
        assert notes == sorted(set(notes))

        async def as_bob() -> None:
            async with over_stdio(env | {"INBOXD_API_KEY": bob_key}, errlog=log) as client:
                refused = await client.call_tool("get_job", {"job_id": fetch["job_id"]})
                assert refused.is_error and "NotFound" in text(refused)
                assert data(await client.call_tool("list_jobs", {}))["jobs"] == []
                status = data(await client.call_tool("get_email_status", {}))
                assert [a["name"] for a in status["accounts"]] == ["bobs"]

        asyncio.run(as_bob())
    finally:
        if runner.is_alive():
            worker.stop(hard=True)
            runner.join(timeout=15)
        app.close()


def test_stdio_needs_to_know_who_the_agent_is(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/inboxd.db"
    app = make_app(url, tmp_path)
    try:
        users = Users(app.engine)
        users.add("ann")
        bob_key = users.create_key(users.add("bob")).key
    finally:
        app.close()
    env = subprocess_env(url, tmp_path / "data")
    env.pop("INBOXD_API_KEY", None)
    nobody = run_cli(env, "mcp")
    assert nobody.returncode == 2 and "--user NAME or INBOXD_API_KEY" in nobody.stderr
    unknown = run_cli(env, "mcp", "--user", "carol")
    assert unknown.returncode == 1 and "carol" in unknown.stderr
    bad_key = run_cli(env | {"INBOXD_API_KEY": "ibx_wrong"}, "mcp")
    assert bad_key.returncode == 1 and "not a valid" in bad_key.stderr
    mismatch = run_cli(env | {"INBOXD_API_KEY": bob_key}, "mcp", "--user", "ann")
    assert mismatch.returncode == 2 and "'bob'" in mismatch.stderr
