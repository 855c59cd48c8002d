"""Flashstock's flash-sale shoppers, for Locust.

The crowd of a flash sale against the real HTTP API (README.md, API):

- Shopper (weight 9): a person at the sale. Signs in (an HS256 JWT minted
  here with the shared secret), looks at items, buys random ones of the
  configured set (one unit, a fresh request_id per click, retried with the
  same request_id while the outcome is unknown), reads the order it got and
  its order list, and after a few actions leaves; a new shopper (a new
  identity) takes its place, so a run sees a stream of shoppers.
- Clicker (weight 1): the shopper who hammers "buy" on the hot item (the
  first of the set) with one account, several clicks a second: it meets the
  per-shopper rate limit (429), the per-user limit (409 limit_exceeded) and
  the sell-out (409 sold_out).

Every answer the API documents as a business decision counts as a success,
under its own name in Locust's statistics ("purchase: 409 sold_out",
"purchase: 429 rate_limited", "purchase: 503 unknown_outcome", ...), so the
table shows how the crowd was answered. Failures: 5xx other than the
documented 503s, a dropped connection or timeout, 400/401/403 (other than
403 not_on_sale)/404 item_not_found/413/415 (a client or server bug), a body
that is not what the API promises, and answers that break a promise (an
order for another user, a per-user limit exceeded, an order id given to two
purchases, a confirmed order missing).

At the end of a test (local or master process) the items are read back and
held to the sale's books: remaining >= 0, sold <= stock, remaining = stock -
sold, the stock unchanged, units sold in this run >= units confirmed to the
shoppers (none lost) and, for items this run owns (FLASHSTOCK_EXCLUSIVE),
<= confirmed + unknown outcomes (none oversold). A sample of shoppers' order
lists is checked too. Any failure or broken invariant sets Locust's exit
code to 1.

Configuration (environment; secrets only from files):

  FLASHSTOCK_ITEMS              comma-separated item IDs (the first is the hot item);
                                default with FLASHSTOCK_CREATE_ITEMS=1: lc<time>-hot,-a,-b
  FLASHSTOCK_AUTH_SECRET_FILE   file holding the node's --auth-secret (HS256 key)
  FLASHSTOCK_TRUST_USER_HEADER  1: send X-User-ID instead of a JWT (a node with
                                --trust-user-header or on loopback with no secret)
  FLASHSTOCK_CREATE_ITEMS       1: create the items at test start (admin API)
  FLASHSTOCK_ADMIN_TOKEN_FILE   file holding the admin token (needed to create)
  FLASHSTOCK_STOCK              stock of each created item (1000)
  FLASHSTOCK_HOT_STOCK          stock of the created hot item, so it sells out (20)
  FLASHSTOCK_PER_USER_LIMIT     per_user_limit of created items (2)
  FLASHSTOCK_EXCLUSIVE          1: nobody else buys these items during the run, so
                                sold may not exceed confirmed + unknown (default:
                                1 with FLASHSTOCK_CREATE_ITEMS=1, else 0)
  FLASHSTOCK_WAIT_MIN/_MAX      a Shopper's think time between actions, s (0.2, 1.0)
  FLASHSTOCK_CLICK_INTERVAL     a Clicker's time between clicks, s (0.15)
  FLASHSTOCK_RETRIES            resends of a purchase whose outcome is unknown, same request_id,
                                backing off from 0.1 s (doubling) to 2 s (5)
  FLASHSTOCK_JWT_TTL            token lifetime, s (3600; renewed a minute before)
  FLASHSTOCK_USER_PREFIX        shopper IDs are PREFIX-<random> (locust)
  FLASHSTOCK_VERIFY_USERS       shoppers whose order lists are checked at the end (200)
  FLASHSTOCK_VERIFY_WAIT        how long the end check waits for item reads to
                                catch up (a gateway's cache), s (5)
  FLASHSTOCK_SUMMARY_FILE       write the run's figures and verdict here (JSON)

Python standard library and Locust only (python3-locust on Debian).
"""

import base64
import collections
import hashlib
import hmac
import json
import logging
import os
import random
import re
import stat
import time
import urllib.error
import urllib.request
import uuid

import gevent
import locust.runners
from locust import FastHttpUser, between, constant_pacing, events, task
from locust.runners import MasterRunner, WorkerRunner

log = logging.getLogger("flashstock")

# Debian's python3-locust 2.12.1 has an empty version string, which its own
# master takes for a pre-2.0 worker and refuses: --master/--worker would not
# connect. Give both sides the same non-empty version.
if not locust.runners.__version__:
    locust.runners.__version__ = "2.12.1+debian"


# --------------------------------------------------------------- configuration


class ConfigError(Exception):
    pass


def _env(name, default=""):
    return os.environ.get(name, default).strip()


def _env_num(name, default, kind=float, low=None):
    raw = _env(name)
    if raw == "":
        return default
    try:
        v = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number")
    if low is not None and v < low:
        raise ConfigError(f"{name} must be at least {low}")
    return v


def _env_bool(name, default=False):
    raw = _env(name).lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r}: want 1 or 0")


def _read_secret(var):
    """The content of the file named by env var, stripped as the node strips it.
    The value itself is never logged."""
    path = _env(var)
    if not path:
        return None
    try:
        st = os.stat(path)
        with open(path, "rb") as f:
            data = f.read().strip()
    except OSError as e:
        raise ConfigError(f"{var}: cannot read {path}: {e.strerror}")
    if not data:
        raise ConfigError(f"{var}: {path} is empty")
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s: %s is readable by other users (chmod 600 it)", var, path)
    return data


ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")  # sale.ValidID


class Config:
    def __init__(self):
        self.create = _env_bool("FLASHSTOCK_CREATE_ITEMS")
        self.items = [s.strip() for s in _env("FLASHSTOCK_ITEMS").split(",") if s.strip()]
        for it in self.items:
            if not ID_RE.match(it):
                raise ConfigError(f"FLASHSTOCK_ITEMS: {it!r} is not a valid item ID (1-64 of A-Z a-z 0-9 _ . : -)")
        if len(set(self.items)) != len(self.items):
            raise ConfigError("FLASHSTOCK_ITEMS lists an item twice")
        if not self.items and not self.create:
            raise ConfigError("set FLASHSTOCK_ITEMS (comma-separated item IDs) or FLASHSTOCK_CREATE_ITEMS=1")
        self.secret = _read_secret("FLASHSTOCK_AUTH_SECRET_FILE")
        self.trust_header = _env_bool("FLASHSTOCK_TRUST_USER_HEADER")
        if self.secret is None and not self.trust_header:
            raise ConfigError(
                "no shopper identity: set FLASHSTOCK_AUTH_SECRET_FILE (the node's --auth-secret, in a file) "
                "or FLASHSTOCK_TRUST_USER_HEADER=1 (X-User-ID)"
            )
        if _env("FLASHSTOCK_AUTH_SECRET") or _env("FLASHSTOCK_ADMIN_TOKEN"):
            raise ConfigError(
                "secrets are read from files only: use FLASHSTOCK_AUTH_SECRET_FILE / FLASHSTOCK_ADMIN_TOKEN_FILE"
            )
        self.admin_token = _read_secret("FLASHSTOCK_ADMIN_TOKEN_FILE")
        if self.create and self.admin_token is None:
            raise ConfigError("FLASHSTOCK_CREATE_ITEMS=1 needs FLASHSTOCK_ADMIN_TOKEN_FILE")
        self.stock = _env_num("FLASHSTOCK_STOCK", 1000, int, 0)
        self.hot_stock = _env_num("FLASHSTOCK_HOT_STOCK", 20, int, 0)
        self.per_user_limit = _env_num("FLASHSTOCK_PER_USER_LIMIT", 2, int, 1)
        self.exclusive = _env_bool("FLASHSTOCK_EXCLUSIVE", self.create)
        self.wait_min = _env_num("FLASHSTOCK_WAIT_MIN", 0.2, float, 0)
        self.wait_max = max(self.wait_min, _env_num("FLASHSTOCK_WAIT_MAX", 1.0, float, 0))
        self.click_interval = _env_num("FLASHSTOCK_CLICK_INTERVAL", 0.15, float, 0)
        self.retries = _env_num("FLASHSTOCK_RETRIES", 5, int, 0)
        self.jwt_ttl = _env_num("FLASHSTOCK_JWT_TTL", 3600, int, 120)
        self.user_prefix = _env("FLASHSTOCK_USER_PREFIX", "locust")
        if not ID_RE.match(self.user_prefix + "-0123456789abcdef"):
            raise ConfigError("FLASHSTOCK_USER_PREFIX: shopper IDs must be 1-64 of A-Z a-z 0-9 _ . : -")
        self.verify_users = _env_num("FLASHSTOCK_VERIFY_USERS", 200, int, 0)
        self.verify_wait = _env_num("FLASHSTOCK_VERIFY_WAIT", 5, float, 0)
        self.summary_file = _env("FLASHSTOCK_SUMMARY_FILE")


try:
    CFG = Config()
except ConfigError as e:
    raise SystemExit(f"flashstock locustfile: {e}")


# ----------------------------------------------------------------- identities


def _b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def mint_jwt(secret, sub, ttl):
    """An HS256 JWT as the node verifies it (http/auth.go): sub, exp required."""
    now = int(time.time())
    head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps({"sub": sub, "iat": now, "exp": now + ttl}, separators=(",", ":")).encode())
    signing = f"{head}.{body}".encode("ascii")
    sig = _b64url(hmac.new(secret, signing, hashlib.sha256).digest())
    return f"{head}.{body}.{sig}", now + ttl


class Identity:
    """One shopper's account and what the shopper was told."""

    __slots__ = ("user", "_token", "_exp", "orders", "units", "unknown")

    def __init__(self):
        self.user = f"{CFG.user_prefix}-{uuid.uuid4().hex[:16]}"
        self._token, self._exp = None, 0
        self.orders = {}  # order_id -> (item, quantity): confirmed to this shopper
        self.units = collections.Counter()  # item -> units confirmed
        self.unknown = collections.Counter()  # item -> units whose outcome stayed unknown

    def headers(self):
        if CFG.secret is None:
            return {"X-User-ID": self.user}
        if self._token is None or time.time() > self._exp - 60:
            self._token, self._exp = mint_jwt(CFG.secret, self.user, CFG.jwt_ttl)
        return {"Authorization": "Bearer " + self._token}


# -------------------------------------------------------- the run's bookkeeping

PROBLEMS_KEPT = 50
ORDER_IDS_MAX = 2_000_000


class Run:
    """What this process saw in the current test; the master (or the local
    runner) adds the workers' figures to its own at the end."""

    def __init__(self):
        self.items = {}  # id -> per_user_limit (all processes)
        self.hot = None
        self.baseline = {}  # local/master: id -> item JSON at test start
        self.started = self.verified = False
        self.verdict = None
        self.finals = self.workers = 0  # master: figures received, workers at test start
        self.reset()

    def reset(self):
        self.confirmed = collections.Counter()  # item -> units confirmed
        self.unknown = collections.Counter()  # item -> units whose outcome stayed unknown
        self.order_ids = set()
        self.order_ids_full = False
        self.problems = []
        self.problem_count = 0
        self.identities = []  # a reservoir sample of shoppers, for the end check
        self.identities_seen = 0
        self.identities_checked = 0

    def problem(self, text):
        self.problem_count += 1
        if len(self.problems) < PROBLEMS_KEPT:
            self.problems.append(text)
        log.error("invariant: %s", text)

    def remember(self, ident):
        """Keep ident in a uniform sample of CFG.verify_users shoppers."""
        self.identities_seen += 1
        if len(self.identities) < CFG.verify_users:
            self.identities.append(ident)
        else:
            j = random.randrange(self.identities_seen)
            if j < CFG.verify_users:
                self.identities[j] = ident

    def new_order_id(self, oid):
        """False if oid was already given to another purchase in this process."""
        if oid in self.order_ids:
            return False
        if len(self.order_ids) < ORDER_IDS_MAX:
            self.order_ids.add(oid)
        else:
            self.order_ids_full = True
        return True


RUN = Run()


# ------------------------------------------------------------ answers, checked

# (status, code) the API documents as business answers: successes in Locust,
# each under its own name. unknown_outcome only makes sense for purchases.
BUSINESS = {
    (409, "sold_out"),
    (409, "limit_exceeded"),
    (403, "not_on_sale"),
    (429, "rate_limited"),
    (503, "overloaded"),
    (503, "unavailable"),
}
ORDER_STATUSES = {"confirmed", "paid", "expired"}
ITEM_STATUSES = {"upcoming", "on_sale", "sold_out", "ended", "paused"}


def _header(resp, name):
    h = getattr(resp, "headers", None)
    if not h:
        return None
    return h.get(name) or h.get(name.lower())


def _body(resp):
    """The JSON body as a dict, or None if it is not a JSON object."""
    ctype = _header(resp, "Content-Type") or ""
    if not ctype.startswith("application/json"):
        return None
    try:
        b = json.loads(resp.text or "")
    except ValueError:
        return None
    return b if isinstance(b, dict) else None


def _error_code(resp):
    """The error code of a {"error":{"code","message"}} body, or None."""
    b = _body(resp)
    e = b.get("error") if b else None
    if not isinstance(e, dict) or not isinstance(e.get("code"), str) or not isinstance(e.get("message"), str):
        return None
    return e["code"]


def _retry_after(resp):
    try:
        return max(0.0, float(_header(resp, "Retry-After")))
    except (TypeError, ValueError):
        return 0.0


def _order_problem(o, ident, item=None, request_id=None):
    """What is wrong with an order object the API sent, or ''."""
    if not isinstance(o, dict):
        return "order is not a JSON object"
    oid = o.get("order_id")
    if not isinstance(oid, str) or not oid.isdigit() or int(oid) <= 0:
        return f"order_id {oid!r} is not a positive decimal string"
    if o.get("user_id") != ident.user:
        return f"order {oid} belongs to {o.get('user_id')!r}, asked by {ident.user}"
    if item is not None and o.get("item_id") != item:
        return f"order {oid} is for item {o.get('item_id')!r}, bought {item}"
    if not isinstance(o.get("item_id"), str) or not ID_RE.match(o["item_id"]):
        return f"order {oid} has item_id {o.get('item_id')!r}"
    q = o.get("quantity")
    if not isinstance(q, int) or isinstance(q, bool) or q < 1:
        return f"order {oid} has quantity {q!r}"
    if o.get("status") not in ORDER_STATUSES:
        return f"order {oid} has status {o.get('status')!r}"
    if request_id is not None and o.get("request_id", request_id) != request_id:
        return f"order {oid} has request_id {o.get('request_id')!r}, sent {request_id}"
    if not isinstance(o.get("created_at"), str):
        return f"order {oid} has no created_at"
    return ""


def item_problem(b, item):
    """(kind, what) is wrong with a GET /v1/items/{id} body; kind is
    "malformed" or "oversell"; ("", "") if nothing."""
    if b is None:
        return "malformed", "item body is not a JSON object"
    nums = [b.get(k) for k in ("stock", "remaining", "sold", "per_user_limit")]
    if b.get("id") != item or not all(isinstance(n, int) and not isinstance(n, bool) for n in nums):
        return "malformed", f"item body {b!r}"
    stock, remaining, sold, _ = nums
    if remaining < 0 or sold > stock or remaining != stock - sold:
        return "oversell", f"item {item} reads stock {stock}, sold {sold}, remaining {remaining}"
    if b.get("status") not in ITEM_STATUSES:
        return "malformed", f"item {item} has status {b.get('status')!r}"
    return "", ""


class Answer:
    """How one request ended, for the purchase loop."""

    # BROKEN: a failure that settles nothing more by resending (a 4xx that
    # means a bug, or a 2xx whose order cannot be trusted: it may have
    # bought, so it counts as unknown).
    CONFIRMED, DECIDED, TURNED_AWAY, UNKNOWN, BROKEN = range(5)

    def __init__(self, kind, order=None, wait=0.0, bought=False):
        self.kind, self.order, self.wait, self.bought = kind, order, wait, bought


# ------------------------------------------------------------------- shoppers


class FlashUser(FastHttpUser):
    """What both kinds of shopper do; not run itself."""

    abstract = True
    network_timeout = 10.0
    connection_timeout = 5.0

    def new_identity(self):
        self.ident = Identity()
        RUN.remember(self.ident)

    def on_start(self):
        self.new_identity()

    def pick_item(self):
        if not RUN.items:
            return None
        return random.choice(list(RUN.items))

    # ---- purchase

    def purchase(self, item, quantity=1):
        """One click on "buy": a fresh request_id, resent while the outcome is
        unknown (the README's rule), so each click ends in an order, a
        decision, or a counted unknown."""
        ident = self.ident
        rid = f"r{uuid.uuid4().hex[:24]}"
        maybe = False  # an attempt may have bought and no answer has settled it
        try:
            for attempt in range(CFG.retries + 1):
                maybe_before = maybe
                maybe = True
                a = self._purchase_once(ident, item, rid, quantity, attempt, maybe_before)
                if a.kind == Answer.CONFIRMED:
                    maybe = False
                    self._confirmed(ident, item, a.order)
                    return a.order
                if a.kind in (Answer.DECIDED, Answer.BROKEN):
                    maybe = a.bought or (a.kind == Answer.BROKEN and maybe_before)
                    return None
                if a.kind == Answer.TURNED_AWAY:
                    # Nothing bought by this attempt; an earlier unknown one may have.
                    maybe = maybe_before
                    if not maybe:
                        return None
                # Back off: Retry-After, at least 0.1 s doubling per attempt, at most 2 s.
                gevent.sleep(min(2.0, max(a.wait, 0.1 * 2**attempt)) * (0.5 + random.random()))
            return None
        finally:
            if maybe:  # retries ran out, or the user was stopped mid-purchase
                ident.unknown[item] += quantity
                RUN.unknown[item] += quantity

    def _purchase_once(self, ident, item, rid, quantity, attempt, retry):
        prefix = "purchase retry" if attempt else "purchase"
        with self.client.post(
            f"/v1/items/{item}/purchase",
            json={"quantity": quantity, "request_id": rid},
            headers=ident.headers(),
            name=prefix,
            catch_response=True,
        ) as r:
            st = r.status_code
            if st == 0:
                r.request_meta["name"] = f"{prefix}: connection error"
                r.failure(f"no answer: {r.error}")
                return Answer(Answer.UNKNOWN)
            if st in (200, 201):
                o = _body(r)
                why = _order_problem(o, ident, item, rid)
                if not why and (o["quantity"] != quantity or (st == 201 and o["status"] != "confirmed")):
                    why = f"order {o['order_id']} confirmed as {o['quantity']} unit(s), status {o['status']!r}"
                if not why and st == 200 and not retry:
                    why = f"200 (a replayed request_id) for the first send of {rid}"
                if not why and not RUN.new_order_id(o["order_id"]):
                    why = f"order {o['order_id']} was already confirmed to another purchase"
                    RUN.problem(f"duplicate: {why}")
                r.request_meta["name"] = f"{prefix}: {st} {'confirmed' if st == 201 else 'replayed'}"
                if why:
                    r.failure(why)
                    return Answer(Answer.BROKEN, bought=True)
                r.success()
                return Answer(Answer.CONFIRMED, order=o)
            code = _error_code(r)
            r.request_meta["name"] = f"{prefix}: {st} {code or 'malformed'}"
            if code is None:
                r.failure(f"HTTP {st} with a body that is not an API error")
                return Answer(Answer.UNKNOWN if st >= 500 else Answer.BROKEN)
            if (st, code) in BUSINESS:
                r.success()
                if st in (429, 503):
                    return Answer(Answer.TURNED_AWAY, wait=_retry_after(r))
                return Answer(Answer.DECIDED)
            if (st, code) == (503, "unknown_outcome"):
                r.success()
                return Answer(Answer.UNKNOWN, wait=_retry_after(r))
            r.failure(f"HTTP {st} {code}")
            return Answer(Answer.UNKNOWN if st >= 500 else Answer.BROKEN)

    def _confirmed(self, ident, item, o):
        oid, q = o["order_id"], o["quantity"]
        if oid in ident.orders:
            return
        ident.orders[oid] = (item, q)
        ident.units[item] += q
        RUN.confirmed[item] += q
        limit = RUN.items.get(item)
        if limit and ident.units[item] > limit:
            RUN.problem(f"limit: user {ident.user} holds {ident.units[item]} units of {item}, per-user limit {limit}")
        if o.get("pay_by"):
            self.pay(ident, item, oid, q)

    def pay(self, ident, item, oid, q):
        """With a payment window the shopper pays at once; an order that
        expires anyway gives its unit back to the sale."""
        for _ in range(CFG.retries + 1):
            with self.client.post(
                f"/v1/orders/{oid}/pay", headers=ident.headers(), name="pay", catch_response=True
            ) as r:
                st, code = r.status_code, _error_code(r)
                if st == 200:
                    b = _body(r)
                    r.request_meta["name"] = "pay: 200"
                    if b is None or b.get("order_id") != oid or b.get("status") != "paid":
                        r.failure(f"pay answered {b!r}")
                    else:
                        r.success()
                    return
                r.request_meta["name"] = f"pay: {st} {code or 'malformed'}"
                if (st, code) == (409, "order_expired"):
                    r.success()
                    ident.units[item] -= q
                    RUN.confirmed[item] -= q
                    return
                if (st, code) in BUSINESS:
                    r.success()
                    gevent.sleep(min(1.0, _retry_after(r) or 0.2))
                    continue
                r.failure(f"HTTP {st} {code}")
                return

    # ---- reads

    def view_item(self, item):
        with self.client.get(f"/v1/items/{item}", name="item", catch_response=True) as r:
            st = r.status_code
            if st == 200:
                b = _body(r)
                kind, why = item_problem(b, item)
                r.request_meta["name"] = f"item: 200 {b.get('status') if b else 'malformed'}"
                if why:
                    r.failure(why)
                    if kind != "malformed":
                        RUN.problem(f"{kind}: {why}")
                else:
                    r.success()
                return b
            self._read_error(r, "item")
            return None

    def read_order(self):
        ident = self.ident
        if not ident.orders:
            return
        oid = random.choice(list(ident.orders))
        item, q = ident.orders[oid]
        with self.client.get(f"/v1/orders/{oid}", headers=ident.headers(), name="order", catch_response=True) as r:
            if r.status_code == 200:
                b = _body(r)
                why = _order_problem(b, ident, item)
                if not why and (b.get("order_id") != oid or b.get("quantity") != q):
                    why = f"GET /v1/orders/{oid} answered order {b.get('order_id')} of {b.get('quantity')} unit(s)"
                if not why and not isinstance(b.get("persisted"), bool):
                    why = f"order {oid} has no persisted flag"
                r.request_meta["name"] = "order: 200"
                if why:
                    r.failure(why)
                else:
                    r.success()
                return
            code = self._read_error(r, "order")
            if code == "order_not_found":
                RUN.problem(f"lost: order {oid} confirmed to {ident.user} answers 404 order_not_found")

    def my_orders(self):
        ident = self.ident
        with self.client.get(
            "/v1/users/me/orders?limit=100", headers=ident.headers(), name="my orders", catch_response=True
        ) as r:
            if r.status_code != 200:
                self._read_error(r, "my orders")
                return
            r.request_meta["name"] = "my orders: 200"
            kind, why = check_order_list(_body(r), ident)
            if why:
                r.failure(why)
                if kind != "malformed":
                    RUN.problem(f"{kind}: user {ident.user}: {why}")
            else:
                r.success()

    def _read_error(self, r, prefix):
        """Names and judges a non-200 answer to a read; returns its code."""
        st = r.status_code
        if st == 0:
            r.request_meta["name"] = f"{prefix}: connection error"
            r.failure(f"no answer: {r.error}")
            return None
        code = _error_code(r)
        r.request_meta["name"] = f"{prefix}: {st} {code or 'malformed'}"
        if code is not None and (st, code) in BUSINESS and st in (429, 503):
            r.success()
        elif code is None:
            r.failure(f"HTTP {st} with a body that is not an API error")
        else:
            r.failure(f"HTTP {st} {code}")
        return code


def check_order_list(b, ident):
    """(kind, what) is wrong with a GET /v1/users/me/orders answer for
    ident; kind is "malformed", "lost", "limit" or "oversell"; ("", "") if
    nothing. Every order confirmed to the shopper must be listed (when they
    fit in one page), and orders the shopper was not told about must be
    explained by purchases whose outcome stayed unknown."""
    if b is None or not isinstance(b.get("orders"), list):
        return "malformed", 'order list body is not {"orders":[...]}'
    listed = set()
    extra = collections.Counter()
    held = collections.Counter()
    for o in b["orders"]:
        why = _order_problem(o, ident)
        if why:
            return "malformed", why
        oid = o["order_id"]
        if oid in listed:
            return "malformed", f"order {oid} listed twice"
        listed.add(oid)
        if o["status"] != "expired":
            held[o["item_id"]] += o["quantity"]
        if oid not in ident.orders:
            extra[o["item_id"]] += o["quantity"]
    for it, n in held.items():
        limit = RUN.items.get(it)
        if limit and n > limit:
            return "limit", f"{n} units of {it} listed, per-user limit {limit}"
    if len(ident.orders) + sum(ident.unknown.values()) <= 100:
        missing = [oid for oid in ident.orders if oid not in listed]
        if missing:
            return "lost", f"confirmed order(s) {', '.join(missing[:5])} missing from the order list"
        for it, n in extra.items():
            if n > ident.unknown[it]:
                return "oversell", (
                    f"{n} unit(s) of {it} listed that were never confirmed "
                    f"({ident.unknown[it]} with an unknown outcome)"
                )
    return "", ""


class Shopper(FlashUser):
    """A person at the sale: looks, buys, checks the order, leaves after a
    few actions (a new shopper arrives in its place)."""

    weight = 9
    wait_time = between(CFG.wait_min, CFG.wait_max)

    def on_start(self):
        super().on_start()
        self.actions_left = random.randint(3, 12)

    def _next(self):
        self.actions_left -= 1
        if self.actions_left <= 0:
            self.new_identity()
            self.actions_left = random.randint(3, 12)

    @task(10)
    def buy(self):
        item = self.pick_item()
        if item:
            if self.purchase(item) is not None and random.random() < 0.5:
                self.read_order()  # "did I get it?"
        self._next()

    @task(4)
    def look(self):
        item = self.pick_item()
        if item:
            self.view_item(item)
        self._next()

    @task(2)
    def orders(self):
        self.my_orders()
        self._next()

    @task(1)
    def order(self):
        self.read_order()
        self._next()


class Clicker(FlashUser):
    """One account clicking "buy" on the hot item as fast as the page lets it."""

    weight = 1
    wait_time = constant_pacing(CFG.click_interval)

    @task
    def click(self):
        if RUN.hot:
            self.purchase(RUN.hot)


# -------------------------------------------------------------- admin and API


def api(host, method, path, body=None, headers=None, timeout=10):
    """One request outside Locust's statistics: (status, dict body or None,
    Retry-After); status 0 when there was no answer."""
    data = None
    h = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    req = urllib.request.Request(host.rstrip("/") + path, data=data, headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            st, raw, ra = resp.status, resp.read(), resp.headers.get("Retry-After")
    except urllib.error.HTTPError as e:
        st, raw, ra = e.code, e.read(), e.headers.get("Retry-After")
    except (OSError, ValueError) as e:
        log.warning("%s %s: %s", method, path, e)
        return 0, None, None
    try:
        b = json.loads(raw)
    except ValueError:
        b = None
    return st, (b if isinstance(b, dict) else None), ra


def api_retry(host, method, path, deadline, **kw):
    """api(), retried on 429, 503 and no answer until deadline (monotonic)."""
    while True:
        st, b, ra = api(host, method, path, **kw)
        if st not in (0, 429, 503) or time.monotonic() >= deadline:
            return st, b
        try:
            wait = float(ra)
        except (TypeError, ValueError):
            wait = 0.5
        gevent.sleep(min(1.0, max(0.1, wait)))


def _admin():
    return {"Authorization": "Bearer " + CFG.admin_token.decode("ascii", "replace")}


def setup_items(environment):
    """Create the items (FLASHSTOCK_CREATE_ITEMS=1) and read their state
    before the load. Returns False when the test cannot run."""
    host = environment.host
    items = list(CFG.items)
    if not items:  # a fresh set per test
        stamp = f"lc{int(time.time()) % 10**8}"
        items = [f"{stamp}-hot", f"{stamp}-a", f"{stamp}-b"]
    deadline = time.monotonic() + 30
    if CFG.create:
        for i, it in enumerate(items):
            stock = CFG.hot_stock if i == 0 else CFG.stock
            st, b = api_retry(
                host,
                "POST",
                "/v1/items",
                deadline,
                body={"id": it, "name": f"Locust {it}", "stock": stock, "per_user_limit": CFG.per_user_limit},
                headers=_admin(),
            )
            if st == 201:
                log.info("created item %s: stock %d, per-user limit %d", it, stock, CFG.per_user_limit)
            elif st == 409 and b and b.get("error", {}).get("code") == "item_exists":
                log.warning("item %s exists already: selling it as it is", it)
            else:
                log.error("create item %s: HTTP %s %s", it, st, b)
                return False
    RUN.items, RUN.baseline = {}, {}
    for it in items:
        st, b = api_retry(host, "GET", f"/v1/items/{it}", deadline)
        if st != 200 or item_problem(b, it)[1]:
            log.error("read item %s before the test: HTTP %s %s", it, st, b)
            return False
        RUN.baseline[it] = b
        RUN.items[it] = b["per_user_limit"]
    RUN.hot = items[0]
    return True


# ----------------------------------------------------------------- end checks


def verify(environment):
    """Hold the items to the sale's books: read each back and compare it with
    its state at the start and what the shoppers were told; record every
    broken promise in RUN.problems. Returns the table's rows."""
    host = environment.host
    deadline = time.monotonic() + max(10.0, CFG.verify_wait + 5)
    rows = []
    for it, before in RUN.baseline.items():
        seen, unknown = RUN.confirmed[it], RUN.unknown[it]
        wait_until = time.monotonic() + CFG.verify_wait
        while True:  # an item read through a gateway may be a moment old
            st, b = api_retry(host, "GET", f"/v1/items/{it}", deadline)
            if st != 200 or item_problem(b, it)[1]:
                break
            if b["sold"] - before["sold"] >= seen or time.monotonic() >= wait_until:
                break
            gevent.sleep(0.5)
        if st != 200 or b is None:
            RUN.problem(f"oversell: item {it} could not be read back (HTTP {st}): nothing shows it was not oversold")
            continue
        kind, why = item_problem(b, it)
        if why:
            RUN.problem(f"oversell: {why}" if kind == "oversell" else f"oversell: item {it} read back as {why}")
            continue
        delta = b["sold"] - before["sold"]
        rows.append((it, b["stock"], b["sold"], b["remaining"], delta, seen, unknown, b["status"]))
        if b["stock"] != before["stock"]:
            RUN.problem(f"oversell: item {it}: stock changed during the run from {before['stock']} to {b['stock']}")
        if delta < seen:
            RUN.problem(f"lost: item {it}: sold {delta} units in this run but confirmed {seen} to the shoppers")
        if CFG.exclusive and delta > seen + unknown:
            RUN.problem(
                f"oversell: item {it}: sold {delta} units in this run, shoppers saw {seen} confirmed "
                f"and {unknown} unknown ({delta - seen - unknown} sold without a confirmation)"
            )
    head = ("item", "stock", "sold", "remaining", "run", "confirmed", "unknown", "status")
    log.info("%-24s %10s %10s %10s %8s %10s %8s  %s", *head)
    for row in rows:
        log.info("%-24s %10d %10d %10d %8d %10d %8d  %s", *row)
    return rows


def verify_identities(environment):
    """Check the order lists of the sampled shoppers of this process."""
    host = environment.host
    deadline = time.monotonic() + 30
    checked = 0
    for ident in RUN.identities:
        if not ident.orders and not ident.unknown:
            continue
        st, b = api_retry(host, "GET", "/v1/users/me/orders?limit=100", deadline, headers=ident.headers())
        if st != 200:
            RUN.problem(f"lost: user {ident.user}'s orders could not be read at the end (HTTP {st})")
            continue
        kind, why = check_order_list(b, ident)
        if why:
            RUN.problem(f"{'lost' if kind == 'malformed' else kind}: user {ident.user} at the end: {why}")
        checked += 1
    log.info("order lists of %d shoppers checked", checked)
    return checked


# --------------------------------------------------------------------- events
#
# Local runner: setup at test_start, checks at test_stop (or at quitting, for
# Ctrl-C and SIGTERM, which quit before stopping the users).
#
# Distributed (--master, --worker): the master creates the items and sends
# them to the workers; each worker sends its figures the moment its users
# have stopped ("flashstock_final"), then checks its sampled shoppers and
# sends that too ("flashstock_shoppers"). The master checks the items once
# every worker's figures are in: at test_stop when the test is stopped (web
# UI, or its stop message), at quitting after --run-time (the master tells
# the workers to quit only after its test_stop, then waits 0.5 s for them).


@events.init_command_line_parser.add_listener
def _parser(parser, **_):
    # The web UI binds to loopback unless --web-host (or LOCUST_WEB_HOST) says otherwise.
    parser.set_defaults(web_host="127.0.0.1")


@events.init.add_listener
def _init(environment, **_):
    runner = environment.runner
    if isinstance(runner, WorkerRunner):

        def items(environment, msg, **_):
            RUN.items, RUN.hot = dict(msg.data["items"]), msg.data["hot"]

        runner.register_message("flashstock_items", items)
    elif isinstance(runner, MasterRunner):

        def final(environment, msg, **_):
            d = msg.data
            RUN.finals += 1
            RUN.confirmed.update(d["confirmed"])
            RUN.unknown.update(d["unknown"])
            merge_problems(d)

        def shoppers(environment, msg, **_):
            RUN.identities_checked += msg.data["checked"]
            merge_problems(msg.data)

        runner.register_message("flashstock_final", final)
        runner.register_message("flashstock_shoppers", shoppers)


def merge_problems(d):
    RUN.problem_count += d["problem_count"]
    RUN.problems.extend(d["problems"][: max(0, PROBLEMS_KEPT - len(RUN.problems))])


@events.test_start.add_listener
def _test_start(environment, **_):
    RUN.reset()
    if isinstance(environment.runner, WorkerRunner):
        return  # the master sent the items already
    RUN.started, RUN.verified, RUN.verdict = True, False, None
    RUN.finals, RUN.workers = 0, 0
    if not environment.host:
        RUN.problem("setup: no host (--host http://node:8080)")
        gevent.spawn_later(0, environment.runner.quit)
        return
    if not setup_items(environment):
        RUN.problem("setup: the items could not be created or read")
        gevent.spawn_later(0, environment.runner.quit)
        return
    log.info("selling %s (hot item %s)", ", ".join(RUN.items), RUN.hot)
    if isinstance(environment.runner, MasterRunner):
        RUN.workers = environment.runner.worker_count
        environment.runner.send_message("flashstock_items", {"items": RUN.items, "hot": RUN.hot})


@events.test_stop.add_listener
def _test_stop(environment, **_):
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.send_message(
            "flashstock_final",
            {
                "confirmed": dict(RUN.confirmed),
                "unknown": dict(RUN.unknown),
                "problem_count": RUN.problem_count,
                "problems": RUN.problems,
            },
        )
        before = RUN.problem_count
        checked = verify_identities(environment) if environment.host else 0
        runner.send_message(
            "flashstock_shoppers",
            {"checked": checked, "problem_count": RUN.problem_count - before, "problems": RUN.problems[before:]},
        )
        if RUN.problem_count:
            environment.process_exit_code = 1
        return
    if isinstance(runner, MasterRunner):
        if RUN.finals >= RUN.workers:
            finish(environment)
        return  # else at quitting, once the workers have sent their figures
    if RUN.started and RUN.baseline and not RUN.verified:
        RUN.identities_checked += verify_identities(environment)
    finish(environment)


def finish(environment):
    """Check the items once, with every process's figures in."""
    if not RUN.started or RUN.verified:
        return
    RUN.verified = True
    if not RUN.baseline:
        return  # setup failed: a problem already
    if RUN.finals < RUN.workers:
        missing = RUN.workers - RUN.finals
        RUN.problem(f"setup: the figures of {missing} worker(s) never arrived: the books cannot be checked")
    rows = verify(environment)
    RUN.verdict = {"items": rows}
    if RUN.problem_count:
        log.error("flashstock: %d broken invariant(s); first: %s", RUN.problem_count, RUN.problems[0])
    else:
        log.info(
            "flashstock: the books balance (%d confirmed units, %d unknown)",
            sum(RUN.confirmed.values()),
            sum(RUN.unknown.values()),
        )


@events.quitting.add_listener
def _quitting(environment, **_):
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        return
    if RUN.started and not RUN.verified and not isinstance(runner, MasterRunner):
        runner.stop()  # Ctrl-C or SIGTERM: stop the users, then check (test_stop)
    finish(environment)
    total = environment.stats.total
    ok = RUN.problem_count == 0 and total.num_failures == 0 and RUN.started
    if not ok:
        environment.process_exit_code = 1
    names = collections.Counter()
    for (name, _method), e in environment.stats.entries.items():
        names[name] += e.num_requests
    summary = {
        "ok": ok,
        "requests": total.num_requests,
        "failures": total.num_failures,
        "seconds": round((total.last_request_timestamp or 0) - (total.start_time or 0), 1),
        "confirmed_units": sum(RUN.confirmed.values()),
        "unknown_units": sum(RUN.unknown.values()),
        "outcomes": dict(sorted(names.items())),
        "items": [
            dict(zip(("id", "stock", "sold", "remaining", "sold_in_run", "confirmed", "unknown", "status"), r))
            for r in (RUN.verdict or {}).get("items", [])
        ],
        "shoppers_checked": RUN.identities_checked,
        "problem_count": RUN.problem_count,
        "problems": RUN.problems,
    }
    if CFG.summary_file:
        tmp = CFG.summary_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(summary, f, indent=1)
        os.replace(tmp, CFG.summary_file)
    log.info(
        "flashstock summary: %d requests, %d failures, %d units confirmed, %d unknown, %d broken invariant(s)",
        summary["requests"],
        summary["failures"],
        summary["confirmed_units"],
        summary["unknown_units"],
        summary["problem_count"],
    )
