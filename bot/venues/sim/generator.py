"""A seeded stochastic market for the embedded default: raw Binance USD-M messages, no network.

Model (per symbol, in steps of `gen_step_ms`):
- a latent *fair price* F: a diffusion whose volatility switches between calm / normal / burst
  regimes and whose drift switches between down / flat / up trends (Markov switching, mean regime
  length `gen_regime_mean_s`, bursts five times shorter), so prices trend and jump in bursts: a scalper's
  entries, stops and targets (10-30 bps) are reached within a minute or two;
- a Cont-Stoikov-Talreja-style order flow around the touch: limit arrivals at a geometric distance
  from the touch, cancels at a geometric distance (partial or whole), and market orders whose
  arrivals are a Hawkes process (each one raises the intensity, which decays at `beta`: clusters of
  market orders) and whose side leans towards F and the trend;
- liquidity follows F: quotes on the wrong side of F are swept by a market order (momentum, prints on
  the tape) or fade (cancels), and new quotes fill the gap behind the new touch.

Output: the venue's own messages as raw JSON bytes, so the same parse -> sync -> DOM path consumes
them: `depthUpdate` diffs every `gen_depth_interval_ms` with U/u/pu chained (one update id per level
change), `bookTicker` whenever the top changes (its `u` in the depth id space), `aggTrade` per price
level a market order takes, `markPriceUpdate` every `gen_mark_interval_ms` (mark, index, funding rate,
next funding time), and a REST-style depth snapshot. Prices and sizes are on the instrument's tick and
step (`bot.venues.sim.symbols`: the embedded rules or ones derived for any symbol), printed with the decimals
Binance prints; each symbol starts at its reference price (`[sim] gen_start_prices`, else the table there).

The first messages of each symbol are its first diff and then a snapshot whose lastUpdateId is that
diff's `u` (state after it): the official splice (U <= lastUpdateId <= u) holds with no gap.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from decimal import Decimal
from typing import NamedTuple

import orjson

from bot.domain.instrument import Instrument
from bot.settings.sim import SimSection
from bot.venues.sim.symbols import reference_price

__all__ = ["STREAM_SUFFIX", "MarketGenerator", "Message", "PriceFormat"]

_MS = 1_000_000
STREAM_SUFFIX = {
    "depth": "@depth@100ms",
    "bookTicker": "@bookTicker",
    "aggTrade": "@aggTrade",
    "trade": "@trade",
    "markPrice": "@markPrice@1s",
    "snapshot": "@depthSnapshot",
}


class Message(NamedTuple):
    """One market message: `data` is the ws-mode payload (what `/ws/<stream>` sends)."""

    ts_ns: int
    symbol: str
    kind: str  # depth | bookTicker | aggTrade | trade | markPrice | snapshot
    data: bytes

    @property
    def raw(self) -> bytes:
        """The combined-stream envelope, as our recorder stores it."""
        stream = self.symbol.lower() + STREAM_SUFFIX[self.kind]
        return b'{"stream":"' + stream.encode() + b'","data":' + self.data + b"}"


class PriceFormat:
    """Exact ticks/lots -> decimal strings with the decimals the venue prints ("0.10" -> 2)."""

    __slots__ = ("_pd", "_pu", "_qd", "_qu")

    def __init__(self, inst: Instrument) -> None:
        self._pd = len(inst.tick_size.split(".")[1]) if "." in inst.tick_size else 0
        self._qd = len(inst.step_size.split(".")[1]) if "." in inst.step_size else 0
        self._pu = int(Decimal(inst.tick_size) * 10**self._pd)
        self._qu = int(Decimal(inst.step_size) * 10**self._qd)

    @staticmethod
    def _fmt(units: int, d: int) -> str:
        if not d:
            return str(units)
        s = str(units).rjust(d + 1, "0")
        return s[:-d] + "." + s[-d:]

    def price(self, ticks: int) -> str:
        return self._fmt(ticks * self._pu, self._pd)

    def qty(self, lots: int) -> str:
        return self._fmt(lots * self._qu, self._qd)


_REGIMES = ("calm", "normal", "burst")
_REGIME_HAWKES = {"calm": 0.6, "normal": 1.0, "burst": 3.0}


class _SymbolGen:
    def __init__(self, inst: Instrument, price: float, cfg: SimSection, seed: int, t0_ns: int) -> None:
        self.inst = inst
        self.sym = inst.symbol
        self.fmt = PriceFormat(inst)
        self.cfg = cfg
        self.rng = random.Random(seed)
        tick = inst.tick
        self.bps_ticks = price / 10_000 / tick  # ticks per basis point
        self.level_lots = max(1, int(15_000 / (price * inst.step)))  # ~15k USDT median level
        self.mkt_lots = max(1, int(2_500 / (price * inst.step)))  # ~2.5k USDT median market order
        self.min_lots = max(1, inst.min_lots)
        self.F = price / tick
        mid = int(self.F)
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.bb = mid
        self.ba = mid + 1
        self.uid = 5_000_000_000 + (seed % 1000) * 1_000_000
        self.last_u = self.uid
        self.first_pending = 0
        self.chg_b: dict[int, int] = {}
        self.chg_a: dict[int, int] = {}
        self.vol = "normal"
        self.trend = 0
        self.exc = 0.0
        self.agg_id = 1_000_000
        self.trade_id = 3_000_000
        self.last_bbo: tuple[int, int, int, int] | None = None
        self.funding_rate = cfg.gen_funding_rate_bps / 10_000
        iv = 8 * 3600 * 1_000_000_000
        self.next_funding_ns = (t0_ns // iv + 1) * iv
        depth = cfg.gen_book_ticks
        for d in range(depth):
            if d == 0 or self.rng.random() < self._density(d):
                self._set(True, mid - d, self._size(d))
                self._set(False, mid + 1 + d, self._size(d))
        self.chg_b.clear()
        self.chg_a.clear()
        self.first_pending = 0
        self.last_u = self.uid

    # ------------------------------------------------------------------ book primitives
    @staticmethod
    def _density(d: int) -> float:
        return 0.85 if d < 5 else 0.55 if d < 30 else 0.3

    def _size(self, d: int) -> int:
        med = self.level_lots * (0.5 + min(d, 50) / 25)
        return max(self.min_lots, int(med * math.exp(0.9 * self.rng.gauss(0.0, 1.0))))

    def _set(self, bid: bool, t: int, lots: int) -> None:
        side = self.bids if bid else self.asks
        if lots > 0:
            side[t] = lots
        elif side.pop(t, None) is None:
            return
        self.uid += 1
        if not self.first_pending:
            self.first_pending = self.uid
        (self.chg_b if bid else self.chg_a)[t] = lots
        if bid:
            if lots > 0 and t > self.bb:
                self.bb = t
            elif lots == 0 and t == self.bb:
                self.bb = self._next_bid(t - 1)
        else:
            if lots > 0 and t < self.ba:
                self.ba = t
            elif lots == 0 and t == self.ba:
                self.ba = self._next_ask(t + 1)

    def _next_bid(self, t: int) -> int:
        lo = t - self.cfg.gen_book_ticks
        while t > lo:
            if t in self.bids:
                return t
            t -= 1
        return self.ba - 1 if self.asks else int(self.F)  # empty: refilled by _reform

    def _next_ask(self, t: int) -> int:
        hi = t + self.cfg.gen_book_ticks
        while t < hi:
            if t in self.asks:
                return t
            t += 1
        return self.bb + 1 if self.bids else int(self.F) + 1

    # ------------------------------------------------------------------ flow
    def _market(self, buy: bool, lots: int, ms: int, out: list[bytes]) -> None:
        """A market order: takes levels from the touch; one aggTrade per price level."""
        book = self.asks if buy else self.bids
        while lots > 0 and book:
            t = self.ba if buy else self.bb
            have = book.get(t, 0)
            if not have:
                break
            x = min(have, lots)
            lots -= x
            self.agg_id += 1
            self.trade_id += 1
            out.append(orjson.dumps({"e": "aggTrade", "E": ms, "a": self.agg_id, "s": self.sym,
                                     "p": self.fmt.price(t), "q": self.fmt.qty(x), "nq": self.fmt.qty(x),
                                     "f": self.trade_id, "l": self.trade_id, "T": ms, "m": not buy}))
            self._set(not buy, t, have - x)

    def _poisson(self, lam: float) -> int:
        # Knuth; lam per step is small (< 10)
        if lam <= 0:
            return 0
        limit = math.exp(-lam)
        k, p = 0, self.rng.random()
        while p > limit:
            k += 1
            p *= self.rng.random()
        return k

    def step(self, t_ns: int, dt: float, out: list[Message]) -> None:
        rng, cfg = self.rng, self.cfg
        ms = t_ns // _MS
        trades: list[bytes] = []
        # regimes
        if rng.random() < dt / (cfg.gen_regime_mean_s / (5 if self.vol == "burst" else 1)):
            r = rng.random()
            self.vol = "calm" if r < 0.3 else "normal" if r < 0.8 else "burst"
        if rng.random() < dt / cfg.gen_regime_mean_s:
            r = rng.random()
            self.trend = -1 if r < 0.3 else 1 if r > 0.7 else 0
        vol_bps = {"calm": cfg.gen_vol_calm_bps_sqrt_s, "normal": cfg.gen_vol_normal_bps_sqrt_s,
                   "burst": cfg.gen_vol_burst_bps_sqrt_s}[self.vol]
        self.F += self.bps_ticks * (self.trend * cfg.gen_trend_bps_per_s * dt
                                    + vol_bps * math.sqrt(dt) * rng.gauss(0.0, 1.0))
        # Hawkes market orders
        beta = cfg.gen_hawkes_decay_per_s
        lam = cfg.gen_market_orders_per_s * _REGIME_HAWKES[self.vol] + self.exc
        n = self._poisson(lam * dt)
        self.exc *= math.exp(-beta * dt)
        mid = (self.bb + self.ba) / 2
        p_buy = 0.5 + 0.12 * self.trend + 0.3 * math.tanh((self.F - mid) / 3.0)
        for _ in range(n):
            self.exc += cfg.gen_hawkes_branching * beta
            size = max(self.min_lots, int(self.mkt_lots * math.exp(1.1 * rng.gauss(0.0, 1.0))))
            self._market(rng.random() < p_buy, size, ms, trades)
        self._reform(ms, trades)
        # limit arrivals and cancels around the touch
        for bid in (True, False):
            for _ in range(self._poisson(cfg.gen_limit_orders_per_s * dt)):
                d = int(rng.expovariate(0.15))
                t = self.bb - d if bid else self.ba + d
                side = self.bids if bid else self.asks
                self._set(bid, t, side.get(t, 0) + max(self.min_lots, self._size(d) // 3))
            for _ in range(self._poisson(cfg.gen_cancels_per_s * dt)):
                d = int(rng.expovariate(0.12))
                t = self.bb - d if bid else self.ba + d
                side = self.bids if bid else self.asks
                have = side.get(t, 0)
                if have:
                    left = int(have * rng.random()) if rng.random() < 0.6 else 0
                    self._set(bid, t, left if left >= self.min_lots else 0)
        for data in trades:
            out.append(Message(t_ns, self.sym, "aggTrade", data))
        bbo = (self.bb, self.bids.get(self.bb, 0), self.ba, self.asks.get(self.ba, 0))
        if bbo != self.last_bbo and self.bids and self.asks:
            self.last_bbo = bbo
            f = self.fmt
            out.append(Message(t_ns, self.sym, "bookTicker", orjson.dumps(
                {"e": "bookTicker", "u": self.uid, "s": self.sym, "b": f.price(bbo[0]), "B": f.qty(bbo[1]),
                 "a": f.price(bbo[2]), "A": f.qty(bbo[3]), "T": ms, "E": ms})))

    def _reform(self, ms: int, trades: list[bytes]) -> None:
        """Liquidity follows F: sweep or fade quotes on the wrong side, quote behind the new touch."""
        rng = self.rng
        width = 1 if self.vol != "burst" else 1 + int(rng.random() * 3)
        tb = math.floor(self.F - (width - 1) / 2)
        ta = tb + width
        for bid in (False, True):
            wrong = (lambda: self.ba < ta) if not bid else (lambda: self.bb > tb)
            if wrong():
                if rng.random() < 0.35:  # momentum: one market order sweeps the stale quotes
                    book = self.asks if not bid else self.bids
                    lots = sum(q for t, q in book.items() if (t < ta if not bid else t > tb))
                    self._market(not bid, lots, ms, trades)
                else:
                    guard = 0
                    while wrong() and guard < 10_000:
                        self._set(bid, self.ba if not bid else self.bb, 0)
                        guard += 1
        # quote behind the new touch (dense near it), and refill an empty side
        if self.bb < tb or not self.bids:
            top = min(tb, self.ba - 1)
            lo = self.bb if self.bids else top - 50
            for t in range(top, lo, -1):
                if t == top or rng.random() < self._density(top - t):
                    self._set(True, t, self._size(top - t))
        if self.ba > ta or not self.asks:
            bot = max(ta, self.bb + 1)
            hi = self.ba if self.asks else bot + 50
            for t in range(bot, hi):
                if t == bot or rng.random() < self._density(t - bot):
                    self._set(False, t, self._size(t - bot))

    def trim(self) -> None:
        """Drop levels beyond the kept depth (the venue's far book is unreliable anyway) and
        replenish a side that a trend has thinned (resting liquidity arrives at every distance)."""
        depth = self.cfg.gen_book_ticks
        for t in [t for t in self.bids if t < self.bb - depth]:
            self._set(True, t, 0)
        for t in [t for t in self.asks if t > self.ba + depth]:
            self._set(False, t, 0)
        target = int(depth * 0.3)
        rng = self.rng
        for bid, side in ((True, self.bids), (False, self.asks)):
            missing = target - len(side)
            for _ in range(min(missing, depth // 10)):
                d = 1 + int(rng.random() * (depth - 1))
                t = self.bb - d if bid else self.ba + d
                if t not in side:
                    self._set(bid, t, self._size(d))

    def depth_message(self, t_ns: int) -> Message | None:
        if not (self.chg_b or self.chg_a):
            return None
        f = self.fmt
        ms = t_ns // _MS
        data = orjson.dumps({
            "e": "depthUpdate", "E": ms, "T": ms, "s": self.sym, "U": self.first_pending, "u": self.uid,
            "pu": self.last_u,
            "b": [[f.price(t), f.qty(q)] for t, q in sorted(self.chg_b.items(), reverse=True)],
            "a": [[f.price(t), f.qty(q)] for t, q in sorted(self.chg_a.items())],
        })
        self.last_u = self.uid
        self.first_pending = 0
        self.chg_b.clear()
        self.chg_a.clear()
        return Message(t_ns, self.sym, "depth", data)

    def snapshot_body(self, t_ns: int, limit: int = 1000) -> dict[str, object]:
        """REST `GET /fapi/v1/depth` body of the current book (valid at a depth-push boundary)."""
        f = self.fmt
        ms = t_ns // _MS
        bids = sorted(self.bids.items(), reverse=True)[:limit]
        asks = sorted(self.asks.items())[:limit]
        return {"lastUpdateId": self.last_u, "E": ms, "T": ms,
                "bids": [[f.price(t), f.qty(q)] for t, q in bids],
                "asks": [[f.price(t), f.qty(q)] for t, q in asks]}

    def mark_message(self, t_ns: int) -> Message:
        ms = t_ns // _MS
        tick = self.inst.tick
        mid = (self.bb + self.ba) / 2
        if t_ns >= self.next_funding_ns:
            self.next_funding_ns += 8 * 3600 * 1_000_000_000
        mark = f"{mid * tick:.8f}"
        return Message(t_ns, self.sym, "markPrice", orjson.dumps({
            "e": "markPriceUpdate", "E": ms, "s": self.sym, "p": mark, "i": f"{self.F * tick:.8f}",
            "P": mark, "r": f"{self.funding_rate:.8f}", "T": self.next_funding_ns // _MS}))


class MarketGenerator:
    """Time-ordered messages of several symbols from one seed. `messages()` is endless."""

    def __init__(self, instruments: list[Instrument], cfg: SimSection | None = None, seed: int | None = None,
                 start_ns: int = 1_700_000_000_000_000_000) -> None:
        self.cfg = cfg or SimSection()
        self.seed = self.cfg.seed if seed is None else seed
        self.t_ns = start_ns
        prices = self.cfg.gen_start_prices
        self.gens = {
            inst.symbol: _SymbolGen(inst, reference_price(inst.symbol, prices), self.cfg, self.seed * 7919 + i,
                                    start_ns)
            for i, inst in enumerate(instruments)
        }
        self._init_loop()

    def snapshot(self, symbol: str, limit: int = 1000) -> dict[str, object]:
        return self.gens[symbol].snapshot_body(self.t_ns, limit)

    def _init_loop(self) -> None:
        cfg = self.cfg
        self._step_ns = cfg.gen_step_ms * _MS
        self._depth_every = max(1, cfg.gen_depth_interval_ms // cfg.gen_step_ms)
        self._mark_every = max(1, cfg.gen_mark_interval_ms // cfg.gen_step_ms)
        self._trim_every = max(1, 1000 // cfg.gen_step_ms)
        self._dt = cfg.gen_step_ms / 1000
        self._n = 0
        self._started = False

    def step(self) -> list[Message]:
        """Advance one internal step; the messages it produced (all stamped with its time)."""
        self._n += 1
        n = self._n
        self.t_ns += self._step_ns
        t = self.t_ns
        out: list[Message] = []
        push = n % self._depth_every == 0
        for g in self.gens.values():
            g.step(t, self._dt, out)
            if n % self._trim_every == 0:
                g.trim()
            if push:
                d = g.depth_message(t)
                if d is not None:
                    out.append(d)
                if not self._started:
                    out.append(Message(t, g.sym, "snapshot", orjson.dumps(g.snapshot_body(t))))
            if n % self._mark_every == 0 or (push and not self._started):
                out.append(g.mark_message(t))
        if push:
            self._started = True
        return out

    def messages(self) -> Iterator[Message]:
        """Endless, time-ordered messages (continues from where the last call stopped)."""
        while True:
            yield from self.step()

    def take(self, until_ns: int) -> list[Message]:
        """All messages of the steps up to `until_ns`."""
        out: list[Message] = []
        while self.t_ns + self._step_ns <= until_ns:
            out.extend(self.step())
        return out
