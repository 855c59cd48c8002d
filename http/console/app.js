// Flashstock console: one GET /v1/admin/dashboard per refresh, admin actions
// through the same API routes as curl. Everything the node sends is rendered
// with textContent, never as HTML.
'use strict';

const TOKEN_KEY = 'flashstock.adminToken';
const REFRESH_MS = 1000;
const REQUEST_TIMEOUT_MS = 8000;
const PAGE_SIZE = 50;

const STATUS_LABELS = {
  on_sale: 'On sale', sold_out: 'Sold out', paused: 'Paused', upcoming: 'Upcoming', ended: 'Ended',
};

const state = {
  token: null,
  timer: null,
  generation: 0,     // bumped at sign-out, so a late answer is dropped
  cards: new Map(),  // item id -> {el, parts}
  last: null,        // last dashboard document
  skew: 0,           // server time - local time, ms
  pages: [''],       // after= of each page visited
  busy: false,       // an action is in flight
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

// api sends one request with the admin token and returns {status, ok, data}.
async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + state.token };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), REQUEST_TIMEOUT_MS);
  try {
    const r = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      signal: ctl.signal, cache: 'no-store', credentials: 'omit', redirect: 'error',
    });
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    return { status: r.status, ok: r.ok, data };
  } finally {
    clearTimeout(t);
  }
}

function setConn(text, lost) {
  const c = $('conn');
  c.textContent = text;
  c.classList.toggle('lost', !!lost);
}

// --- sign in and out ---------------------------------------------------------

async function signIn(token, fromStorage) {
  state.token = token;
  const gen = ++state.generation;
  let res;
  try {
    res = await api('GET', dashboardPath());
  } catch (e) {
    $('signin-error').textContent = 'Could not reach the node: ' + e.message;
    state.token = null;
    return;
  }
  if (gen !== state.generation) return;
  if (res.status === 401) {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $('token').value = '';
    $('signin-error').textContent = fromStorage
      ? 'The stored token was refused (401 unauthenticated). Sign in again.'
      : 'Refused: the node answered 401 unauthenticated. That is not this cluster\'s admin token.';
    showSignIn();
    return;
  }
  if (!res.ok) {
    $('signin-error').textContent = 'The node answered ' + res.status + ': ' + errorText(res.data);
    state.token = null;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $('signin-error').textContent = '';
  $('token').value = '';
  $('signin').hidden = true;
  $('app').hidden = false;
  $('signout').hidden = false;
  render(res.data);
  schedule(gen, 0);
}

function signOut(message) {
  state.generation++;
  clearTimeout(state.timer);
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  state.cards.clear();
  $('items').replaceChildren();
  showSignIn();
  $('signin-error').textContent = message || '';
  setConn('Not signed in.');
}

function showSignIn() {
  $('app').hidden = true;
  $('signout').hidden = true;
  $('signin').hidden = false;
  $('token').focus();
}

// --- the refresh loop: one request per refresh ------------------------------

function dashboardPath() {
  const after = state.pages[state.pages.length - 1];
  let q = '?limit=' + PAGE_SIZE;
  if (after) q += '&after=' + encodeURIComponent(after);
  return '/v1/admin/dashboard' + q;
}

function schedule(gen, elapsed) {
  clearTimeout(state.timer);
  state.timer = setTimeout(() => refresh(gen), Math.max(0, REFRESH_MS - elapsed));
}

async function refresh(gen) {
  if (gen !== state.generation || !state.token) return;
  const started = performance.now();
  let res;
  try {
    res = await api('GET', dashboardPath());
  } catch (e) {
    if (gen !== state.generation) return;
    setConn('Connection to the node lost: retrying every second…', true);
    schedule(gen, performance.now() - started);
    return;
  }
  if (gen !== state.generation) return;
  if (res.status === 401) {
    signOut('The node no longer accepts the token (401). Sign in again.');
    return;
  }
  if (!res.ok) {
    setConn('The node answered ' + res.status + ' (' + errorText(res.data) + '): retrying…', true);
  } else {
    render(res.data);
  }
  schedule(gen, performance.now() - started);
}

// --- rendering ----------------------------------------------------------------

function render(d) {
  state.last = d;
  state.skew = new Date(d.generated_at).getTime() - Date.now();
  const at = new Date(d.generated_at).toLocaleTimeString();
  setConn('Live from node ' + d.node.name + (d.node.region ? ' (' + d.node.region + ')' : '') + ', updated ' + at + '.');
  $('viewer').textContent = 'as node ' + d.node.name + ' sees it';
  renderAlerts(d.alerts);
  renderItems(d);
  renderMembers(d.members);
  renderShards(d.shards);
  renderTimeline(d.leader_changes);
  renderStore(d);
}

function renderAlerts(alerts) {
  const list = $('alerts');
  list.replaceChildren(...alerts.map((a) => el('li', { 'data-kind': a.kind },
    el('span', { class: 'sev sev-' + a.severity, text: a.severity === 'critical' ? 'Critical:' : 'Warning:' }),
    a.message)));
  $('banner').hidden = alerts.length === 0;
}

function renderItems(d) {
  const seen = new Set();
  const box = $('items');
  let prev = null;
  for (const it of d.items) {
    seen.add(it.id);
    let card = state.cards.get(it.id);
    if (!card) {
      card = makeCard(it.id);
      state.cards.set(it.id, card);
    }
    updateCard(card, it, d.spark_step_s);
    // Keep cards in the document's order without touching focused ones needlessly.
    const want = prev ? prev.nextSibling : box.firstChild;
    if (want !== card.el) box.insertBefore(card.el, want);
    prev = card.el;
  }
  for (const [id, card] of state.cards) {
    if (!seen.has(id)) {
      card.el.remove();
      state.cards.delete(id);
    }
  }
  const notes = [];
  if (d.items.length === 0) notes.push('No items yet on the shards this node replicates. Create one below.');
  if (d.missing_shards.length) notes.push('No current replica on this node of shard(s) ' + d.missing_shards.join(', ') +
    ': their items show as last seen (marked "as last seen"), or not at all; the console of a node that replicates them shows them live.');
  if (d.items_capped) notes.push('The console follows the first ' + d.items_tracked + ' items by ID.');
  $('items-note').textContent = notes.join(' ');
  const page = state.pages.length;
  $('pageinfo').textContent = 'Page ' + page + ' (' + d.items.length + ' items)';
  $('prev').disabled = page === 1;
  $('next').disabled = !d.items_next;
}

function makeCard(id) {
  const p = {};
  p.name = el('span');
  p.status = el('strong');
  p.bar = el('progress', { 'aria-label': 'Units sold of ' + id });
  p.sold = el('span');
  p.rate = el('span');
  p.spark = svg('svg', { class: 'spark', viewBox: '0 0 120 28', role: 'img', preserveAspectRatio: 'none' });
  p.limit = el('span');
  p.window = el('span');
  p.delta = el('input', { type: 'number', step: '1', value: '10', 'aria-label': 'Units to add to ' + id });
  p.restock = el('button', { type: 'button', text: 'Restock…' });
  p.pause = el('button', { type: 'button' });
  const card = el('article', { class: 'item', 'aria-label': 'Item ' + id },
    el('h3', {}, p.name, ' ', el('code', { text: id })),
    el('p', { class: 'status' }, 'Status: ', p.status),
    p.bar,
    el('p', {}, p.sold),
    el('p', { class: 'rate' }, p.rate, p.spark),
    el('p', {}, p.limit),
    el('p', {}, p.window),
    el('div', { class: 'actions' }, p.delta, p.restock, p.pause));
  card.dataset.id = id;
  p.restock.addEventListener('click', () => confirmRestock(id, p.delta.value));
  p.pause.addEventListener('click', () => confirmPause(id));
  return { el: card, parts: p, item: null };
}

function updateCard(card, it, stepS) {
  const p = card.parts;
  card.item = it;
  card.el.dataset.status = it.status;
  p.name.textContent = it.name || it.id;
  p.status.textContent = (STATUS_LABELS[it.status] || it.status) + (it.stale ? ' (as last seen: no replica here right now)' : '');
  p.bar.max = Math.max(1, it.stock);
  p.bar.value = it.sold;
  p.sold.textContent = 'Sold ' + fmt(it.sold) + ' of ' + fmt(it.stock) + ' · ' + fmt(it.remaining) + ' left';
  p.rate.textContent = fmt(it.sales_per_s) + ' units/s';
  drawSpark(p.spark, it.spark, 'Units sold per second over the last ' + Math.round(it.spark.length * stepS / 60) + ' minutes');
  p.limit.textContent = 'Limit ' + it.per_user_limit + ' per shopper';
  p.window.textContent = windowText(it);
  p.pause.textContent = it.status === 'paused' ? 'Resume…' : 'Pause…';
}

function windowText(it) {
  const now = Date.now() + state.skew;
  const starts = it.starts_at ? new Date(it.starts_at).getTime() : 0;
  const ends = it.ends_at ? new Date(it.ends_at).getTime() : 0;
  if (starts && now < starts) return 'Opens in ' + duration(starts - now) + (ends ? ', closes ' + duration(ends - now) + ' from now' : '');
  if (ends && now >= ends) return 'Window closed ' + duration(now - ends) + ' ago';
  if (ends) return 'Closes in ' + duration(ends - now);
  return 'Window open, no closing time';
}

function duration(ms) {
  let s = Math.max(0, Math.round(ms / 1000));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return d + 'd ' + h + 'h';
  if (h) return h + 'h ' + m + 'm';
  if (m) return m + 'm ' + s + 's';
  return s + 's';
}

function svg(tag, attrs) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

// SPARK_MIN_POINTS: a young series is drawn over at least this many points
// (a minute), not squeezed into the right edge of five.
const SPARK_MIN_POINTS = 12;

// drawSpark draws values (-1: no sample) as polylines, one per unbroken run.
function drawSpark(node, all, label) {
  let first = all.findIndex((v) => v >= 0);
  if (first < 0) first = all.length;
  const values = all.slice(Math.min(first, Math.max(0, all.length - SPARK_MIN_POINTS)));
  const peak = Math.max(1, ...values);
  const step = values.length > 1 ? 116 / (values.length - 1) : 116;
  const lines = [];
  let pts = [];
  values.forEach((v, i) => {
    if (v < 0) {
      if (pts.length) lines.push(pts);
      pts = [];
      return;
    }
    pts.push((2 + i * step).toFixed(1) + ',' + (25 - (v / peak) * 22).toFixed(1));
  });
  if (pts.length) lines.push(pts);
  // A lone sample is drawn as a dot, so that a sale younger than one
  // point still shows.
  node.replaceChildren(...lines.map((l) => {
    if (l.length > 1) return svg('polyline', { points: l.join(' ') });
    const [x, y] = l[0].split(',');
    return svg('circle', { cx: x, cy: y, r: '1.8' });
  }));
  const top = Math.max(0, ...values);
  node.setAttribute('aria-label', label + ': peak ' + fmt(top) + '/s');
  let title = node.querySelector('title');
  if (!title) title = svg('title');
  title.textContent = label + ': peak ' + fmt(top) + '/s';
  node.prepend(title);
}

function renderMembers(members) {
  $('members-body').replaceChildren(...members.map((m) => {
    const st = el('td', { text: m.state === 'alive' ? 'alive' : m.state.toUpperCase() });
    if (m.state === 'dead') st.className = 'bad';
    return el('tr', { 'data-member': m.id },
      el('th', { scope: 'row', text: m.id }),
      el('td', { text: m.role || '-' }),
      el('td', { text: m.region || '-' }),
      st,
      el('td', { text: new Date(m.since).toLocaleTimeString() }),
      el('td', { text: m.leads.length ? m.leads.join(', ') : '-' }));
  }));
}

function renderShards(shards) {
  $('shards-body').replaceChildren(...shards.map((s) => {
    const leader = el('td', { class: 'leader', text: s.leader || 'NONE (no leader)' });
    if (!s.leader) leader.classList.add('bad');
    const voters = s.voters.join(', ') + (s.non_voters.length ? ' (+ non-voters ' + s.non_voters.join(', ') + ')' : '');
    return el('tr', { 'data-shard': String(s.id) },
      el('th', { scope: 'row', text: String(s.id) }),
      leader,
      el('td', { text: voters || '-' }),
      el('td', { text: String(s.term) }),
      el('td', { text: fmt(s.lag) }),
      el('td', { text: s.last_contact || '-' }),
      el('td', { text: fmt(s.items) }),
      el('td', { text: fmt(s.unflushed_orders) }),
      el('td', { text: fmt(s.flushed_per_s) }));
  }));
}

function renderTimeline(changes) {
  const items = changes.map((c) => el('li', {},
    el('time', { datetime: c.at, text: new Date(c.at).toLocaleTimeString() }),
    ' shard ' + c.shard + ': ' + (c.from || 'none') + ' → ' + (c.to || 'none (no leader)') + ' (term ' + c.term + ')'));
  if (!items.length) items.push(el('li', { text: 'No leader change since this node started.' }));
  $('timeline').replaceChildren(...items);
}

function renderStore(d) {
  const os = d.order_store;
  const facts = [
    ['Unflushed orders (all shards)', fmt(os.unflushed_orders)],
    ['Flushed to the store', fmt(os.flushed_per_s) + ' orders/s'],
    ['Failed writes on this node (15 s)', fmt(os.flush_errors_15s)],
  ];
  $('store').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));

  const ta = d.turned_away;
  const crowd = [
    ['429 rate limited', ta.rate_429_per_s, ta.spark_429],
    ['503 overloaded or unavailable', ta.rate_503_per_s, ta.spark_503],
  ].map(([label, rate, spark]) => {
    const s = svg('svg', { class: 'spark', viewBox: '0 0 120 28', role: 'img', preserveAspectRatio: 'none' });
    drawSpark(s, spark, label + ' per second');
    return el('p', { class: 'rate' }, label + ': ' + fmt(rate) + '/s ', s);
  });
  $('crowd').replaceChildren(...crowd);

  const br = Object.entries(d.circuit_breakers);
  $('breakers').replaceChildren(...(br.length
    ? br.map(([addr, st]) => el('li', { text: addr + ': ' + (st === 'closed' ? 'closed (normal)' : st.toUpperCase() + ' (calls skipped)') }))
    : [el('li', { text: 'None yet: this node has not called another node.' })]));

  const r = d.reconcile;
  let text;
  if (!r) text = 'Not run yet: it runs every 30 s while a console is open.';
  else if (r.error) text = 'Failed at ' + new Date(r.checked_at).toLocaleTimeString() + ': ' + r.error;
  else if (!r.differences) text = 'No difference between Raft and the order store (checked ' + new Date(r.checked_at).toLocaleTimeString() + ').';
  else text = r.differences + ' item(s) differ (checked ' + new Date(r.checked_at).toLocaleTimeString() + '): ' +
    r.items.map((i) => i.item_id + ' by ' + i.diff + (i.settled ? '' : ' (sale in progress: may be an order in flight)')).join('; ');
  $('recon').textContent = text;
}

function fmt(n) {
  if (typeof n !== 'number') return String(n);
  return n.toLocaleString(undefined, { maximumFractionDigits: 1 });
}

function errorText(data) {
  if (data && data.error) return data.error.code + ': ' + data.error.message;
  return 'no error body';
}

// --- admin actions: confirm, send, show the answer ---------------------------

function confirmAction(what, changes, method, path, body) {
  if (state.busy) return;
  $('confirm-what').textContent = what;
  $('confirm-changes').replaceChildren(...changes.map((c) => el('li', { text: c })));
  $('confirm-request').textContent = 'Sends ' + method + ' ' + path + (body !== undefined ? ' ' + JSON.stringify(body) : '');
  const dlg = $('confirm');
  const ok = $('confirm-ok');
  const cancel = $('confirm-cancel');
  const done = () => {
    ok.onclick = null;
    cancel.onclick = null;
    if (dlg.open) dlg.close();
  };
  ok.onclick = async () => {
    done();
    await send(method, path, body);
  };
  cancel.onclick = done;
  dlg.showModal();
  cancel.focus();
}

async function send(method, path, body) {
  state.busy = true;
  const box = $('result');
  const line = $('result-line');
  box.hidden = false;
  line.className = '';
  line.textContent = method + ' ' + path + ': sending…';
  $('result-body').textContent = '';
  try {
    const res = await api(method, path, body);
    line.className = res.ok ? 'done' : 'fail';
    line.textContent = method + ' ' + path + ' → ' + res.status + (res.ok ? ' (done)' : ' (refused: ' + errorText(res.data) + ')');
    $('result-body').textContent = JSON.stringify(res.data, null, 2);
    if (res.status === 401) signOut('The node refused the token (401). Sign in again.');
    else refresh(state.generation);
  } catch (e) {
    line.className = 'fail';
    line.textContent = method + ' ' + path + ': no answer (' + e.message + '). The action may or may not have happened: check the item before retrying.';
  } finally {
    state.busy = false;
  }
}

function itemOf(id) {
  const card = state.cards.get(id);
  return card ? card.item : null;
}

function confirmRestock(id, raw) {
  const delta = Number(raw);
  const it = itemOf(id);
  if (!Number.isInteger(delta) || delta === 0) {
    showLocalError('Restock ' + id + ': enter a whole number of units other than 0 (negative removes unsold units).');
    return;
  }
  const changes = [];
  if (it) {
    changes.push('Stock: ' + fmt(it.stock) + ' → ' + fmt(it.stock + delta));
    changes.push('Remaining: ' + fmt(it.remaining) + ' → ' + fmt(it.remaining + delta));
    if (it.status === 'sold_out' && it.remaining + delta > 0) changes.push('Status: Sold out → On sale (if the window is open)');
  }
  confirmAction((delta > 0 ? 'Add ' + fmt(delta) + ' units to ' : 'Remove ' + fmt(-delta) + ' unsold units from ') + id + '?',
    changes, 'POST', '/v1/items/' + encodeURIComponent(id) + '/stock', { delta });
}

function confirmPause(id) {
  const it = itemOf(id);
  const paused = it && it.status === 'paused';
  const from = it ? (STATUS_LABELS[it.status] || it.status) : '?';
  if (paused) {
    confirmAction('Resume the sale of ' + id + '?', ['Status: Paused → on sale again (or sold out, upcoming, ended as its stock and window say)',
      'Shoppers can buy again at once.'], 'POST', '/v1/items/' + encodeURIComponent(id) + '/resume');
  } else {
    confirmAction('Pause the sale of ' + id + '?', ['Status: ' + from + ' → Paused',
      'Shoppers are answered 403 not_on_sale until you resume; orders already confirmed stay.'],
    'POST', '/v1/items/' + encodeURIComponent(id) + '/pause');
  }
}

function showLocalError(msg) {
  $('result').hidden = false;
  $('result-line').className = 'fail';
  $('result-line').textContent = msg;
  $('result-body').textContent = '';
}

function localToISO(v) {
  if (!v) return undefined;
  const t = new Date(v);
  return Number.isNaN(t.getTime()) ? null : t.toISOString();
}

function onCreate(ev) {
  ev.preventDefault();
  const body = {
    id: $('c-id').value.trim(),
    name: $('c-name').value.trim(),
    stock: Number($('c-stock').value),
    per_user_limit: Number($('c-limit').value),
  };
  const starts = localToISO($('c-start').value);
  const ends = localToISO($('c-end').value);
  if (starts === null || ends === null) {
    showLocalError('Create: a sale time is not a valid date.');
    return;
  }
  if (starts) body.starts_at = starts;
  if (ends) body.ends_at = ends;
  const changes = [
    'New item ' + body.id + (body.name ? ' ("' + body.name + '")' : ''),
    'Stock: ' + fmt(body.stock) + ' units',
    'Limit: ' + body.per_user_limit + ' per shopper',
    'Sale window: ' + (starts ? 'opens ' + new Date(starts).toLocaleString() : 'open at once') + ', ' +
      (ends ? 'closes ' + new Date(ends).toLocaleString() : 'no closing time'),
  ];
  confirmAction('Create item ' + body.id + '?', changes, 'POST', '/v1/items', body);
}

// --- wiring ---------------------------------------------------------------------

document.addEventListener('DOMContentLoaded', () => {
  $('signin-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const tok = $('token').value.trim();
    if (tok) signIn(tok, false);
  });
  $('signout').addEventListener('click', () => signOut('Signed out.'));
  $('create-form').addEventListener('submit', onCreate);
  $('prev').addEventListener('click', () => {
    if (state.pages.length > 1) state.pages.pop();
    refresh(state.generation);
  });
  $('next').addEventListener('click', () => {
    if (state.last && state.last.items_next) state.pages.push(state.last.items_next);
    refresh(state.generation);
  });
  const stored = sessionStorage.getItem(TOKEN_KEY);
  if (stored) signIn(stored, true);
  else showSignIn();
});
