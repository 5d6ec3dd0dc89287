"""Which venue protocol a drill runs against: Binance USD-M (`exchange-sim --protocol binance`, the bot on
config/exchange-sim.toml) or Bybit v5 (`--protocol bybit`, config/exchange-sim-bybit.toml). A drill's
scenario stays one function; what differs per protocol is here: the bot's config and endpoints, the
REST path a fault arms on (where the stop goes, where an order is looked up), the socket routes a raw
message is injected on and that message's shape, and the production host of the live-money guard.

The exchange's `/_sim/state` is the same engine for both protocols (positions, orders, algo orders, fills:
docs/exchange-sim.md "State"); only the bot's client ids differ on Bybit, where a re-sent leg `t5-tp1.2`
travels as orderLinkId `t5-tp1_2` (B3). `normalize` maps them back, so the scenarios and the scoring
compare the journal's ids with the exchange's unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from bot.drill.procs import Sim

__all__ = ["BINANCE", "BYBIT", "VENUES", "Venue", "venues_of"]

# the generated market a Bybit drill's exchange runs (as tests/test_bybit_exchange_sim_e2e.py's LIVELY):
# regimes every ~10 s and larger moves give the first entry sooner
_BYBIT_SIM = """[sim]
gen_vol_normal_bps_sqrt_s = 4.0
gen_vol_calm_bps_sqrt_s = 2.0
gen_trend_bps_per_s = 2.0
gen_regime_mean_s = 10.0
"""
BYBIT_DEPTH = 200  # market.bybit_depth (the default): the orderbook topic a bad delta is injected on


@dataclass(frozen=True)
class Venue:
    name: str  # "binance" | "bybit": `scalper drill --venue`
    protocol: str  # exchange-sim --protocol
    config: str  # the bot's config file (relative to the repo)
    stop_path: str  # "METHOD /path" the bot's protective stop is placed with
    lookup_path: str  # "METHOD /path" an order is looked up by client id with
    rate_limit: dict[str, Any]  # extra fields of the `rate_limit` fault armed on the stop path
    lookup_limit: dict[str, Any]  # ... and on the look-up path after an ambiguous entry
    public_route: str  # `inject` route of the bot's market data socket
    private_route: str  # ... and of its user stream
    prod_rest_url: str  # the production REST host the live-money guard must refuse
    # the first entry comes late (Bybit: ~10-20 s after start on the generated market): a drill whose fault
    # must meet trading (the silent stream) waits for the first trade before it starts
    trade_before_fault: bool = False

    def sim_args(self, work: Path) -> tuple[str, ...]:
        if self.name != "bybit":
            return ()
        cfg = work / "sim-bybit.toml"
        cfg.write_text(_BYBIT_SIM)
        return ("--config", str(cfg))

    def bot_env(self, sim: Sim) -> dict[str, str]:
        """SCALPER__ overrides pointing the bot at `sim` beyond what procs.Bot sets for Binance."""
        if self.name != "bybit":
            return {}
        ws = f"ws://127.0.0.1:{sim.port}"
        return {"SCALPER__VENUE__WS_PUBLIC_URL": f"{ws}/v5/public/linear",
                "SCALPER__VENUE__WS_PRIVATE_URL": f"{ws}/v5/private", "SCALPER__VENUE__WS_MARKET_URL": "",
                "SCALPER__JOURNAL__PATH": "journal-exchange-sim.sqlite"}  # where procs.rows reads

    def normalize(self, state: dict[str, Any]) -> dict[str, Any]:
        """The exchange's state with the bot's client ids as the journal spells them."""
        if self.name != "bybit":
            return state
        from bot.venues.bybit.orders import client_id_of

        for key, fields in (("orders", ("clientOrderId", "parentClientAlgoId")), ("open_orders", ("clientOrderId",)),
                            ("algo_orders", ("clientAlgoId",)), ("open_algo_orders", ("clientAlgoId",)),
                            ("fills", ("clientOrderId",))):
            for row in state.get(key, []):
                for f in fields:
                    if row.get(f):
                        row[f] = client_id_of(str(row[f]))
        return state

    # ------------------------------------------------------------------ malformed messages
    def depth_stream(self, symbol: str) -> str | None:
        """The `stream` a depth message is wrapped in (Binance's combined streams; None: sent as it is)."""
        return f"{symbol.lower()}@depth@100ms" if self.name == "binance" else None

    def bad_depth(self, symbol: str, state: dict[str, Any]) -> list[str]:
        """Five depth diffs, each bad in one way: 'abc', NaN, 1e400, a 3-item level, u as a string. Otherwise
        each continues the stream (the next update id) so only the bad value is what the parser meets."""
        now_ms = int(state["time"])
        if self.name == "binance":
            last_u = int(state["books"][symbol]["last_update_id"])

            def diff(**kw: Any) -> str:
                body = {"e": "depthUpdate", "E": now_ms, "T": now_ms, "s": symbol, "U": last_u + 1, "u": last_u + 1,
                        "pu": last_u, "b": [], "a": []}
                body.update(kw)
                return orjson.dumps(body).decode()

            return [diff(b=[["abc", "1"]]), diff(b=[["NaN", "1"]]), diff(a=[["1e400", "1"]]),
                    diff(b=[["50000.0", "1", "2"]]), diff(u=str(last_u + 1))]
        topic = f"orderbook.{BYBIT_DEPTH}.{symbol}"
        u = int(state.get("bybit_book_u", {}).get(topic, 0)) + 1
        seq = int(state["books"][symbol]["last_update_id"])

        def delta(**kw: Any) -> str:
            data = {"s": symbol, "b": [], "a": [], "u": u, "seq": seq}
            data.update(kw)
            return orjson.dumps({"topic": topic, "type": "delta", "ts": now_ms, "data": data, "cts": now_ms}).decode()

        return [delta(b=[["abc", "1"]]), delta(b=[["NaN", "1"]]), delta(a=[["1e400", "1"]]),
                delta(b=[["50000.0", "1", "2"]]), delta(u=str(u))]

    def bad_user_event(self, order: dict[str, Any], now_ms: int) -> str:
        """An order event of the bot's own open order `order` (a /_sim/state open_orders row) whose side is
        "HOLD": a value no venue sends."""
        o = order
        if self.name == "binance":
            ev = {"e": "ORDER_TRADE_UPDATE", "E": now_ms, "T": now_ms, "o": {
                "s": o["symbol"], "c": o["clientOrderId"], "S": "HOLD", "o": o["type"], "f": "GTC",
                "q": o["origQty"], "p": o["price"], "ap": o["price"], "sp": "0", "x": "TRADE",
                "X": "PARTIALLY_FILLED", "i": o["orderId"], "l": o["origQty"], "z": o["origQty"], "L": o["price"],
                "n": "0", "N": "USDT", "T": now_ms, "t": 999999999, "b": "0", "a": "0", "m": True, "R": True,
                "wt": "CONTRACT_PRICE", "ot": o["type"], "ps": "BOTH", "cp": False, "rp": "0", "pP": False, "si": 0,
                "ss": 0, "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0}}
            return orjson.dumps(ev).decode()
        from bot.venues.bybit.orders import link_id

        row = {"category": "linear", "symbol": o["symbol"], "orderId": str(o["orderId"]),
               "orderLinkId": link_id(str(o["clientOrderId"])), "side": "HOLD", "orderType": "Limit",
               "orderStatus": "PartiallyFilled", "price": str(o["price"]), "qty": str(o["origQty"]),
               "cumExecQty": str(o["origQty"]), "leavesQty": "0", "avgPrice": str(o["price"]),
               "timeInForce": "GTC", "reduceOnly": True, "closeOnTrigger": False, "stopOrderType": "",
               "triggerPrice": "", "positionIdx": 0, "createdTime": str(now_ms), "updatedTime": str(now_ms)}
        return orjson.dumps({"id": "drill-bad-1", "topic": "order", "creationTime": now_ms, "data": [row]}).decode()


# Binance drills keep the exchange's default --protocol both (what they always ran against)
BINANCE = Venue("binance", "both", "config/exchange-sim.toml", "POST /fapi/v1/algoOrder", "GET /fapi/v1/order",
                {}, {}, "public", "private", "https://fapi.binance.com")
# Bybit: the stop is the position's (trading-stop, B3); a per-UID limit answers retCode 10006 with
# X-Bapi-Limit-Reset-Timestamp (B2) -- the IP-level 403 would silence the bot for 10 minutes (limiter.py).
# GET /v5/order/realtime is also the open-order listing (reconciliation, the stream's catch-up): its limit
# starts at the first request after the ambiguous entry, the look-up
BYBIT = Venue("bybit", "bybit", "config/exchange-sim-bybit.toml", "POST /v5/position/trading-stop",
              "GET /v5/order/realtime", {"code": 10006}, {"code": 10006, "after": "error_after_execute"},
              "bybit-public", "bybit-private", "https://api.bybit.com", trade_before_fault=True)
VENUES = {v.name: v for v in (BINANCE, BYBIT)}


def venues_of(arg: str) -> list[Venue]:
    """`--venue binance|bybit|both` -> the venues to run on."""
    if arg == "both":
        return [BINANCE, BYBIT]
    if arg not in VENUES:
        raise ValueError(f"unknown venue {arg!r}; one of binance, bybit, both")
    return [VENUES[arg]]
