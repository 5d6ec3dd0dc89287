"""`scalper drill`: fault drills against the loopback exchange with the real processes (issue 11).

procs.py starts `scalper exchange-sim` and `scalper run` as subprocesses and receives alerts; watcher.py
polls the exchange's state on its own and measures how long a position had no stop; drills.py holds
the scenarios; runner.py runs them and scores each row.
"""
