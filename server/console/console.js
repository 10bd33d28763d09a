// The managed-agents web console: a single page over the /v1 API. No framework and no build
// step: the DOM is built with `el()` (text always goes in as text, never as HTML), pages are
// chosen by the URL's hash, and a session's timeline follows the SSE stream read with fetch()
// (EventSource cannot send the Authorization header). The API key lives in sessionStorage and
// travels only in the Authorization header.
'use strict';

const KEY_SLOT = 'managed-agents.api-key';
const PAGE = 100;
const HEADERS = { 'anthropic-version': '2023-06-01', 'anthropic-beta': 'managed-agents-2026-04-01' };

// ---- small helpers ------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'class') node.className = value;
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function when(timestamp) {
  if (!timestamp) return '';
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? String(timestamp) : date.toLocaleString();
}

function timeEl(timestamp) {
  return timestamp ? el('time', { datetime: timestamp, title: timestamp }, when(timestamp)) : el('span', { class: 'muted' }, 'queued');
}

function pretty(value) {
  return JSON.stringify(value, null, 2);
}

function modelName(model) {
  if (!model) return '';
  return typeof model === 'string' ? model : model.id || pretty(model);
}

function blocksText(content) {
  if (!Array.isArray(content)) return typeof content === 'string' ? content : '';
  return content.map((block) => {
    if (block.type === 'text') return block.text;
    if (block.type === 'redacted') return '[redacted]';
    if (block.type === 'image') return '[image]';
    if (block.type === 'document') return '[document' + (block.title ? ': ' + block.title : '') + ']';
    if (block.type === 'search_result') return '[search result: ' + (block.title || '') + ']';
    return '[' + block.type + ']';
  }).join('\n');
}

function statusBadge(status) {
  return el('span', { class: 'badge status-' + status, dataset: { status } }, status);
}

function seconds(ms) {
  return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
}

// ---- the API --------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_SLOT);
}

function authHeaders(extra) {
  return Object.assign({ Authorization: 'Bearer ' + apiKey() }, HEADERS, extra || {});
}

async function failure(response) {
  let type = 'error';
  let message = response.statusText || 'request failed';
  try {
    const body = await response.json();
    if (body && body.error) {
      type = body.error.type || type;
      message = body.error.message || message;
    }
  } catch (_) { /* not JSON */ }
  return new ApiError(response.status, type, message);
}

async function api(method, path, body, signal) {
  const init = { method, headers: authHeaders(), signal };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    const error = await failure(response);
    if (error.status === 401) signedOut('The server did not accept this API key: ' + error.message);
    throw error;
  }
  return response.json();
}

function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === '' || value === false) continue;
    for (const one of Array.isArray(value) ? value : [value]) search.append(name, String(one));
  }
  const text = search.toString();
  return text ? '?' + text : '';
}

function send(sessionId, ...events) {
  return api('POST', '/v1/sessions/' + sessionId + '/events', { events });
}

// Reads an SSE response body and yields {event, id, data} frames (comments are skipped).
async function* frames(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r/g, '');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const frame = { event: 'message', id: null, data: [] };
      for (const line of block.split('\n')) {
        if (line === '' || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') frame.event = text;
        else if (field === 'id') frame.id = text;
        else if (field === 'data') frame.data.push(text);
      }
      if (frame.data.length) yield { event: frame.event, id: frame.id, data: frame.data.join('\n') };
    }
  }
}

// ---- pages and routing ------------------------------------------------------------------------

let current = null; // the AbortController of the page on screen

function main() {
  return document.getElementById('main');
}

function show(...nodes) {
  main().replaceChildren(...nodes);
}

function signedOut(message) {
  sessionStorage.removeItem(KEY_SLOT);
  route(message);
}

function route(message) {
  if (current) current.abort();
  current = new AbortController();
  const signal = current.signal;
  const nav = document.getElementById('nav');
  if (!apiKey()) {
    nav.hidden = true;
    signIn(message);
    return;
  }
  nav.hidden = false;
  const [path, search] = (location.hash.replace(/^#/, '') || '/sessions').split('?');
  const params = new URLSearchParams(search || '');
  const parts = path.split('/').filter(Boolean);
  for (const link of nav.querySelectorAll('a')) {
    link.toggleAttribute('aria-current', link.getAttribute('href') === '#/' + parts[0]);
  }
  const pages = {
    sessions: () => (parts[1] ? sessionPage(parts[1], signal) : sessionsPage(params, signal)),
    agents: () => (parts[1] ? agentPage(parts[1], signal) : agentsPage(signal)),
    environments: () => environmentsPage(signal),
    vaults: () => (parts[1] ? vaultPage(parts[1], signal) : vaultsPage(signal)),
    files: () => filesPage(params, signal),
  };
  const page = pages[parts[0]] || pages.sessions;
  page().catch((error) => {
    if (signal.aborted || error.name === 'AbortError') return;
    show(el('h1', {}, 'Something went wrong'), el('p', { class: 'notice', role: 'alert' }, describe(error)));
  });
}

function describe(error) {
  return error instanceof ApiError ? error.status + ' ' + error.type + ': ' + error.message : String(error.message || error);
}

function signIn(message) {
  const input = el('input', { type: 'password', id: 'api-key', name: 'api-key', autocomplete: 'off', required: true });
  const status = el('p', { class: 'notice', role: 'alert', hidden: !message }, message || '');
  const form = el('form', {
    onsubmit: async (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY_SLOT, key);
      try {
        const response = await fetch('/v1/sessions?limit=1', { headers: authHeaders() });
        if (!response.ok) throw await failure(response);
        route();
      } catch (error) {
        sessionStorage.removeItem(KEY_SLOT);
        status.hidden = false;
        status.textContent = error instanceof ApiError && (error.status === 401 || error.status === 403)
          ? 'The server did not accept this API key (' + error.status + ' ' + error.type + ': ' + error.message + ').'
          : 'Could not reach the server: ' + describe(error);
      }
    },
  }, el('label', { for: 'api-key' }, 'API key'), input, el('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  show(el('section', { class: 'signin' }, el('h1', {}, 'Sign in'),
    el('p', { class: 'muted' }, 'The key stays in this browser tab (session storage) and is sent only as a bearer token.'),
    status, form));
  input.focus();
}

// A list with a cursor pager: `load(page)` returns the API's page object.
function pager(load, renderRows, signal) {
  const history = [];
  let cursor = null;
  const body = el('div', {});
  const previous = el('button', { type: 'button', disabled: true, onclick: () => { cursor = history.pop() || null; refresh(); } }, 'Previous page');
  const next = el('button', { type: 'button', disabled: true }, 'Next page');
  let following = null;
  next.addEventListener('click', () => { history.push(cursor); cursor = following; refresh(); });
  async function refresh() {
    const page = await load(cursor);
    if (signal.aborted) return;
    following = page.next_page || null;
    next.disabled = !following;
    previous.disabled = history.length === 0;
    body.replaceChildren(renderRows(page.data || []));
  }
  return { node: el('div', {}, body, el('div', { class: 'pager' }, previous, next)), refresh };
}

function table(headings, rows, empty) {
  if (!rows.length) return el('p', { class: 'muted' }, empty);
  return el('table', {}, el('thead', {}, el('tr', {}, headings.map((h) => el('th', { scope: 'col' }, h)))), el('tbody', {}, rows));
}

// ---- sessions ----------------------------------------------------------------------------------

async function sessionsPage(params, signal) {
  const [agents, environments] = await Promise.all([
    api('GET', '/v1/agents' + query({ limit: 100, include_archived: true }), undefined, signal),
    api('GET', '/v1/environments' + query({ limit: 100, include_archived: true }), undefined, signal),
  ]);
  const envNames = new Map((environments.data || []).map((e) => [e.id, e.name]));
  const status = el('select', { id: 'filter-status', name: 'status' },
    ['', 'idle', 'running', 'rescheduling', 'terminated'].map((s) => el('option', { value: s, selected: params.get('status') === s }, s || 'any')));
  const agent = el('select', { id: 'filter-agent', name: 'agent' }, el('option', { value: '' }, 'any'),
    (agents.data || []).map((a) => el('option', { value: a.id, selected: params.get('agent') === a.id }, a.name)));
  const archived = el('input', { type: 'checkbox', id: 'filter-archived', checked: params.get('archived') === '1' });
  const apply = () => {
    location.hash = '#/sessions' + query({ status: status.value, agent: agent.value, archived: archived.checked ? '1' : '' });
  };
  for (const control of [status, agent, archived]) control.addEventListener('change', apply);
  const list = pager((page) => api('GET', '/v1/sessions' + query({
    limit: 20, page, 'statuses[]': params.get('status') || undefined, agent_id: params.get('agent') || undefined,
    include_archived: params.get('archived') === '1' ? 'true' : undefined,
  }), undefined, signal), (sessions) => table(
    ['Title', 'Status', 'Agent', 'Environment', 'Created', 'Usage (in / out tokens)'],
    sessions.map((s) => el('tr', { dataset: { sessionId: s.id } },
      el('td', {}, el('a', { href: '#/sessions/' + s.id }, s.title || s.id), s.archived_at ? el('span', { class: 'badge' }, 'archived') : null),
      el('td', {}, statusBadge(s.status)),
      el('td', {}, s.agent ? s.agent.name + ' v' + s.agent.version : ''),
      el('td', {}, envNames.get(s.environment_id) || s.environment_id),
      el('td', {}, timeEl(s.created_at)),
      el('td', { class: 'usage' }, usageText(s.usage)))),
    'No sessions match.'), signal);
  show(el('h1', {}, 'Sessions'),
    el('div', { class: 'filters', role: 'search' },
      el('label', { for: 'filter-status' }, 'Status', status),
      el('label', { for: 'filter-agent' }, 'Agent', agent),
      el('label', { class: 'inline', for: 'filter-archived' }, archived, 'Include archived')),
    list.node);
  await list.refresh();
}

function usageText(usage) {
  if (!usage) return '';
  return (usage.input_tokens || 0).toLocaleString() + ' / ' + (usage.output_tokens || 0).toLocaleString();
}

async function sessionPage(sessionId, signal) {
  const session = await api('GET', '/v1/sessions/' + sessionId, undefined, signal);
  const badge = el('span', { id: 'session-status' }, statusBadge(session.status));
  const usage = el('span', { class: 'usage', id: 'session-usage' }, 'tokens in / out: ' + usageText(session.usage));
  const conn = el('span', { class: 'conn muted', id: 'connection', role: 'status' }, 'connecting…');
  const tabs = el('div', { class: 'tabs', role: 'tablist', hidden: true });
  const pane = el('div', {});
  const refreshSession = async () => {
    const fresh = await api('GET', '/v1/sessions/' + sessionId, undefined, signal);
    badge.replaceChildren(statusBadge(fresh.status));
    usage.textContent = 'tokens in / out: ' + usageText(fresh.usage);
  };
  let timeline = null;
  let threadsShown = '';
  const openThread = (thread) => {
    if (timeline) timeline.close();
    for (const tab of tabs.children) tab.setAttribute('aria-selected', String(tab.dataset.threadId === (thread ? thread.id : '')));
    timeline = new Timeline(sessionId, thread ? thread.id : null, { signal, conn, onStatus: (status) => badge.replaceChildren(statusBadge(status)), onSettled: refreshSession, onThreads: loadThreads });
    pane.replaceChildren(timeline.node);
    timeline.start();
  };
  async function loadThreads() {
    const threads = await api('GET', '/v1/sessions/' + sessionId + '/threads', undefined, signal);
    const children = (threads.data || []).filter((t) => t.parent_thread_id);
    const names = children.map((t) => t.id).join(',');
    if (names === threadsShown) return;
    threadsShown = names;
    tabs.hidden = children.length === 0;
    const selected = timeline ? timeline.threadId || '' : '';
    tabs.replaceChildren(
      el('button', { type: 'button', role: 'tab', dataset: { threadId: '' }, 'aria-selected': String(selected === ''), onclick: () => openThread(null) }, 'Primary'),
      ...children.map((t) => el('button', { type: 'button', role: 'tab', dataset: { threadId: t.id }, 'aria-selected': String(selected === t.id), onclick: () => openThread(t) },
        (t.agent && t.agent.name) || (t.agent && t.agent.type) || t.id, ' ', statusBadge(t.status))));
  }
  const text = el('textarea', { id: 'message', 'aria-label': 'Message to the agent', placeholder: 'Message the agent…' });
  const composer = el('form', {
    class: 'composer',
    onsubmit: async (event) => {
      event.preventDefault();
      const message = text.value.trim();
      if (!message) return;
      try {
        await send(sessionId, { type: 'user.message', content: [{ type: 'text', text: message }] });
        text.value = '';
      } catch (error) {
        alertIn(pane, 'Sending failed: ' + describe(error));
      }
    },
  }, text, el('button', { type: 'submit', class: 'primary' }, 'Send'),
  el('button', {
    type: 'button', class: 'danger',
    onclick: async () => {
      try { await send(sessionId, { type: 'user.interrupt' }); } catch (error) { alertIn(pane, 'Interrupt failed: ' + describe(error)); }
    },
  }, 'Interrupt'));
  show(el('div', { class: 'session-head' },
    el('h1', {}, session.title || session.id), badge,
    el('span', { class: 'muted' }, 'agent: ', session.agent ? el('a', { href: '#/agents/' + session.agent.id }, session.agent.name + ' v' + session.agent.version) : '', ' · model: ', session.agent ? modelName(session.agent.model) : ''),
    el('span', { class: 'muted mono' }, session.id), usage, conn),
  tabs, pane, session.status === 'terminated' ? null : composer);
  openThread(null);
  await loadThreads();
}

function alertIn(node, message) {
  node.prepend(el('p', { class: 'notice', role: 'alert' }, message));
}

// One thread's timeline (the primary thread is the session's own stream): the newest page of
// the event list, older pages on demand, and the live stream, merged by event id.
class Timeline {
  constructor(sessionId, threadId, hooks) {
    this.sessionId = sessionId;
    this.threadId = threadId;
    this.hooks = hooks;
    this.base = '/v1/sessions/' + sessionId + (threadId ? '/threads/' + threadId : '');
    this.items = new Map();     // event id -> li
    this.cards = new Map();     // tool use id -> {node, result, actions, event}
    this.results = new Map();   // tool use id -> result event
    this.spans = new Map();     // model request start id -> processed_at
    this.pending = new Set();   // tool use ids the session waits on
    this.lastId = null;         // the SSE id (cursor) of the last event streamed
    this.closed = new AbortController();
    hooks.signal.addEventListener('abort', () => this.closed.abort());
    this.list = el('ol', { class: 'timeline', role: 'log', 'aria-label': 'Session events', id: 'timeline' });
    this.older = el('button', { type: 'button', hidden: true, onclick: () => this.loadOlder() }, 'Load older events');
    this.node = el('section', { 'aria-label': 'Timeline' }, this.older, this.list);
    this.olderCursor = null;
  }

  close() {
    this.closed.abort();
  }

  async start() {
    // The stream opens first, so nothing falls between the list and the stream: what both
    // deliver is merged by id. Live events wait until the newest page is on screen.
    const backlog = [];
    let ready = false;
    this.follow((event) => (ready ? this.add(event, 'live') : backlog.push(event)));
    const page = await api('GET', this.base + '/events' + query({ order: 'desc', limit: PAGE }), undefined, this.closed.signal);
    for (const event of (page.data || []).slice().reverse()) this.add(event, 'initial');
    for (const event of backlog) this.add(event, 'live');
    ready = true;
    this.olderCursor = page.next_page || null;
    this.older.hidden = !this.olderCursor;
    performance.mark('console:timeline-rendered');
    this.node.dataset.ready = '1';
  }

  async loadOlder() {
    if (!this.olderCursor) return;
    const page = await api('GET', this.base + '/events' + query({ order: 'desc', limit: PAGE, page: this.olderCursor }), undefined, this.closed.signal);
    // The page is newest first: insert oldest first, each before what was on top.
    const first = this.list.firstChild;
    for (const event of (page.data || []).slice().reverse()) this.add(event, 'older', first);
    this.olderCursor = page.next_page || null;
    this.older.hidden = !this.olderCursor;
  }

  async follow(deliver) {
    const signal = this.closed.signal;
    let delay = 500;
    while (!signal.aborted) {
      try {
        const headers = authHeaders({ Accept: 'text/event-stream' });
        if (this.lastId) headers['Last-Event-ID'] = this.lastId;
        const response = await fetch(this.base + (this.threadId ? '/stream' : '/events/stream') + query({ 'event_deltas[]': 'agent.message' }), { headers, signal });
        if (!response.ok) {
          const error = await failure(response);
          if (error.status === 401) { signedOut('The server did not accept this API key: ' + error.message); return; }
          if (error.status === 404) { this.hooks.conn.textContent = 'stream closed: ' + error.message; return; }
          throw error;
        }
        const reconnected = this.lastId === null && this.hooks.conn.dataset.state === 'reconnecting';
        this.hooks.conn.textContent = 'live';
        this.hooks.conn.dataset.state = 'live';
        delay = 500;
        if (reconnected) this.catchUp(deliver);
        for await (const frame of frames(response)) {
          if (frame.event === 'ping') continue;
          let event;
          try { event = JSON.parse(frame.data); } catch (_) { continue; }
          if (frame.event === 'error' || event.type === 'error') {
            this.hooks.conn.textContent = 'stream error: ' + ((event.error && event.error.message) || frame.data);
            continue;
          }
          if (frame.id) this.lastId = frame.id;
          deliver(event);
          if (event.type === 'session.deleted' || event.type === 'session.status_terminated') {
            this.hooks.conn.textContent = event.type === 'session.deleted' ? 'session deleted' : 'session terminated';
            this.hooks.conn.dataset.state = 'ended';
            return;
          }
        }
        // The server ended the stream: a terminated or deleted session ends it for good.
        const now = await api('GET', '/v1/sessions/' + this.sessionId, undefined, signal).catch(() => null);
        if (now && now.status === 'terminated') {
          this.hooks.conn.textContent = 'session terminated';
          this.hooks.conn.dataset.state = 'ended';
          return;
        }
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof ApiError && error.status === 404) {
          this.hooks.conn.textContent = 'stream closed: ' + error.message;
          return;
        }
        if (error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 429) {
          this.hooks.conn.textContent = 'stream refused: ' + describe(error);
          return;
        }
      }
      if (signal.aborted) return;
      this.hooks.conn.textContent = 'reconnecting…';
      this.hooks.conn.dataset.state = 'reconnecting';
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 5000);
    }
  }

  // A reconnect without a cursor (nothing streamed yet) re-reads the newest page.
  async catchUp(deliver) {
    const page = await api('GET', this.base + '/events' + query({ order: 'desc', limit: PAGE }), undefined, this.closed.signal);
    for (const event of (page.data || []).slice().reverse()) deliver(event);
  }

  add(event, where, before) {
    if (event.type === 'event_start' || event.type === 'event_delta') {
      this.preview(event);
      return;
    }
    const known = event.id ? this.items.get(event.id) : null;
    const node = this.render(event);
    if (known) {
      if (node) known.replaceWith(node); else known.remove();
    } else if (node) {
      if (where === 'older') this.list.insertBefore(node, before || null);
      else this.list.append(node);
    }
    if (event.id) this.items.set(event.id, node || document.createComment(event.id));
    if (where === 'initial' || where === 'live') this.effects(event, where === 'live');
  }

  // Live text of an agent.message that is still being generated.
  preview(event) {
    if (event.type === 'event_start' && event.event && event.event.type === 'agent.message' && !this.items.has(event.event.id)) {
      const body = el('div', { class: 'text' });
      const node = el('li', { class: 'ev agent streaming', dataset: { eventId: event.event.id, type: 'agent.message' }, 'aria-busy': 'true' },
        el('div', { class: 'meta' }, 'Agent · writing…'), body);
      node.textBody = body;
      this.items.set(event.event.id, node);
      this.list.append(node);
    } else if (event.type === 'event_delta') {
      const node = this.items.get(event.event_id);
      const text = event.delta && event.delta.content && event.delta.content.text;
      if (node && node.textBody && text) node.textBody.append(text);
    }
  }

  // What an event changes beyond its own line: the status badge, pending actions and, for
  // live events, the session's usage and the thread tabs (fetched again).
  effects(event, live) {
    const status = { 'session.status_running': 'running', 'session.status_idle': 'idle', 'session.status_rescheduled': 'rescheduling', 'session.status_terminated': 'terminated' }[event.type];
    if (status && !this.threadId) this.hooks.onStatus(status);
    if (event.type === 'session.status_idle' || event.type === 'session.thread_status_idle') {
      const reason = event.stop_reason || {};
      if (reason.type === 'requires_action') {
        if (event.type === 'session.status_idle' || this.threadId) this.pending = new Set(reason.event_ids || []);
      } else if (event.type === 'session.status_idle') {
        this.pending.clear();
      }
      this.refreshActions();
    }
    if (event.type === 'session.status_running') { this.pending.clear(); this.refreshActions(); }
    if (!live) return;
    if (event.type === 'session.status_running' || event.type === 'session.status_idle') this.refreshQueued().catch(() => {});
    if (event.type === 'session.status_idle' || event.type === 'session.usage' || event.type === 'session.status_terminated') this.hooks.onSettled().catch(() => {});
    if (event.type.startsWith('session.thread_')) this.hooks.onThreads().catch(() => {});
  }

  // The stream sends a user message once, when it is queued; the list has it with the time it
  // was processed. Once a turn starts or ends, queued messages on screen are read again.
  async refreshQueued() {
    if (!this.list.querySelector('li[data-queued="1"]')) return;
    const page = await api('GET', this.base + '/events' + query({ order: 'desc', limit: PAGE, 'types[]': 'user.message' }), undefined, this.closed.signal);
    for (const event of page.data || []) {
      const shown = this.items.get(event.id);
      if (event.processed_at && shown && shown.dataset && shown.dataset.queued) this.add(event, 'refresh');
    }
  }

  refreshActions() {
    for (const [id, card] of this.cards) {
      const waiting = this.pending.has(id) && !this.results.has(id);
      card.actions.replaceChildren(...(waiting ? this.actionsFor(card.event) : []));
    }
  }

  actionsFor(use) {
    const thread = use.session_thread_id ? { session_thread_id: use.session_thread_id } : {};
    if (use.type === 'agent.custom_tool_use') {
      const text = el('textarea', { 'aria-label': 'Result of ' + use.name, placeholder: 'Result text' });
      const isError = el('input', { type: 'checkbox' });
      return [el('form', {
        class: 'actions',
        onsubmit: async (event) => {
          event.preventDefault();
          await this.answer({ type: 'user.custom_tool_result', custom_tool_use_id: use.id, content: [{ type: 'text', text: text.value }], is_error: isError.checked, ...thread });
        },
      }, text, el('label', {}, isError, ' error'), el('button', { type: 'submit', class: 'primary' }, 'Send result'))];
    }
    const reason = el('input', { type: 'text', 'aria-label': 'Reason for denying', placeholder: 'Reason (optional, for Deny)' });
    return [
      el('span', { class: 'muted' }, 'Waiting for your confirmation:'),
      el('button', { type: 'button', class: 'primary', onclick: () => this.answer({ type: 'user.tool_confirmation', tool_use_id: use.id, result: 'allow', ...thread }) }, 'Allow'),
      el('button', {
        type: 'button', class: 'danger',
        onclick: () => this.answer({ type: 'user.tool_confirmation', tool_use_id: use.id, result: 'deny', ...(reason.value ? { deny_message: reason.value } : {}), ...thread }),
      }, 'Deny'),
      reason,
    ];
  }

  async answer(event) {
    const id = event.tool_use_id || event.custom_tool_use_id;
    const card = this.cards.get(id);
    try {
      await send(this.sessionId, event);
      this.pending.delete(id);
      if (card) card.actions.replaceChildren(el('span', { class: 'muted' }, event.result ? 'Sent: ' + event.result : 'Result sent'));
    } catch (error) {
      if (card) card.actions.prepend(el('span', { class: 'error', role: 'alert' }, describe(error) + ' '));
    }
  }

  render(event) {
    const type = event.type;
    const meta = (label) => el('div', { class: 'meta' }, label, ' · ', timeEl(event.processed_at));
    const item = (cls, ...children) => el('li', { class: 'ev ' + cls, dataset: { eventId: event.id || '', type } }, ...children);
    switch (type) {
      case 'user.message': {
        const node = item('user', meta('You'), el('div', { class: 'text' }, blocksText(event.content)));
        if (!event.processed_at) node.dataset.queued = '1';
        return node;
      }
      case 'system.message':
        return item('user', meta('System message'), el('div', { class: 'text' }, blocksText(event.content)));
      case 'agent.message':
        return item('agent', meta('Agent'), el('div', { class: 'text' }, blocksText(event.content)));
      case 'agent.thinking':
        return item('agent thinking', el('details', {}, el('summary', {}, 'Thinking · ', timeEl(event.processed_at)),
          el('div', { class: 'text muted' }, blocksText(event.content) || 'The model thought before answering.')));
      case 'agent.tool_use':
      case 'agent.mcp_tool_use':
      case 'agent.custom_tool_use':
        return this.toolCard(event, item, meta);
      case 'agent.tool_result':
      case 'agent.mcp_tool_result':
      case 'user.custom_tool_result':
      case 'user.tool_result':
        return this.toolResult(event, item, meta);
      case 'user.tool_confirmation':
        return item('user', meta('You ' + (event.result === 'allow' ? 'allowed' : 'denied') + ' a tool call'), event.deny_message ? el('div', { class: 'text' }, event.deny_message) : null);
      case 'user.interrupt':
        return item('user', meta('You interrupted'));
      case 'user.define_outcome':
        return item('user', meta('Outcome defined'), el('div', { class: 'text' }, event.description));
      case 'session.status_running':
        return item('status', meta('Running'));
      case 'session.status_rescheduled':
        return item('status', meta('Rescheduling'));
      case 'session.status_terminated':
        return item('status err', meta('Terminated'));
      case 'session.status_idle': {
        const reason = event.stop_reason || {};
        return item('status', meta('Idle · ' + (reason.type || '') + (reason.type === 'requires_action' ? ' (' + (reason.event_ids || []).length + ' waiting)' : '')));
      }
      case 'session.error': {
        const error = event.error || {};
        const retry = error.retry_status ? error.retry_status.type : '';
        return item('err', meta('Error: ' + (error.type || 'error') + (retry ? ' · ' + retry : '')), el('div', { class: 'text' }, error.message || ''));
      }
      case 'span.model_request_start':
        this.spans.set(event.id, event.processed_at);
        return item('span', meta('Model request started'));
      case 'span.model_request_end': {
        const started = this.spans.get(event.model_request_start_id);
        const took = started && event.processed_at ? seconds(new Date(event.processed_at) - new Date(started)) : '';
        const u = event.model_usage || {};
        return item('span' + (event.is_error ? ' err' : ''), meta('Model request ' + (event.is_error ? 'failed' : 'ended') + (took ? ' in ' + took : '') +
          ' · tokens in ' + (u.input_tokens || 0) + ' / out ' + (u.output_tokens || 0) +
          (u.cache_read_input_tokens ? ' / cache read ' + u.cache_read_input_tokens : '')));
      }
      case 'session.usage':
        return item('span', meta('Usage: tokens in ' + ((event.usage || {}).input_tokens || 0) + ' / out ' + ((event.usage || {}).output_tokens || 0)));
      case 'session.thread_created':
        return item('status', meta('Thread created: ' + event.agent_name + ' (' + event.session_thread_id + ')'));
      case 'session.thread_status_running':
      case 'session.thread_status_idle':
      case 'session.thread_status_rescheduled':
      case 'session.thread_status_terminated':
        return item('status', meta('Thread ' + event.agent_name + ': ' + type.replace('session.thread_status_', '') + (event.stop_reason ? ' · ' + event.stop_reason.type : '')));
      case 'agent.thread_message_sent':
        return item('agent', meta('To ' + (event.to_agent_name || event.to_session_thread_id)), el('div', { class: 'text' }, blocksText(event.content)));
      case 'agent.thread_message_received':
        return item('agent', meta('From ' + (event.from_agent_name || event.from_session_thread_id)), el('div', { class: 'text' }, blocksText(event.content)));
      default:
        return item('status', el('details', {}, el('summary', {}, type, ' · ', timeEl(event.processed_at)), el('pre', {}, pretty(event))));
    }
  }

  toolCard(event, item, meta) {
    const label = event.type === 'agent.mcp_tool_use' ? event.mcp_server_name + ' · ' + event.name
      : event.type === 'agent.custom_tool_use' ? event.name + ' (custom tool)' : event.name;
    const result = el('div', { class: 'result' }, el('div', { class: 'label' }, 'Result'), el('div', { class: 'muted body' }, 'waiting…'));
    const actions = el('div', { class: 'actions' });
    const node = item('agent tool-call', meta('Tool call: ' + label + (event.evaluated_permission === 'ask' ? ' · needs confirmation' : '')),
      el('div', { class: 'tool' }, el('div', { class: 'input' }, el('div', { class: 'label' }, 'Input'), el('pre', {}, pretty(event.input))), result),
      actions);
    const card = { node, result, actions, event };
    this.cards.set(event.id, card);
    const done = this.results.get(event.id);
    if (done) {
      // Its result came first (an older page loaded later): move it into the card.
      this.fill(card, done);
      const alone = this.items.get(done.id);
      if (alone && alone.parentNode) {
        alone.remove();
        this.items.set(done.id, document.createComment(done.id));
      }
    }
    else if (this.pending.has(event.id)) actions.replaceChildren(...this.actionsFor(event));
    return node;
  }

  toolResult(event, item, meta) {
    const useId = event.tool_use_id || event.mcp_tool_use_id || event.custom_tool_use_id;
    this.results.set(useId, event);
    const card = this.cards.get(useId);
    if (card) {
      this.fill(card, event);
      return null;
    }
    return item('agent' + (event.is_error ? ' is-error' : ''), meta('Tool result' + (event.is_error ? ' (error)' : '')), el('pre', {}, blocksText(event.content)));
  }

  fill(card, event) {
    card.result.classList.toggle('is-error', Boolean(event.is_error));
    card.node.classList.toggle('is-error', Boolean(event.is_error));
    card.result.replaceChildren(el('div', { class: 'label' }, event.is_error ? 'Result (error)' : 'Result', ' · ', timeEl(event.processed_at)),
      el('pre', { class: 'body' }, blocksText(event.content)));
    card.actions.replaceChildren();
  }
}

// ---- agents, environments, vaults, files ----------------------------------------------------------

async function agentsPage(signal) {
  const list = pager((page) => api('GET', '/v1/agents' + query({ limit: 50, page, include_archived: true }), undefined, signal), (agents) => table(
    ['Name', 'Model', 'Version', 'Updated'],
    agents.map((a) => el('tr', {},
      el('td', {}, el('a', { href: '#/agents/' + a.id }, a.name), a.archived_at ? el('span', { class: 'badge' }, 'archived') : null),
      el('td', {}, modelName(a.model)), el('td', {}, a.version), el('td', {}, timeEl(a.updated_at)))),
    'No agents yet.'), signal);
  show(el('h1', {}, 'Agents'), list.node);
  await list.refresh();
}

async function agentPage(agentId, signal) {
  const versions = [];
  let page = null;
  do {
    const batch = await api('GET', '/v1/agents/' + agentId + '/versions' + query({ limit: 100, page }), undefined, signal);
    versions.push(...(batch.data || []));
    page = batch.next_page;
  } while (page && versions.length < 1000);
  versions.sort((a, b) => a.version - b.version);
  const latest = versions[versions.length - 1];
  const options = (selected) => versions.map((v) => el('option', { value: v.version, selected: v.version === selected }, 'v' + v.version));
  const from = el('select', { id: 'diff-from' }, options(versions.length > 1 ? versions[versions.length - 2].version : latest.version));
  const to = el('select', { id: 'diff-to' }, options(latest.version));
  const out = el('div', { id: 'diff' });
  const draw = () => {
    const a = versions.find((v) => String(v.version) === from.value);
    const b = versions.find((v) => String(v.version) === to.value);
    out.replaceChildren(diffView(comparable(a), comparable(b)), el('h2', {}, 'v' + b.version), el('pre', {}, pretty(b)));
  };
  from.addEventListener('change', draw);
  to.addEventListener('change', draw);
  show(el('h1', {}, latest.name, ' ', el('span', { class: 'muted mono' }, agentId)),
    el('p', {}, 'Model ', modelName(latest.model), ' · ', versions.length, ' version(s) · latest v', latest.version),
    el('div', { class: 'filters' }, el('label', { for: 'diff-from' }, 'Compare', from), el('label', { for: 'diff-to' }, 'with', to)),
    out);
  draw();
}

// The fields of an agent version that a diff should show (not the bookkeeping ones).
function comparable(agent) {
  const copy = Object.assign({}, agent);
  for (const field of ['version', 'updated_at', 'created_at']) delete copy[field];
  return copy;
}

// A line diff of two values' pretty JSON (longest common subsequence; agent configs are small).
function diffView(a, b) {
  const left = pretty(a).split('\n');
  const right = pretty(b).split('\n');
  if (left.length * right.length > 4000000) return el('p', { class: 'muted' }, 'These versions are too large to compare here.');
  const n = left.length;
  const m = right.length;
  const common = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      common[i][j] = left[i] === right[j] ? common[i + 1][j + 1] + 1 : Math.max(common[i + 1][j], common[i][j + 1]);
    }
  }
  const lines = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && left[i] === right[j]) { lines.push(el('div', {}, '  ' + left[i])); i++; j++; }
    else if (j < m && (i === n || common[i][j + 1] >= common[i + 1][j])) { lines.push(el('div', { class: 'add' }, '+ ' + right[j])); j++; }
    else { lines.push(el('div', { class: 'del' }, '- ' + left[i])); i++; }
  }
  const changed = lines.some((line) => line.className);
  return el('pre', { class: 'diff', 'aria-label': 'Differences' }, changed ? lines : el('div', { class: 'muted' }, 'No differences.'));
}

async function environmentsPage(signal) {
  const list = pager((page) => api('GET', '/v1/environments' + query({ limit: 50, page, include_archived: true }), undefined, signal), (envs) => table(
    ['Name', 'Type', 'Networking', 'Packages', 'Created'],
    envs.map((e) => {
      const config = e.config || {};
      const net = config.networking || {};
      const packages = config.packages ? Object.entries(config.packages).filter(([, v]) => Array.isArray(v) && v.length).map(([k, v]) => k + ': ' + v.join(', ')).join('; ') : '';
      return el('tr', {},
        el('td', {}, e.name, ' ', el('span', { class: 'muted mono' }, e.id), e.archived_at ? el('span', { class: 'badge' }, 'archived') : null),
        el('td', {}, config.type || ''),
        el('td', {}, (net.type || '') + (net.allowed_hosts && net.allowed_hosts.length ? ' (' + net.allowed_hosts.join(', ') + ')' : '')),
        el('td', {}, packages),
        el('td', {}, timeEl(e.created_at)));
    }),
    'No environments yet.'), signal);
  show(el('h1', {}, 'Environments'), list.node);
  await list.refresh();
}

async function vaultsPage(signal) {
  const list = pager((page) => api('GET', '/v1/vaults' + query({ limit: 50, page, include_archived: true }), undefined, signal), (vaults) => table(
    ['Name', 'Metadata', 'Created'],
    vaults.map((v) => el('tr', {},
      el('td', {}, el('a', { href: '#/vaults/' + v.id }, v.display_name), v.archived_at ? el('span', { class: 'badge' }, 'archived') : null),
      el('td', { class: 'mono' }, Object.entries(v.metadata || {}).map(([k, val]) => k + '=' + val).join('\n')),
      el('td', {}, timeEl(v.created_at)))),
    'No vaults yet.'), signal);
  show(el('h1', {}, 'Vaults'), list.node);
  await list.refresh();
}

async function vaultPage(vaultId, signal) {
  const vault = await api('GET', '/v1/vaults/' + vaultId, undefined, signal);
  const list = pager((page) => api('GET', '/v1/vaults/' + vaultId + '/credentials' + query({ limit: 50, page, include_archived: true }), undefined, signal), (credentials) => table(
    ['Name', 'Type', 'For', 'Created'],
    credentials.map((c) => {
      const auth = c.auth || {};
      return el('tr', {},
        el('td', {}, c.display_name || c.id, c.archived_at ? el('span', { class: 'badge' }, 'archived') : null),
        el('td', {}, auth.type || ''),
        el('td', { class: 'mono' }, auth.mcp_server_url || auth.secret_name || ''),
        el('td', {}, timeEl(c.created_at)));
    }),
    'No credentials in this vault.'), signal);
  show(el('h1', {}, vault.display_name, ' ', el('span', { class: 'muted mono' }, vault.id)),
    el('p', { class: 'muted' }, 'Secrets are write-only: the API never returns them, so they are not shown.'),
    el('h2', {}, 'Credentials'), list.node);
  await list.refresh();
}

async function filesPage(params, signal) {
  const scope = el('input', { type: 'text', id: 'filter-scope', value: params.get('scope') || '', placeholder: 'sesn_…' });
  const form = el('form', {
    class: 'filters',
    onsubmit: (event) => { event.preventDefault(); location.hash = '#/files' + query({ scope: scope.value.trim() }); },
  }, el('label', { for: 'filter-scope' }, 'Session (scope)', scope), el('button', { type: 'submit' }, 'Filter'));
  const list = pager((page) => api('GET', '/v1/files' + query({ limit: 50, page, scope_id: params.get('scope') || undefined }), undefined, signal), (files) => table(
    ['Name', 'Type', 'Size', 'Created', 'Scope', ''],
    files.map((f) => el('tr', {},
      el('td', {}, f.filename, ' ', el('span', { class: 'muted mono' }, f.id)),
      el('td', {}, f.mime_type), el('td', {}, (f.size_bytes || 0).toLocaleString() + ' B'),
      el('td', {}, timeEl(f.created_at)),
      el('td', {}, f.scope ? el('a', { href: '#/sessions/' + f.scope.id }, f.scope.id) : ''),
      el('td', {}, f.downloadable ? el('button', { type: 'button', onclick: () => download(f) }, 'Download') : el('span', { class: 'muted' }, 'not downloadable')))),
    'No files.'), signal);
  show(el('h1', {}, 'Files'), form, list.node);
  await list.refresh();
}

async function download(file) {
  const response = await fetch('/v1/files/' + file.id + '/content', { headers: authHeaders({ Accept: 'application/binary' }) });
  if (!response.ok) { alertIn(main(), 'Download failed: ' + describe(await failure(response))); return; }
  const url = URL.createObjectURL(await response.blob());
  const link = el('a', { href: url, download: file.filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ---- start ----------------------------------------------------------------------------------------

window.addEventListener('hashchange', () => route());
document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('sign-out').addEventListener('click', () => signedOut('Signed out.'));
  route();
});
