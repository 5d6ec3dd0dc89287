"""WAL checkpoints off the commit path (bot/journal/checkpoint.py): the journal's own commits never
checkpoint, a background connection does, and after a long burst the journal checkpoints once, after a
commit that does not precede an order."""

from __future__ import annotations

import gc
import sqlite3
import struct
import time
from pathlib import Path

from bot.journal import Journal
from bot.journal.checkpoint import WalCheckpointer


def _trade(tid: str) -> dict[str, object]:
    return {"trade_id": tid, "symbol": "BTCUSDT", "setup": "s", "side": "long", "intent_price": 1.0}


def _leg(tid: str) -> dict[str, object]:
    return {"client_id": f"{tid}-entry", "trade_id": tid, "role": "entry", "symbol": "BTCUSDT", "side": "BUY",
            "kind": "LIMIT", "qty": 1.0, "status": "PENDING_NEW"}


def _wait(cond, timeout_s: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _wal_generation(path: str) -> int:
    """The WAL header's checkpoint sequence number: it changes when a writer rewinds the WAL to its start,
    which it does only after a checkpoint copied every frame. Read from the file: asking SQLite would
    checkpoint."""
    with open(path + "-wal", "rb") as fh:
        return int(struct.unpack(">I", fh.read(32)[12:16])[0])


def test_commits_never_checkpoint_and_the_background_thread_does(tmp_path: Path) -> None:
    path = str(tmp_path / "j.sqlite")
    j = Journal(path)
    try:
        assert j._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert j._ckpt is not None and j._ckpt._thread.is_alive()
        main_before = Path(path).stat().st_size
        for i in range(20):
            j.open_trade(i, _trade(f"t{i}"), [_leg(f"t{i}")], "ENTERING")
        # the rows reach the main database file without any commit of ours having checkpointed
        assert _wait(lambda: j._ckpt is not None and j._ckpt.checkpoints >= 1)
        assert _wait(lambda: Path(path).stat().st_size > main_before)
        assert j._ckpt.errors == 0
        assert len(j.rows("legs")) == 20
    finally:
        j.close()
    assert not j._ckpt._thread.is_alive()
    assert not Path(path + "-wal").exists()  # the last connection closed: WAL checkpointed and removed


def test_after_a_long_burst_the_journal_checkpoints_once_but_never_before_an_order(tmp_path: Path) -> None:
    path = str(tmp_path / "j.sqlite")
    j = Journal(path)
    try:
        assert j._ckpt is not None
        j._ckpt.close()  # no background help: the WAL only grows
        for i in range(30):
            j.open_trade(i, _trade(f"t{i}"), [_leg(f"t{i}")], "ENTERING")
        gen, size = _wal_generation(path), Path(path + "-wal").stat().st_size
        j._ckpt.overflow = True  # what the background thread raises past overflow_frames
        j.add_leg(100, {**_leg("t0"), "client_id": "t0-sl", "status": "PENDING_NEW"})  # precedes an order
        j.open_trade(101, _trade("t100"), [_leg("t100")], "ENTERING")  # so does this
        # had either checkpointed, the write after it would have rewound the WAL
        assert j._ckpt.overflow and _wal_generation(path) == gen
        j.order_event(102, "t0", "t0-entry", "NEW")  # an acknowledgement: nothing waits on it
        assert not j._ckpt.overflow and _wal_generation(path) == gen  # written, then checkpointed
        assert Path(path + "-wal").stat().st_size > size
        j.order_event(103, "t0", "t0-entry", "FILLED")  # the next writer rewinds the fully copied WAL
        assert _wal_generation(path) != gen
        assert [r["status"] for r in j.rows("order_events", "client_id='t0-entry'")][-2:] == ["NEW", "FILLED"]
    finally:
        j.close()


def test_checkpointer_raises_overflow_when_the_wal_keeps_more_frames_than_allowed(tmp_path: Path) -> None:
    path = str(tmp_path / "w.sqlite")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("CREATE TABLE t(x)")
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchall()  # holds a snapshot: the WAL cannot be rewound
    ck = WalCheckpointer(path, poll_s=0.01, min_interval_s=0.01, overflow_frames=5)
    try:
        for i in range(20):
            db.execute("INSERT INTO t VALUES (?)", (i,))
        assert _wait(lambda: ck.overflow)
        assert ck.checkpoints >= 1 and ck.errors == 0
    finally:
        ck.close()
        reader.execute("COMMIT")
        reader.close()
        db.close()
    assert not ck._thread.is_alive()


def test_a_journal_dropped_without_close_ends_its_thread(tmp_path: Path) -> None:
    j = Journal(str(tmp_path / "j.sqlite"))
    assert j._ckpt is not None
    thread = j._ckpt._thread
    j._db.close()
    del j
    gc.collect()
    assert _wait(lambda: not thread.is_alive(), 2.0)


def test_memory_journal_has_no_checkpointer() -> None:
    j = Journal(":memory:")
    assert j._ckpt is None
    j.open_trade(1, _trade("t1"), [_leg("t1")], "ENTERING")
    j.order_event(2, "t1", "t1-entry", "NEW")
    j.close()


def test_a_burst_of_commits_is_checkpointed_after_one_that_precedes_no_order(tmp_path: Path) -> None:
    """100 commits without a background checkpoint in between (the thread checkpoints at most once a
    second): the journal checkpoints itself, after the first such commit that no order waits on."""
    path = str(tmp_path / "j.sqlite")
    j = Journal(path)
    try:
        assert j._ckpt is not None
        j._ckpt.close()
        j.open_trade(1, _trade("t1"), [_leg("t1")], "ENTERING")  # commit 1
        for i in range(98):  # commits 2..99
            j.order_event(10 + i, "t1", "t1-entry", "NEW", reason=f"e{i}")
        gen = _wal_generation(path)
        j.open_trade(200, _trade("t2"), [_leg("t2")], "ENTERING")  # commit 100: an order waits on it
        j.order_event(201, "t2", "t2-entry", "NEW")  # 101: checkpointed after it
        assert _wal_generation(path) == gen
        j.order_event(202, "t2", "t2-entry", "FILLED")  # the next writer rewinds the copied WAL
        assert _wal_generation(path) != gen
        assert len(j.rows("order_events")) == 1 + 98 + 1 + 2  # each open_trade: its planned leg's row
    finally:
        j.close()
