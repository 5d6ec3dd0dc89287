"""Account model of a USD-M linear perpetual account: one-way positions, quote-asset money.

Positions are integer lots (signed) with an average entry price in (float) ticks; money is in the
quote asset (USDT) as floats. One tick of price on one lot is worth `tick * step` USDT (linear
contract, contractSize 1).

Rules (exchange-facts A5, Binance USD-M):
- fees: maker/taker rate on the fill notional, charged to the wallet;
- realised PnL on the reduced part: closed * (exit - entry) * side; an order that flips the position
  closes first and opens the rest at the fill price;
- isolated margin: opening moves notional/leverage from the cross wallet into the position's isolated
  wallet; reducing releases it pro rata; funding of an isolated position is paid from it;
- maintenance margin = notional(mark) * mmr - cum of the bracket (brackets.py);
- liquidation when margin balance <= maintenance margin: isolated wallet + uPnL for an isolated
  position, cross wallet + total cross uPnL against the total cross maintenance for cross. This is the
  same condition as the mark crossing the formula's liquidation price.
- funding: a long pays notional(mark) * rate when rate > 0 (a short receives it).
"""

from __future__ import annotations

from bot.venues.sim.brackets import (
    Bracket,
    brackets_for,
    cross_liquidation_price,
    isolated_liquidation_price,
    maint_margin,
)

__all__ = ["Account", "Position"]


class Position:
    __slots__ = ("brackets", "entry_ticks", "isolated", "isolated_wallet", "k", "leverage", "qty_lots",
                 "realized_pnl", "symbol", "updated_ns")

    def __init__(self, symbol: str, k: float, leverage: int, isolated: bool) -> None:
        self.symbol = symbol
        self.k = k  # quote asset per tick*lot
        self.leverage = leverage
        self.isolated = isolated
        self.qty_lots = 0  # signed
        self.entry_ticks = 0.0
        self.isolated_wallet = 0.0
        self.realized_pnl = 0.0  # accumulated
        self.brackets: tuple[Bracket, ...] = brackets_for(symbol)
        self.updated_ns = 0

    def notional(self, mark_ticks: float) -> float:
        return abs(self.qty_lots) * mark_ticks * self.k

    def upnl(self, mark_ticks: float) -> float:
        return self.qty_lots * (mark_ticks - self.entry_ticks) * self.k

    def maint(self, mark_ticks: float) -> float:
        return maint_margin(self.brackets, self.notional(mark_ticks)) if self.qty_lots else 0.0

    def initial(self, mark_ticks: float) -> float:
        return self.notional(mark_ticks) / self.leverage


class Account:
    __slots__ = ("asset", "maker_fee", "positions", "taker_fee", "version", "wallet")

    def __init__(self, balance: float, maker_fee_bps: float, taker_fee_bps: float, asset: str = "USDT") -> None:
        self.asset = asset
        self.wallet = balance  # total wallet balance: deposits + realised PnL - fees + funding
        self.maker_fee = maker_fee_bps / 10_000
        self.taker_fee = taker_fee_bps / 10_000
        self.positions: dict[str, Position] = {}
        self.version = 0  # bumped by every change of wallet or positions (caches key on it)

    def position(self, symbol: str, k: float, leverage: int, isolated: bool) -> Position:
        p = self.positions.get(symbol)
        if p is None:
            p = self.positions[symbol] = Position(symbol, k, leverage, isolated)
        return p

    # ------------------------------------------------------------------ balances
    @property
    def isolated_total(self) -> float:
        return sum(p.isolated_wallet for p in self.positions.values() if p.isolated)

    @property
    def cross_wallet(self) -> float:
        return self.wallet - self.isolated_total

    def cross_upnl(self, marks: dict[str, float]) -> float:
        return sum(p.upnl(marks[s]) for s, p in self.positions.items() if p.qty_lots and not p.isolated)

    def total_upnl(self, marks: dict[str, float]) -> float:
        return sum(p.upnl(marks[s]) for s, p in self.positions.items() if p.qty_lots)

    def position_initial_margin(self, marks: dict[str, float]) -> float:
        return sum(p.initial(marks[s]) for s, p in self.positions.items() if p.qty_lots and not p.isolated)

    def available(self, marks: dict[str, float], open_order_margin: float) -> float:
        """Balance free for new orders: cross wallet + cross uPnL - cross position IM - open-order IM."""
        return (self.cross_wallet + self.cross_upnl(marks) - self.position_initial_margin(marks)
                - open_order_margin)

    # ------------------------------------------------------------------ fills
    def fill(self, pos: Position, side_sign: int, lots: int, price_ticks: float, fee_rate: float,
             now_ns: int) -> tuple[float, float]:
        """Apply one fill. Returns (realised PnL, fee), both in the quote asset; the wallet takes both."""
        k = pos.k
        fee = lots * price_ticks * k * fee_rate
        q = pos.qty_lots
        realized = 0.0
        d = side_sign * lots
        if q == 0 or (q > 0) == (d > 0):
            new_q = q + d
            pos.entry_ticks = (abs(q) * pos.entry_ticks + lots * price_ticks) / abs(new_q)
            if pos.isolated:
                pos.isolated_wallet += lots * price_ticks * k / pos.leverage
            pos.qty_lots = new_q
        else:
            closed = min(lots, abs(q))
            realized = closed * (price_ticks - pos.entry_ticks) * k * (1 if q > 0 else -1)
            if pos.isolated:
                release = pos.isolated_wallet * closed / abs(q)
                pos.isolated_wallet -= release  # released margin returns to the cross wallet
                if abs(q) == closed:
                    pos.isolated_wallet = 0.0
            rest = lots - closed
            pos.qty_lots = q + side_sign * closed
            if pos.qty_lots == 0:
                pos.entry_ticks = 0.0
            if rest:
                pos.qty_lots = side_sign * rest
                pos.entry_ticks = price_ticks
                if pos.isolated:
                    pos.isolated_wallet = rest * price_ticks * k / pos.leverage
        pos.realized_pnl += realized
        self.wallet += realized - fee
        self.version += 1
        pos.updated_ns = now_ns
        return realized, fee

    def funding(self, pos: Position, mark_ticks: float, rate: float) -> float:
        """Funding payment to this account (negative = paid). Longs pay shorts when rate > 0."""
        if not pos.qty_lots:
            return 0.0
        pay = -pos.qty_lots * mark_ticks * pos.k * rate
        self.wallet += pay
        self.version += 1
        if pos.isolated:
            pos.isolated_wallet += pay
        return pay

    # ------------------------------------------------------------------ risk
    def liquidation_price_ticks(self, pos: Position, marks: dict[str, float]) -> float:
        """The mark price (ticks) at which this position is liquidated, 0.0 if none (A5 formulas)."""
        if not pos.qty_lots:
            return 0.0
        side = 1 if pos.qty_lots > 0 else -1
        qty = abs(pos.qty_lots) * pos.k  # base-asset quantity, in "ticks" price units
        if pos.isolated:
            return isolated_liquidation_price(pos.brackets, side, qty, pos.entry_ticks, pos.isolated_wallet)
        others = [p for s, p in self.positions.items() if p is not pos and p.qty_lots and not p.isolated]
        other_mm = sum(p.maint(marks[p.symbol]) for p in others)
        other_upnl = sum(p.upnl(marks[p.symbol]) for p in others)
        return cross_liquidation_price(pos.brackets, side, qty, pos.entry_ticks, self.cross_wallet, other_mm,
                                       other_upnl)

    def to_liquidate(self, marks: dict[str, float]) -> list[Position]:
        """Positions whose margin balance is at or below their maintenance margin."""
        out: list[Position] = []
        cross: list[Position] = []
        for s, p in self.positions.items():
            if not p.qty_lots:
                continue
            m = marks[s]
            if p.isolated:
                if p.isolated_wallet + p.upnl(m) <= p.maint(m):
                    out.append(p)
            else:
                cross.append(p)
        if cross:
            equity = self.cross_wallet + sum(p.upnl(marks[p.symbol]) for p in cross)
            if equity <= sum(p.maint(marks[p.symbol]) for p in cross):
                out.extend(cross)
        return out
