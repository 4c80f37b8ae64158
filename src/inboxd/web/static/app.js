// The inboxd dashboard: plain ES2020, no build step, no third-party code.
//
// The REST snapshot is the truth; the one SSE stream per tab only tells us what to update
// (and carries progress ticks, which are applied directly). Every string from the server
// reaches the DOM through textContent or an attribute, never through innerHTML.
'use strict';

const JOBS_LIMIT = 50;
const RUNS_LIMIT = 20;
const POLL_MS = 5000;
const BACKOFF_MAX_MS = 30000;
// Three missed heartbeats (15 s each): the stream is silently dead (e.g. a proxy dropped it).
const STREAM_SILENCE_MS = 45000;
// A stream that stayed open this long counts as healthy: the next failure starts over at 1 s.
const STREAM_HEALTHY_MS = 10000;
const STARTED_KEY = 'inboxd.startedJobs';
const STARTED_MAX = 200;

// The server's names (GET /api/vocabulary), filled in by loadVocabulary() before any data is
// shown, so the dashboard never keeps its own copy of them.
const ACTIVE_JOB = new Set();
const FINISHED_JOB = new Set();
const ACTIVE_ACCOUNT = new Set();
const RUNNING_ACCOUNT = new Set();
// Which account state a running job's step means (any other step: 'processing').
const STEP_STATES = Object.create(null);
// Triage categories, in the server's order.
const CATEGORIES = [];
// The categories a clean-up looks at unless told otherwise.
const BULK_CATEGORIES = new Set();
// What an approved clean-up may do, and the states of a journaled change.
const CLEANUP_ACTIONS = [];
const JOURNAL_STATES = [];
let vocabularyLoaded = false;

const numberFormat = new Intl.NumberFormat();
const rateFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

const $ = (selector, root = document) => root.querySelector(selector);

const state = {
  user: null,
  accounts: new Map(),
  accountOrder: [],
  jobs: new Map(),
  jobOrder: [],
  runs: [],
};

const views = { accounts: new Map(), jobs: new Map() };

// -- HTTP -----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

// Same-origin JSON calls. A 401 means the session is gone: back to the login screen, unless
// the caller handles it itself (the login form and the first /api/me).
async function api(method, path, body, { own401 = false } = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached.');
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    // An answer that is not JSON (a proxy's error page): the status says enough.
  }
  if (!response.ok) {
    const problem = (data && data.error) || {};
    const error = new ApiError(
      response.status,
      problem.code || 'error',
      problem.message || `The server answered ${response.status}.`,
      response.headers.get('Retry-After'),
    );
    if (response.status === 401 && !own401) sessionLost();
    throw error;
  }
  return data;
}

const jobPath = (id) => `/api/jobs/${encodeURIComponent(id)}`;
const accountPath = (id) => `/api/accounts/${encodeURIComponent(id)}`;

function describeError(error) {
  if (error.status === 429) {
    const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : '';
    return `Too many requests.${wait}`;
  }
  return error.message || String(error);
}

// Runs fn once at a time; calls made meanwhile fold into one more run after it.
function coalesced(fn) {
  let running = null;
  let again = false;
  return () => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await fn();
        } while (again);
      } finally {
        running = null;
      }
    })();
    return running;
  };
}

// -- formatting -----------------------------------------------------------------------------

const fmtNumber = (n) => numberFormat.format(n);

function fmtDuration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return '';
  if (seconds < 10) return `${rateFormat.format(seconds)} s`;
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h} h ${String(m).padStart(2, '0')} min`;
  if (m > 0) return `${m} min ${String(s).padStart(2, '0')} s`;
  return `${s} s`;
}

function fmtRelative(iso) {
  const seconds = (Date.parse(iso) - Date.now()) / 1000;
  const abs = Math.abs(seconds);
  if (abs < 45) return 'just now';
  if (abs < 3600) return relativeFormat.format(Math.round(seconds / 60), 'minute');
  if (abs < 86400) return relativeFormat.format(Math.round(seconds / 3600), 'hour');
  if (abs < 7 * 86400) return relativeFormat.format(Math.round(seconds / 86400), 'day');
  return dateFormat.format(new Date(iso));
}

// A <time> that the clock below keeps saying "2 minutes ago" about.
function setTime(cell, iso, fallback = '—') {
  cell.replaceChildren();
  if (!iso || Number.isNaN(Date.parse(iso))) {
    cell.textContent = fallback;
    return;
  }
  const time = document.createElement('time');
  time.dateTime = iso;
  time.dataset.relative = '';
  time.title = dateFormat.format(new Date(iso));
  time.textContent = fmtRelative(iso);
  cell.append(time);
}

function refreshRelativeTimes() {
  for (const time of document.querySelectorAll('time[data-relative]')) {
    time.textContent = fmtRelative(time.dateTime);
  }
}

function capitalize(text) {
  return text ? text.charAt(0).toUpperCase() + text.slice(1) : '';
}

function summarize(value) {
  if (value == null) return '';
  if (typeof value !== 'object') return String(value);
  if (Array.isArray(value)) return `${fmtNumber(value.length)} items`;
  return Object.entries(value)
    .filter(([, v]) => v !== null && typeof v !== 'object')
    .slice(0, 6)
    .map(([k, v]) => `${k.replace(/_/g, ' ')}: ${typeof v === 'number' ? fmtNumber(v) : v}`)
    .join(', ');
}

function accountName(id) {
  if (!id) return '—';
  const account = state.accounts.get(id);
  return account ? account.name : shortId(id);
}

// Job ids are UUIDv7: the first digits are a timestamp that jobs made together share, so
// the random tail is what tells them apart.
const shortId = (id) => id.slice(-8);

// Fills a <progress> and its caption. Unknown totals give an indeterminate bar (no value).
function setMeter(meter, bar, caption, progress, { active, label }) {
  const current = progress ? progress.current || 0 : 0;
  const total = progress ? progress.total : null;
  if (!progress || (total == null && !active)) {
    meter.hidden = true;
    return;
  }
  meter.hidden = false;
  bar.setAttribute('aria-label', label);
  if (total == null) {
    bar.removeAttribute('value');
    bar.removeAttribute('aria-valuetext');
    caption.textContent = current ? fmtNumber(current) : '';
    return;
  }
  const text = `${fmtNumber(current)} / ${fmtNumber(total)}`;
  bar.max = Math.max(total, 1);
  bar.value = total > 0 ? Math.min(current, total) : 0;
  bar.setAttribute('aria-valuetext', text);
  caption.textContent = text;
}

function setRateEta(rateEl, etaEl, item, active, unit) {
  const showRate = active && item.rate != null;
  rateEl.textContent = showRate ? `${rateFormat.format(item.rate)} ${unit}` : '';
  rateEl.hidden = !showRate;
  const showEta = active && item.eta_seconds != null;
  etaEl.textContent = showEta ? `ETA ${fmtDuration(item.eta_seconds)}` : '';
  etaEl.hidden = !showEta;
}

// -- account states -------------------------------------------------------------------------

async function loadVocabulary() {
  if (vocabularyLoaded) return;
  const names = await api('GET', '/api/vocabulary');
  for (const status of names.job_statuses) {
    (names.finished_job_statuses.includes(status) ? FINISHED_JOB : ACTIVE_JOB).add(status);
  }
  for (const name of names.active_activity_states) ACTIVE_ACCOUNT.add(name);
  for (const name of names.running_activity_states) RUNNING_ACCOUNT.add(name);
  Object.assign(STEP_STATES, names.step_activity);
  CATEGORIES.splice(0, CATEGORIES.length, ...(names.categories || []));
  for (const name of names.bulk_categories || []) BULK_CATEGORIES.add(name);
  CLEANUP_ACTIONS.splice(0, CLEANUP_ACTIONS.length, ...(names.cleanup_actions || []));
  JOURNAL_STATES.splice(0, JOURNAL_STATES.length, ...(names.journal_states || []));
  fillCategoryChoices();
  fillCleanupChoices();
  vocabularyLoaded = true;
}

function accountStateOf(status, step, kind) {
  if (status === 'running') {
    // Claimed but no step reported yet: a sync starts by connecting, so say that rather
    // than flash "processing" between "queued" and "connecting".
    if (!step && kind === 'sync') return 'connecting';
    return STEP_STATES[step] || 'processing';
  }
  if (status === 'pending') return 'queued';
  if (status === 'awaiting_approval') return 'awaiting_approval';
  if (status === 'completed') return 'completed';
  if (status === 'failed') return 'error';
  return 'idle';
}

function activityOfJob(job) {
  return {
    state: accountStateOf(job.status, job.step, job.kind),
    job_id: job.id,
    step: job.step,
    progress: job.progress,
    message: job.message,
    rate: job.rate,
    eta_seconds: job.eta_seconds,
    error: job.status === 'failed' ? job.error : null,
  };
}

// Whether news about job `jobId` (now `status`) should replace what an account shows. Like
// the server: the account follows its running job, else its waiting one, else its newest.
function followsJob(account, jobId, status) {
  const current = account.activity;
  if (!current || !current.job_id || current.job_id === jobId) return true;
  if (status === 'running') return true;
  if (status === 'pending') return !RUNNING_ACCOUNT.has(current.state);
  // A proposal waiting for a person's yes says less than any work queued or running.
  if (status === 'awaiting_approval') return !ACTIVE_ACCOUNT.has(current.state);
  return false;
}

function applyJobToAccount(job) {
  const account = job.account_id && state.accounts.get(job.account_id);
  if (!account || !followsJob(account, job.id, job.status)) return;
  account.activity = activityOfJob(job);
  renderAccount(account.id);
}

// -- notifications --------------------------------------------------------------------------

// Ids of jobs this tab started with "Sync now"; sessionStorage so a reload keeps them.
const startedJobs = {
  read() {
    try {
      return JSON.parse(sessionStorage.getItem(STARTED_KEY) || '[]');
    } catch {
      return [];
    }
  },
  write(ids) {
    try {
      sessionStorage.setItem(STARTED_KEY, JSON.stringify(ids.slice(-STARTED_MAX)));
    } catch {
      // Storage full or disabled: notifications are a nicety, not worth an error.
    }
  },
  add(id) {
    const ids = this.read().filter((x) => x !== id);
    ids.push(id);
    this.write(ids);
  },
  take(id) {
    const ids = this.read();
    if (!ids.includes(id)) return false;
    this.write(ids.filter((x) => x !== id));
    return true;
  },
  clear() {
    sessionStorage.removeItem(STARTED_KEY);
  },
};

function notifyIfStarted(job) {
  if (!FINISHED_JOB.has(job.status) || !startedJobs.take(job.id)) return;
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  const what = job.kind === 'sync' ? `Sync of ${accountName(job.account_id)}` : `Job ${job.kind}`;
  const body = job.status === 'failed' ? job.error || 'failed' : job.message || '';
  try {
    new Notification(`${what} ${job.status}`, { body, tag: `inboxd-job-${job.id}` });
  } catch {
    // Some mobile browsers allow notifications only from a service worker.
  }
}

function updateNotifyButton() {
  const button = $('#notify-enable');
  button.hidden = !state.user || !('Notification' in window) ||
    Notification.permission !== 'default';
}

async function enableNotifications() {
  try {
    await Notification.requestPermission();
  } finally {
    updateNotifyButton();
  }
}

// -- banner ---------------------------------------------------------------------------------

let bannerTimer = null;

function showBanner(message) {
  const banner = $('#banner');
  banner.textContent = message;
  banner.hidden = false;
  clearTimeout(bannerTimer);
  bannerTimer = setTimeout(() => { banner.hidden = true; }, 10000);
}

// -- accounts -------------------------------------------------------------------------------

function createAccountView(id) {
  const root = $('#account-template').content.firstElementChild.cloneNode(true);
  const part = (name) => root.querySelector(`[data-testid="${name}"], [data-role="${name}"]`);
  const view = {
    root,
    busy: false,
    name: $('.account-name', root),
    sub: $('.account-sub', root),
    badge: part('account-state'),
    step: part('account-step'),
    meter: part('meter'),
    bar: part('account-progress'),
    caption: part('account-progress-text'),
    rate: part('account-rate'),
    eta: part('account-eta'),
    lastSync: part('last-sync'),
    messages: part('messages'),
    error: part('account-error'),
    sync: part('sync-now'),
    signIn: part('sign-in-again'),
  };
  view.sync.addEventListener('click', () => syncNow(id));
  view.signIn.addEventListener('click', () => signInAgain(id));
  return view;
}

function renderAccount(id) {
  const account = state.accounts.get(id);
  const view = views.accounts.get(id);
  if (!account || !view) return;
  const act = account.activity || { state: 'idle' };
  const active = ACTIVE_ACCOUNT.has(act.state);
  view.root.dataset.accountId = account.id;
  view.root.dataset.state = act.state;
  view.name.textContent = account.name;
  const sub = [account.provider, ...(account.addresses || [])];
  if (!account.enabled) sub.push('disabled');
  view.sub.textContent = sub.join(' · ');
  view.badge.textContent = act.state.replaceAll('_', ' ');
  view.badge.className = `badge state-${act.state}`;

  const step = active && act.step ? capitalize(act.step) : '';
  view.step.textContent = [step, active ? act.message : ''].filter(Boolean).join(' — ');
  view.step.hidden = !view.step.textContent;
  // Only work in progress has a bar: the last step of a finished sync counts folders.
  setMeter(view.meter, view.bar, view.caption, active ? act.progress : null, {
    active: RUNNING_ACCOUNT.has(act.state),
    label: `Progress of ${account.name}`,
  });
  setRateEta(view.rate, view.eta, act, RUNNING_ACCOUNT.has(act.state), 'msg/s');

  setTime(view.lastSync, account.last_sync_at, 'never');
  view.messages.textContent = fmtNumber(account.message_count || 0);
  const errors = [...new Set([account.state_message, act.error].filter(Boolean))];
  view.error.textContent = errors.join(' — ');
  view.error.hidden = errors.length === 0;

  view.sync.disabled = view.busy;
  view.sync.setAttribute('aria-label', `Sync ${account.name} now`);
  view.signIn.hidden = account.state !== 'needs_sign_in';
  view.signIn.setAttribute('aria-label', `Sign ${account.name} in again`);
}

function renderAccounts() {
  const list = $('#accounts');
  placeRows(list, state.accountOrder, views.accounts, createAccountView);
  state.accountOrder.forEach(renderAccount);
  $('#accounts-empty').hidden = state.accountOrder.length > 0;
  fillCleanupAccounts();
  fillExtractionAccounts();
  // Job and run rows show account names.
  state.jobOrder.forEach(renderJob);
  renderRuns();
}

// Puts one element per id into `container` in order, reusing the existing ones so a focused
// button stays focused across updates.
function placeRows(container, ids, viewMap, create) {
  const wanted = new Set(ids);
  for (const [id, view] of viewMap) {
    if (!wanted.has(id)) {
      view.root.remove();
      viewMap.delete(id);
    }
  }
  ids.forEach((id, index) => {
    let view = viewMap.get(id);
    if (!view) {
      view = create(id);
      viewMap.set(id, view);
    }
    if (container.children[index] !== view.root) {
      container.insertBefore(view.root, container.children[index] || null);
    }
  });
}

async function syncNow(id) {
  const view = views.accounts.get(id);
  const account = state.accounts.get(id);
  if (!view || !account) return;
  view.busy = true;
  renderAccount(id);
  try {
    const accepted = await api('POST', `${accountPath(id)}/sync`);
    startedJobs.add(accepted.job_id);
    if (ACTIVE_JOB.has(accepted.status) && followsJob(account, accepted.job_id, accepted.status)) {
      account.activity = {
        ...activityOfJob({ id: accepted.job_id, kind: 'sync', status: accepted.status }),
        progress: null,
      };
    }
    fetchJobSoon(accepted.job_id);
  } catch (error) {
    if (error.status !== 401) showBanner(`Sync of ${account.name} not started: ${describeError(error)}`);
  } finally {
    view.busy = false;
    renderAccount(id);
  }
}

// A load that answers after a logout must not bring the old user's data back.
const loggedOut = () => state.user === null;

const loadAccounts = coalesced(async () => {
  const list = await api('GET', '/api/accounts');
  if (loggedOut()) return;
  state.accounts = new Map(list.map((a) => [a.id, a]));
  state.accountOrder = list.map((a) => a.id);
  renderAccounts();
  // Folder counts change with the accounts' (a sync ended, an account came or went).
  if (mail.loaded) loadFolders().catch(reportLoadError);
});

// -- jobs -----------------------------------------------------------------------------------

function createJobView(id) {
  const root = $('#job-template').content.firstElementChild.cloneNode(true);
  const part = (name) => root.querySelector(`[data-testid="${name}"], [data-role="${name}"]`);
  const view = {
    root,
    busy: false,
    kind: $('.job-kind', root),
    id: $('.job-id', root),
    account: part('account'),
    badge: part('job-status'),
    error: part('error'),
    meter: part('meter'),
    bar: part('job-progress'),
    caption: part('job-progress-text'),
    rate: part('rate'),
    eta: part('eta'),
    step: part('step'),
    created: part('created'),
    cancel: part('job-cancel'),
    retry: part('job-retry'),
    review: part('job-review'),
    undo: part('job-undo'),
    journal: part('job-journal'),
  };
  view.cancel.addEventListener('click', () => jobAction(id, 'cancel'));
  view.retry.addEventListener('click', () => jobAction(id, 'retry'));
  view.undo.addEventListener('click', () => undoJob(id));
  return view;
}

function renderJob(id) {
  const job = state.jobs.get(id);
  const view = views.jobs.get(id);
  if (!job || !view) return;
  const running = job.status === 'running';
  view.root.dataset.jobId = job.id;
  view.root.dataset.status = job.status;
  view.kind.textContent = job.kind;
  view.id.textContent = shortId(job.id);
  view.id.title = job.id;
  view.account.textContent = accountName(job.account_id);

  let status = job.status.replace('_', ' ');
  if (job.cancel_requested && ACTIVE_JOB.has(job.status)) status += ' · cancelling';
  else if (job.status === 'pending' && job.queue_position) status += ` · #${job.queue_position}`;
  view.badge.textContent = status;
  view.badge.className = `badge status-${job.status}`;
  view.error.textContent = job.error || '';
  view.error.hidden = !job.error;

  // A completed job shows what it did, not its last step: a sync ends with a step counted
  // in folders, and "1 / 1 Storing" says nothing about the 150 messages it fetched.
  const done = job.status === 'completed';
  setMeter(view.meter, view.bar, view.caption, done ? null : job.progress, {
    active: running,
    label: `Progress of job ${job.kind} ${shortId(job.id)}`,
  });
  setRateEta(view.rate, view.eta, job, running, job.kind === 'sync' ? 'msg/s' : '/s');
  const step = job.step ? capitalize(job.step) : '';
  view.step.textContent = done
    ? summarize(job.result)
    : [step, job.message].filter(Boolean).join(' — ');
  setTime(view.created, job.created_at);

  view.cancel.hidden = !ACTIVE_JOB.has(job.status);
  view.cancel.disabled = view.busy || Boolean(job.cancel_requested);
  view.retry.hidden = job.status !== 'failed' && job.status !== 'cancelled';
  view.retry.disabled = view.busy;
  const label = `${job.kind} job ${shortId(job.id)}`;
  view.cancel.setAttribute('aria-label', `Cancel ${label}`);
  view.retry.setAttribute('aria-label', `Retry ${label}`);

  // A clean-up opens on its review screen (the proposal waits there for a yes).
  view.review.hidden = job.kind !== CLEANUP_KIND;
  view.review.href = cleanupHash(job.id);
  view.review.textContent = job.status === 'awaiting_approval' ? 'Review' : 'Details';
  view.review.setAttribute('aria-label', `${view.review.textContent} ${label}`);
  const journal = journals.get(job.id);
  view.journal.textContent = journalText(journal);
  view.journal.hidden = !view.journal.textContent;
  view.undo.hidden = !canUndo(job, journal);
  view.undo.disabled = view.busy || undoing.has(job.id);
  view.undo.setAttribute('aria-label', `Undo ${label}`);
}

function renderJobs() {
  placeRows($('#jobs'), state.jobOrder, views.jobs, createJobView);
  state.jobOrder.forEach(renderJob);
  const empty = state.jobOrder.length === 0;
  $('#jobs-empty').hidden = !empty;
  $('#jobs-table').hidden = empty;
}

function sortJobs() {
  state.jobOrder = [...state.jobs.values()]
    .sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0))
    .map((j) => j.id);
  for (const id of state.jobOrder.splice(JOBS_LIMIT)) state.jobs.delete(id);
}

// Stores a fresh snapshot of a job; true when it has just finished.
function upsertJob(job) {
  const previous = state.jobs.get(job.id);
  state.jobs.set(job.id, job);
  if (previous) {
    renderJob(job.id);
  } else {
    sortJobs();
    renderJobs();
  }
  applyJobToAccount(job);
  notifyIfStarted(job);
  const ended = FINISHED_JOB.has(job.status) && (!previous || !FINISHED_JOB.has(previous.status));
  if (ended) mailMayHaveChanged(job);
  jobSnapshot(job);
  return ended;
}

async function jobAction(id, action) {
  const view = views.jobs.get(id);
  if (!view) return;
  view.busy = true;
  renderJob(id);
  try {
    upsertJob(await api('POST', `${jobPath(id)}/${action}`));
  } catch (error) {
    if (error.status !== 401) showBanner(`Could not ${action} the job: ${describeError(error)}`);
    fetchJobSoon(id);
  } finally {
    view.busy = false;
    renderJob(id);
  }
}

const loadJobs = coalesced(async () => {
  const list = await api('GET', `/api/jobs?limit=${JOBS_LIMIT}`);
  if (loggedOut()) return;
  state.jobs = new Map(list.map((j) => [j.id, j]));
  state.jobs = new Map(list.map((j) => [j.id, j]));
  state.jobOrder = list.map((j) => j.id);
  renderJobs();
  list.forEach(notifyIfStarted);
  list.forEach(jobSnapshot);
  // Changes that ended before this tab looked are history, not news for the mail view.
  jobsPrimed = true;
});

// Status changes arrive in bursts (a replay, a batch finishing): one GET per job, once.
const jobsToFetch = new Set();
let jobFetchTimer = null;
let jobEnded = false;

function fetchJobSoon(id, { ended = false } = {}) {
  jobsToFetch.add(id);
  if (ended) jobEnded = true;
  if (jobFetchTimer === null) jobFetchTimer = setTimeout(fetchQueuedJobs, 50);
}

async function fetchQueuedJobs() {
  jobFetchTimer = null;
  const ids = [...jobsToFetch];
  jobsToFetch.clear();
  let finished = jobEnded;
  jobEnded = false;
  await Promise.all(ids.map(async (id) => {
    try {
      const job = await api('GET', jobPath(id));
      if (!loggedOut() && upsertJob(job)) finished = true;
    } catch (error) {
      if (error.status === 404) forgetJob(id);
    }
  }));
  if (finished) {
    // Last sync time, message counts and the runs history change when a job ends.
    loadAccounts().catch(reportLoadError);
    loadRuns().catch(reportLoadError);
  }
}

function forgetJob(id) {
  if (!state.jobs.delete(id)) return;
  state.jobOrder = state.jobOrder.filter((x) => x !== id);
  renderJobs();
}

// -- runs -----------------------------------------------------------------------------------

function renderRuns() {
  const rows = state.runs.map((run) => {
    const row = $('#run-template').content.firstElementChild.cloneNode(true);
    const cell = (name) => row.querySelector(`[data-role="${name}"]`);
    row.dataset.runId = String(run.id);
    row.dataset.jobId = run.job_id;
    row.dataset.status = run.status;
    setTime(cell('finished'), run.finished_at);
    cell('kind').textContent = run.kind;
    cell('account').textContent = accountName(run.account_id);
    const badge = cell('status');
    badge.textContent = run.status;
    badge.className = `badge status-${run.status}`;
    cell('duration').textContent = fmtDuration(run.duration_seconds) || '—';
    const result = cell('result');
    if (run.error) {
      result.textContent = run.error;
      result.classList.add('error-text');
    } else {
      result.textContent = summarize(run.result) || '—';
    }
    return row;
  });
  $('#runs').replaceChildren(...rows);
  $('#runs-empty').hidden = rows.length > 0;
  $('#runs-table').hidden = rows.length === 0;
}

const loadRuns = coalesced(async () => {
  const runs = await api('GET', `/api/runs?limit=${RUNS_LIMIT}`);
  if (loggedOut()) return;
  state.runs = runs;
  renderRuns();
});

function reportLoadError(error) {
  if (error.status !== 401) showBanner(`Could not refresh: ${describeError(error)}`);
}

const refreshAll = coalesced(async () => {
  // The names first: rendering a row reads them. Accounts next: job and run rows show
  // account names.
  await loadVocabulary();
  await loadAccounts();
  await Promise.all([loadJobs(), loadRuns()]);
});

// -- live updates ---------------------------------------------------------------------------

function onJobStatus(data) {
  const status = data.payload && data.payload.status;
  const job = state.jobs.get(data.job_id);
  if (job && status) {
    // Shown at once; the GET below brings the rest (error, result, finish time).
    job.status = status;
    renderJob(job.id);
    applyJobToAccount(job);
  }
  reviewJobNews(data.job_id, job || null);
  fetchJobSoon(data.job_id, { ended: FINISHED_JOB.has(status) });
}

function onJobEvent(data) {
  if (data.type !== 'progress') return;
  const p = data.payload || {};
  const job = state.jobs.get(data.job_id);
  if (!job) {
    fetchJobSoon(data.job_id);
    return;
  }
  // A late tick (e.g. replayed after a refresh) must not make a finished job look alive.
  if (FINISHED_JOB.has(job.status)) return;
  Object.assign(job, {
    status: 'running',
    step: p.step,
    progress: { current: p.current, total: p.total, percent: p.percent },
    message: p.message,
    rate: p.rate,
    eta_seconds: p.eta_seconds,
  });
  renderJob(job.id);
  applyJobToAccount(job);
  reviewJobNews(job.id, job);
}

function setConnection(name, title) {
  const el = $('#conn-status');
  el.textContent = name;
  el.dataset.state = name;
  el.title = title;
}

// The one EventSource of this tab, its reconnect schedule and the polling fallback.
const live = {
  source: null,
  openedAt: 0,
  lastEventId: null,
  failures: 0,
  retryTimer: null,
  silenceTimer: null,
  pollTimer: null,
  pollFailed: false,

  start() {
    this.failures = 0;
    this.connect();
  },

  stop() {
    this.closeSource();
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.stopPolling();
    this.lastEventId = null;
    setConnection('offline', 'Not connected');
  },

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    // Never two streams: the old one is closed before a new one is opened.
    this.closeSource();
    const url = this.lastEventId === null
      ? '/api/events'
      : `/api/events?last_event_id=${encodeURIComponent(this.lastEventId)}`;
    const source = new EventSource(url, { withCredentials: true });
    this.source = source;
    source.addEventListener('open', () => this.onOpen(source));
    source.addEventListener('error', () => this.onError(source));
    source.addEventListener('job_status', (e) => this.onMessage(source, e, onJobStatus));
    source.addEventListener('job_event', (e) => this.onMessage(source, e, onJobEvent));
    source.addEventListener('heartbeat', (e) => this.onMessage(source, e, null));
  },

  closeSource() {
    clearTimeout(this.silenceTimer);
    this.silenceTimer = null;
    if (this.source) {
      this.source.close();
      this.source = null;
    }
  },

  onOpen(source) {
    if (source !== this.source) return;
    this.openedAt = Date.now();
    setConnection('live', 'Live updates');
    this.stopPolling();
    this.expectNews(source);
    // Whatever happened before the stream was there (or while it was down): the snapshot.
    refreshAll().catch(reportLoadError);
  },

  onError(source) {
    if (source !== this.source) return;
    // EventSource would retry on its own, without backoff and forever: we do it instead.
    this.closeSource();
    if (this.openedAt && Date.now() - this.openedAt > STREAM_HEALTHY_MS) this.failures = 0;
    this.openedAt = 0;
    this.failures += 1;
    if (this.failures === 1) {
      setConnection('reconnecting', 'Live updates interrupted; reconnecting');
    } else {
      setConnection('polling', 'Live updates unavailable; refreshing every 5 seconds');
    }
    this.startPolling();
    const base = Math.min(BACKOFF_MAX_MS, 1000 * 2 ** (this.failures - 1));
    const delay = Math.min(BACKOFF_MAX_MS, base * (0.75 + Math.random() * 0.5));
    this.retryTimer = setTimeout(() => this.connect(), delay);
  },

  onMessage(source, event, handler) {
    if (source !== this.source) return;
    this.expectNews(source);
    const id = Number.parseInt(event.lastEventId, 10);
    if (Number.isFinite(id) && (this.lastEventId === null || id > this.lastEventId)) {
      this.lastEventId = id;
    }
    if (!handler) return;
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    handler(data);
  },

  expectNews(source) {
    clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(() => this.onError(source), STREAM_SILENCE_MS);
  },

  // The network is back: no point waiting out a long backoff.
  onOnline() {
    if (this.retryTimer !== null) this.connect();
  },

  startPolling() {
    if (this.pollTimer !== null) return;
    $('#conn-status').dataset.polling = 'true';
    this.pollFailed = false;
    this.pollTimer = setInterval(() => this.pollOnce(), POLL_MS);
    this.pollOnce();
  },

  stopPolling() {
    if (this.pollTimer === null) return;
    clearInterval(this.pollTimer);
    this.pollTimer = null;
    $('#conn-status').dataset.polling = 'false';
  },

  async pollOnce() {
    try {
      await poll();
    } catch (error) {
      this.pollFailed = true;
      reportPollError(error);
      return;
    }
    // The server answers again after it did not (a restart, a network blip): reconnect the
    // stream now rather than after a backoff that may have grown to half a minute. Only on
    // that change, so a server that answers polls but not streams keeps the backoff.
    if (this.pollFailed && this.pollTimer !== null && this.retryTimer !== null) this.connect();
    this.pollFailed = false;
  },
};

function reportPollError(error) {
  // The indicator already says the live channel is down; one banner per failure is noise.
  if (error.status !== 401 && error.status !== 0) reportLoadError(error);
}

// One polling round: apply the snapshot; when work started or ended, reload the lists.
const poll = coalesced(async () => {
  const snapshot = await api('GET', '/api/processing/current-status');
  if (loggedOut()) return;
  const current = new Map(snapshot.current_processing.map((s) => [s.job_id, s]));
  let changed = false;
  for (const item of current.values()) {
    const job = state.jobs.get(item.job_id);
    if (!job) {
      changed = true;
      continue;
    }
    if (job.status !== item.status) changed = true;
    Object.assign(job, {
      status: item.status,
      step: item.step,
      progress: item.progress,
      message: item.message,
      rate: item.rate,
      eta_seconds: item.eta_seconds,
    });
    renderJob(job.id);
    applyJobToAccount(job);
    reviewJobNews(job.id, job);
  }
  for (const job of state.jobs.values()) {
    if ((job.status === 'pending' || job.status === 'running') && !current.has(job.id)) {
      changed = true;
    }
  }
  const newestRun = snapshot.recent_runs.length ? snapshot.recent_runs[0].id : null;
  const knownRun = state.runs.length ? state.runs[0].id : null;
  if (newestRun !== knownRun) changed = true;
  if (changed) await refreshAll();
});

// -- mail -----------------------------------------------------------------------------------

const MAIL_PAGE = 50;
// The message's HTML runs in a frame that may open links in a new window and do nothing
// else: no scripts, no forms, no same-origin access (the /html answer's CSP says so too).
const FRAME_SANDBOX = 'allow-popups allow-popups-to-escape-sandbox';
const listDateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
const listTimeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: 'short' });

// The width below which app.css puts the Mail view in one column.
const narrowScreen = window.matchMedia('(max-width: 900px)');

const messagePath = (id) => `/api/messages/${encodeURIComponent(id)}`;
const threadPath = (id) => `/api/threads/${encodeURIComponent(id)}`;

const mail = {
  loaded: false,
  mode: 'messages',
  query: '',
  cursor: null,
  count: 0,
  // "Load more" was used: the list is not refreshed under the reader by news of new mail.
  pagedOn: false,
  // New mail may have come while the Mail tab was hidden.
  stale: false,
  // Answers to an older search or an older click are dropped (the user moved on).
  searchSeq: 0,
  readerSeq: 0,
  openId: null,
  threadId: null,
  folders: new Map(),
  // Per account: {counts: {category: n}, untriaged: n}.
  counts: new Map(),
  category: '',
  sort: 'date',
  // The message open in the reader (its category menu changes it).
  open: null,
};
// The most important messages the Top view shows.
const TOP_COUNT = 20;

function fmtListDate(iso) {
  if (!iso || Number.isNaN(Date.parse(iso))) return '';
  const when = new Date(iso);
  const today = new Date();
  return when.toDateString() === today.toDateString()
    ? listTimeFormat.format(when)
    : listDateFormat.format(when);
}

function fmtSize(bytes) {
  if (bytes == null) return '';
  if (bytes < 1024) return `${fmtNumber(bytes)} B`;
  if (bytes < 1024 * 1024) return `${rateFormat.format(bytes / 1024)} KB`;
  return `${rateFormat.format(bytes / 1024 / 1024)} MB`;
}

const isUnread = (message) => !(message.flags || []).includes('\\Seen');

function senderText(from) {
  if (!from) return '';
  return from.name || from.address || '';
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

// A paperclip drawn here (an emoji needs a font that not every system has).
function paperclip() {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 16 16');
  svg.setAttribute('class', 'mail-clip');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'has attachments');
  const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  path.setAttribute('d', 'M10.5 4.5 5.8 9.2a1.4 1.4 0 0 0 2 2l5-5a2.8 2.8 0 0 0-4-4l-5 5a4.2 4.2 0 0 0 6 6l4.2-4.2');
  svg.append(path);
  return svg;
}

// A query term for a folder: quoted when it holds a space, a quote or a bracket.
function folderTerm(name) {
  if (/^[^\s"()]+$/.test(name)) return `folder:${name}`;
  return `folder:"${name.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

// -- views: overview and mail

function currentTab() {
  if (location.hash === '#top') return 'top';
  if (location.hash === '#cleanups' || location.hash.startsWith('#cleanups/')) return 'cleanups';
  if (location.hash === '#newsletters' || location.hash.startsWith('#newsletters/')) {
    return 'newsletters';
  }
  if (location.hash === '#settings') return 'settings';
  return location.hash === '#mail' ? 'mail' : 'overview';
}

function markTab(tab) {
  for (const name of ['overview', 'mail', 'top', 'cleanups', 'newsletters', 'settings']) {
    const link = $(`#tab-${name}`);
    if (name === tab) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

// The Top tab is the Mail view showing the most important messages: the same list, filters
// and reader, another source.
function route() {
  if (!state.user) return;
  const tab = currentTab();
  const inMail = tab === 'mail' || tab === 'top';
  $('#overview-panel').hidden = tab !== 'overview';
  $('#mail-panel').hidden = !inMail;
  $('#cleanups-panel').hidden = tab !== 'cleanups';
  $('#newsletters-panel').hidden = tab !== 'newsletters';
  $('#settings-panel').hidden = tab !== 'settings';
  markTab(tab);
  if (tab === 'cleanups') routeCleanups();
  if (tab === 'newsletters') routeExtractions();
  routeWebhooks(tab === 'settings');
  if (!inMail) return;
  const modeSelect = $('#mail-mode');
  const wantTop = tab === 'top';
  const modeChanged = wantTop !== (modeSelect.value === 'top');
  if (modeChanged) modeSelect.value = wantTop ? 'top' : 'messages';
  if (!mail.loaded) {
    mail.loaded = true;
    loadFolders().catch(reportLoadError);
    runSearch();
  } else if (modeChanged) {
    runSearch();
  } else if (mail.stale) {
    runSearch({ quiet: true });
  }
}

// The mode select and the tabs say the same thing: #top while the list is the top.
function onModeChange() {
  const tab = $('#mail-mode').value === 'top' ? 'top' : 'mail';
  if (currentTab() !== tab) history.replaceState(null, '', `#${tab}`);
  markTab(tab);
  runSearch();
}

// -- folders

async function perAccount(ids, suffix) {
  return Promise.all(ids.map(async (id) => {
    try {
      return [id, await api('GET', `${accountPath(id)}${suffix}`)];
    } catch (error) {
      if (error.status === 404) return [id, null];
      throw error;
    }
  }));
}

const loadFolders = coalesced(async () => {
  const ids = [...state.accountOrder];
  const [lists, counts] = await Promise.all([
    perAccount(ids, '/folders'),
    perAccount(ids, '/categories'),
  ]);
  if (loggedOut()) return;
  mail.folders = new Map(lists.filter(([, list]) => list !== null));
  mail.counts = new Map(counts.filter(([, found]) => found !== null));
  renderFolders();
});

// Only the counts (after a category was changed or a triage job ended).
const loadCounts = coalesced(async () => {
  const counts = await perAccount([...state.accountOrder], '/categories');
  if (loggedOut()) return;
  mail.counts = new Map(counts.filter(([, found]) => found !== null));
  renderFolders();
});

function renderFolders() {
  const groups = [];
  for (const id of state.accountOrder) {
    const folders = mail.folders.get(id);
    const account = state.accounts.get(id);
    if (!folders || !account) continue;
    const group = el('div', 'folder-group');
    group.dataset.accountId = id;
    group.append(el('h3', 'folder-account', account.name));
    const list = el('ul', 'folder-list');
    for (const { name, messages: count } of folders) {
      const button = el('button', 'folder-link');
      button.type = 'button';
      button.setAttribute('data-testid', 'folder-link');
      button.dataset.folder = name;
      button.dataset.accountId = id;
      button.append(el('span', 'folder-name', name), el('span', 'folder-count', fmtNumber(count)));
      button.addEventListener('click', () => openFolder(id, name));
      const item = el('li');
      item.append(button);
      list.append(item);
    }
    group.append(list);
    const counts = mail.counts.get(id);
    if (counts) group.append(categoryList(id, counts));
    groups.push(group);
  }
  $('#mail-folders').replaceChildren(...groups);
  markCurrentFolder();
}

// The account's messages per category: each a button that lists that category's mail.
function categoryList(accountId, found) {
  const box = el('div', 'category-group');
  box.setAttribute('data-testid', 'category-counts');
  box.dataset.accountId = accountId;
  const headingId = `categories-${accountId}`;
  const heading = el('h4', 'category-heading', 'Categories');
  heading.id = headingId;
  const list = el('ul', 'folder-list');
  list.setAttribute('aria-labelledby', headingId);
  const entries = CATEGORIES.map((name) => [name, found.counts[name] || 0]);
  entries.push(['untriaged', found.untriaged || 0]);
  for (const [name, count] of entries) {
    if (name === 'untriaged' && count === 0) continue;
    const button = el('button', 'folder-link');
    button.type = 'button';
    button.setAttribute('data-testid', 'category-link');
    button.dataset.category = name;
    button.dataset.accountId = accountId;
    if (count === 0) button.classList.add('none');
    button.append(
      el('span', 'folder-name', categoryLabel(name)),
      el('span', 'folder-count', fmtNumber(count)),
    );
    button.setAttribute('aria-label', `${categoryLabel(name)}: ${fmtNumber(count)} messages`);
    button.addEventListener('click', () => openCategory(accountId, name));
    const item = el('li');
    item.append(button);
    list.append(item);
  }
  box.append(heading, list);
  return box;
}

function markCurrentFolder() {
  for (const button of document.querySelectorAll('[data-testid="folder-link"]')) {
    const term = `${folderTerm(button.dataset.folder)} account:${button.dataset.accountId}`;
    if (term === mail.query) button.setAttribute('aria-current', 'true');
    else button.removeAttribute('aria-current');
  }
  for (const button of document.querySelectorAll('[data-testid="category-link"]')) {
    const current = mail.query === `account:${button.dataset.accountId}`
      && mail.category === button.dataset.category;
    if (current) button.setAttribute('aria-current', 'true');
    else button.removeAttribute('aria-current');
  }
}

function openFolder(accountId, name) {
  $('#mail-query').value = `${folderTerm(name)} account:${accountId}`;
  $('#mail-category').value = '';
  setMode('messages');
  runSearch();
}

function openCategory(accountId, name) {
  $('#mail-query').value = `account:${accountId}`;
  $('#mail-category').value = name;
  if ($('#mail-mode').value !== 'top') setMode('messages');
  runSearch();
}

function setMode(mode) {
  $('#mail-mode').value = mode;
  const tab = mode === 'top' ? 'top' : 'mail';
  if (currentTab() !== tab) history.replaceState(null, '', `#${tab}`);
  markTab(tab);
}

// -- categories

function categoryLabel(name) {
  if (name === 'untriaged') return 'Not triaged yet';
  return capitalize(String(name).replace(/_/g, ' '));
}

// The category filter of the list and the reader's menu, from the vocabulary.
function fillCategoryChoices() {
  const filter = $('#mail-category');
  const chosen = filter.value;
  const options = CATEGORIES.map((name) => {
    const option = el('option', '', categoryLabel(name));
    option.value = name;
    return option;
  });
  const all = el('option', '', 'All categories');
  all.value = '';
  const untriaged = el('option', '', categoryLabel('untriaged'));
  untriaged.value = 'untriaged';
  filter.replaceChildren(all, ...options, untriaged);
  filter.value = chosen;
}

// The search term of the category filter ('' for none).
function categoryTerm(name) {
  if (!name) return '';
  return name === 'untriaged' ? 'is:untriaged' : `category:${name}`;
}

// The query the list asks for: the box's, narrowed by the category filter.
function listQuery() {
  const term = mail.mode === 'top' ? '' : categoryTerm(mail.category);
  if (!term) return mail.query;
  return mail.query ? `(${mail.query}) ${term}` : term;
}

function categoryBadge(name) {
  const badge = el('span', 'cat-badge', categoryLabel(name));
  badge.setAttribute('data-testid', 'category-badge');
  badge.dataset.category = name;
  return badge;
}

// -- the list

function setQueryError(message) {
  const error = $('#mail-query-error');
  error.textContent = message;
  error.hidden = !message;
  $('#mail-query').setAttribute('aria-invalid', message ? 'true' : 'false');
}

async function runSearch({ more = false, quiet = false } = {}) {
  mail.stale = false;
  if (more) {
    mail.pagedOn = true;
  } else if (quiet) {
    // The same search again (what is in the box may be half typed).
    mail.cursor = null;
  } else {
    mail.query = $('#mail-query').value.trim();
    const mode = $('#mail-mode').value;
    mail.mode = mode === 'threads' || mode === 'top' ? mode : 'messages';
    mail.category = $('#mail-category').value;
    mail.sort = $('#mail-sort').value === 'priority' ? 'priority' : 'date';
    mail.cursor = null;
    mail.pagedOn = false;
  }
  // Threads have one order; the top has its own.
  $('#mail-sort').disabled = mail.mode !== 'messages';
  const seq = ++mail.searchSeq;
  const moreButton = $('#mail-more');
  moreButton.disabled = true;
  markCurrentFolder();
  if (mail.mode === 'top') {
    await loadTop(seq);
    moreButton.disabled = false;
    return;
  }
  $('#top-note').hidden = true;
  const params = new URLSearchParams({ q: listQuery(), limit: String(MAIL_PAGE) });
  if (mail.mode === 'messages' && mail.sort === 'priority') params.set('sort', 'priority');
  if (more && mail.cursor) params.set('cursor', mail.cursor);
  const base = mail.mode === 'threads' ? '/api/threads' : '/api/messages';
  let page;
  try {
    page = await api('GET', `${base}?${params}`);
  } catch (error) {
    if (seq !== mail.searchSeq) return;
    moreButton.disabled = false;
    if (quiet) return;
    if (error.status === 400 || error.code === 'invalid_query') {
      setQueryError(describeError(error));
      if (!more) renderList([], false);
    } else if (error.status !== 401) {
      showBanner(`Could not search: ${describeError(error)}`);
    }
    return;
  }
  if (seq !== mail.searchSeq || loggedOut()) return;
  setQueryError('');
  const items = mail.mode === 'threads' ? page.threads : page.messages;
  mail.cursor = page.next_cursor;
  renderList(items, more);
  moreButton.disabled = false;
}

// Today's most important messages; when today has none, the last 7 days', saying so.
async function loadTop(seq) {
  const note = $('#top-note');
  if (mail.category === 'untriaged') {
    // Untriaged mail has no priority: there is nothing to rank.
    setQueryError('');
    mail.cursor = null;
    note.textContent = 'The Top view ranks triaged messages only.';
    note.dataset.since = '';
    note.hidden = false;
    renderList([], false);
    return;
  }
  const ask = (since) => {
    const params = new URLSearchParams({ n: String(TOP_COUNT), since });
    if (mail.query) params.set('q', mail.query);
    if (mail.category && mail.category !== 'untriaged') params.set('category', mail.category);
    return api('GET', `/api/messages/top?${params}`);
  };
  let found;
  let week = false;
  try {
    found = await ask('today');
    if (seq === mail.searchSeq && found.messages.length === 0) {
      week = true;
      found = await ask('7d');
    }
  } catch (error) {
    if (seq !== mail.searchSeq) return;
    if (error.status === 400 || error.status === 422) {
      setQueryError(describeError(error));
      renderList([], false);
    } else if (error.status !== 401) {
      showBanner(`Could not load the top messages: ${describeError(error)}`);
    }
    return;
  }
  if (seq !== mail.searchSeq || loggedOut()) return;
  setQueryError('');
  mail.cursor = null;
  if (!week) {
    note.textContent = 'The most important messages of today.';
  } else if (found.messages.length > 0) {
    note.textContent = 'Nothing important arrived today: the most important of the last 7 days.';
  } else {
    note.textContent = 'No triaged message in the last 7 days.';
  }
  note.dataset.since = week ? '7d' : 'today';
  note.hidden = false;
  renderList(found.messages, false);
}

// A sync (new mail), an index run (words, threads) or a triage run (categories) has ended: a
// list still on its first page is asked again, so new mail shows up without a reload. One
// paged further is left alone: it would jump under the reader's eyes.
function mailMayHaveChanged(job) {
  if (!mail.loaded) return;
  if (job.kind === 'triage') loadCounts().catch(reportLoadError);
  if (mail.pagedOn || !['sync', 'index', 'triage'].includes(job.kind)) return;
  if (currentTab() !== 'mail') {
    mail.stale = true;
    return;
  }
  runSearch({ quiet: true });
}

function renderList(items, append) {
  const list = $('#mail-list');
  const rows = items.map((item) => (mail.mode === 'threads' ? threadRow(item) : messageRow(item)));
  if (mail.mode === 'top') list.setAttribute('aria-label', 'Most important messages');
  else list.removeAttribute('aria-label');
  if (append) list.append(...rows);
  else list.replaceChildren(...rows);
  mail.count = list.children.length;
  $('#mail-empty').hidden = mail.count > 0;
  $('#mail-empty').textContent = mail.mode === 'threads' ? 'No threads.' : 'No messages.';
  $('#mail-more').hidden = !mail.cursor;
  markSelected();
}

function messageRow(message) {
  const item = el('li');
  const button = el('button', 'mail-row');
  button.type = 'button';
  button.setAttribute('data-testid', 'mail-row');
  button.dataset.messageId = String(message.id);
  if (isUnread(message)) {
    button.classList.add('unread');
    button.dataset.unread = 'true';
  }
  const top = el('span', 'mail-row-top');
  const tags = el('span', 'mail-tags');
  if (message.category) tags.append(categoryBadge(message.category));
  if (mail.mode === 'top' || (mail.sort === 'priority' && mail.mode === 'messages')) {
    const level = el('span', 'mail-priority', message.priority == null ? '–' : String(message.priority));
    level.setAttribute('data-testid', 'mail-priority');
    level.title = 'Priority (0–100)';
    tags.append(level);
  }
  tags.append(el('span', 'mail-date', fmtListDate(message.sort_date || message.date)));
  top.append(el('span', 'mail-from', senderText(message.from) || '(no sender)'), tags);
  const subject = el('span', 'mail-subject', message.subject || '(no subject)');
  if (message.has_attachments) subject.prepend(paperclip());
  button.append(top, subject);
  if (mail.mode === 'top' && (message.reasons || []).length > 0) {
    const reasons = el('span', 'mail-reasons', message.reasons.join(' · '));
    reasons.setAttribute('data-testid', 'mail-reasons');
    button.append(reasons);
  } else {
    button.append(el('span', 'mail-snippet', message.snippet || ''));
  }
  button.addEventListener('click', () => openMessage(message.id));
  item.append(button);
  return item;
}

function threadRow(thread) {
  const item = el('li');
  const button = el('button', 'mail-row');
  button.type = 'button';
  button.setAttribute('data-testid', 'thread-row');
  button.dataset.threadId = String(thread.id);
  if (thread.unread) {
    button.classList.add('unread');
    button.dataset.unread = 'true';
  }
  const top = el('span', 'mail-row-top');
  const who = (thread.participants || []).slice(0, 3).join(', ') || '(no sender)';
  top.append(
    el('span', 'mail-from', who),
    el('span', 'mail-date', fmtListDate(thread.last_date)),
  );
  const subject = el('span', 'mail-subject', thread.subject || '(no subject)');
  if (thread.message_count > 1) {
    subject.append(el('span', 'mail-count', ` (${fmtNumber(thread.message_count)})`));
  }
  const snippet = thread.latest ? thread.latest.snippet : '';
  button.append(top, subject, el('span', 'mail-snippet', snippet || ''));
  button.addEventListener('click', () => openThread(thread.id));
  item.append(button);
  return item;
}

function markSelected() {
  for (const row of document.querySelectorAll('#mail-list .mail-row')) {
    const selected = row.dataset.messageId
      ? Number(row.dataset.messageId) === mail.openId && mail.threadId === null
      : Number(row.dataset.threadId) === mail.threadId;
    if (selected) row.setAttribute('aria-current', 'true');
    else row.removeAttribute('aria-current');
  }
}

// -- the reader

function showReader(part) {
  $('#reader-empty').hidden = part !== 'empty';
  $('#reader-thread').hidden = part !== 'thread';
  $('#reader-message').hidden = part !== 'message';
  // In one column the reader sits below the list: bring what was opened into view.
  if (part !== 'empty' && narrowScreen.matches) {
    $('#reader').scrollIntoView({ block: 'start' });
  }
}

function resetReader() {
  mail.readerSeq += 1;
  mail.openId = null;
  mail.open = null;
  mail.threadId = null;
  $('#reader-body').replaceChildren();
  showReader('empty');
}

async function openMessage(id, { thread = null } = {}) {
  const seq = ++mail.readerSeq;
  mail.openId = id;
  mail.threadId = thread;
  markSelected();
  let message;
  try {
    message = await api('GET', messagePath(id));
  } catch (error) {
    if (seq !== mail.readerSeq || error.status === 401) return;
    showBanner(`Could not open the message: ${describeError(error)}`);
    return;
  }
  if (seq !== mail.readerSeq || loggedOut()) return;
  renderMessage(message, thread);
}

function headerRow(list, name, value) {
  if (value === null || value === undefined || value === '') return;
  list.append(el('dt', '', name), el('dd', '', value));
}

function renderHeaders(message) {
  const from = message.from || {};
  const sender = from.name && from.address ? `${from.name} <${from.address}>` : senderText(from);
  const headers = $('#reader-headers');
  headers.replaceChildren();
  headerRow(headers, 'From', sender);
  headerRow(headers, 'To', (message.to || []).join(', '));
  headerRow(headers, 'Cc', (message.cc || []).join(', '));
  headerRow(headers, 'Date', message.date ? dateFormat.format(new Date(message.date)) : '');
  headerRow(headers, 'Account', accountName(message.account_id));
  headerRow(headers, 'Folders', (message.folders || []).join(', '));
  const flags = (message.flags || []).map((f) => f.replace(/^\\/, '').toLowerCase());
  headerRow(headers, 'Flags', flags.join(', '));
  headerRow(headers, 'Labels', (message.labels || []).join(', '));
}

function renderMessage(message, thread) {
  $('#reader-subject').textContent = message.subject || '(no subject)';
  renderHeaders(message);
  renderTriage(message);
  renderMarks(message);
  $('#reader-mark-status').textContent = '';

  const notes = $('#reader-notes');
  notes.replaceChildren(...(message.parse_notes || []).map((note) => el('li', '', note)));
  notes.hidden = notes.children.length === 0;

  const files = $('#reader-files');
  files.replaceChildren(...(message.attachments || []).map((file) => {
    const link = el('a', 'file-link');
    link.href = `${messagePath(message.id)}/attachments/${encodeURIComponent(file.index)}`;
    link.setAttribute('download', file.filename || `attachment-${file.index}`);
    link.setAttribute('data-testid', 'attachment-link');
    link.textContent = file.filename || `attachment ${file.index + 1}`;
    const item = el('li');
    item.append(link, el('span', 'file-meta', ` ${file.content_type}, ${fmtSize(file.size)}`));
    return item;
  }));
  files.hidden = files.children.length === 0;

  $('#reader-raw').href = `${messagePath(message.id)}/raw`;
  $('#reader-back').hidden = thread === null;
  $('#reader-thread-open').hidden = thread !== null || !message.thread_id;
  $('#reader-thread-open').dataset.threadId = String(message.thread_id || '');
  $('#reader-remote').hidden = !(message.html !== null && message.remote_content_blocked);
  $('#reader-message').dataset.messageId = String(message.id);

  const body = $('#reader-body');
  if (message.html !== null && message.html !== undefined) {
    body.replaceChildren(messageFrame(message.id, false));
  } else {
    const text = el('pre', 'reader-text', message.text || '(This message has no text.)');
    text.setAttribute('data-testid', 'reader-text');
    body.replaceChildren(text);
  }
  showReader('message');
}

// The triage verdict in the reader and the menu that changes the category in one step.
function renderTriage(message) {
  mail.open = { id: message.id, category: message.category, from: message.from || {} };
  const level = $('#reader-priority');
  if (message.category) {
    const confidence = message.confidence == null
      ? ''
      : `, ${Math.round(message.confidence * 100)} % sure`;
    level.textContent = `${categoryLabel(message.category)} · priority ${message.priority}${confidence}`;
  } else {
    level.textContent = 'Not triaged yet.';
  }
  const reasons = $('#reader-reasons');
  reasons.replaceChildren(...(message.reasons || []).map((reason) => el('li', '', reason)));
  reasons.hidden = reasons.children.length === 0;
  const menu = $('#reader-category');
  const options = CATEGORIES.map((name) => {
    const option = el('option', '', categoryLabel(name));
    option.value = name;
    return option;
  });
  if (!message.category) {
    const none = el('option', '', 'Choose a category…');
    none.value = '';
    none.disabled = true;
    options.unshift(none);
  }
  menu.replaceChildren(...options);
  menu.value = message.category || '';
  menu.disabled = false;
  const sender = $('#reader-category-sender');
  sender.checked = false;
  sender.disabled = !(message.from && message.from.address);
  $('#reader-category-status').textContent = '';
}

async function changeCategory() {
  const open = mail.open;
  const menu = $('#reader-category');
  const status = $('#reader-category-status');
  const category = menu.value;
  if (!open || !category || category === open.category) return;
  const sender = $('#reader-category-sender').checked;
  menu.disabled = true;
  status.textContent = 'Saving…';
  let answer;
  try {
    answer = await api('POST', `${messagePath(open.id)}/category`, { category, sender });
  } catch (error) {
    if (mail.open !== open) return;
    menu.disabled = false;
    menu.value = open.category || '';
    status.textContent = error.status === 401 ? '' : `Not changed: ${describeError(error)}`;
    return;
  }
  if (mail.open !== open || loggedOut()) return;
  const changed = (answer && answer.message) || { ...open, category };
  open.category = changed.category || category;
  menu.disabled = false;
  const address = open.from.address || 'this sender';
  status.textContent = answer && answer.rule
    ? `Filed as ${categoryLabel(open.category)}; mail from ${address} will be too.`
    : `Filed as ${categoryLabel(open.category)}.`;
  if (answer && answer.message) {
    const keep = status.textContent;
    renderTriage(answer.message);
    status.textContent = keep;
  }
  updateRowBadge(open.id, open.category);
  loadCounts().catch(reportLoadError);
}

// -- read/unread and flagged, written back to the server by a journaled change job

const isFlagged = (message) => (message.flags || []).includes('\\Flagged');
// The message whose mark is being written (one at a time per message).
const marking = new Set();

function renderMarks(message) {
  const read = $('#reader-mark-read');
  const flag = $('#reader-mark-flag');
  const unread = isUnread(message);
  const flagged = isFlagged(message);
  read.textContent = unread ? 'Mark as read' : 'Mark as unread';
  read.dataset.action = unread ? 'read' : 'unread';
  flag.textContent = flagged ? 'Unflag' : 'Flag';
  flag.dataset.action = flagged ? 'unflagged' : 'flagged';
  flag.setAttribute('aria-pressed', flagged ? 'true' : 'false');
  $('#reader-marks').dataset.unread = String(unread);
  $('#reader-marks').dataset.flagged = String(flagged);
  const busy = marking.has(message.id);
  read.disabled = busy;
  flag.disabled = busy;
}

const MARK_WORDS = {
  read: 'Marked as read.',
  unread: 'Marked as unread.',
  flagged: 'Flagged.',
  unflagged: 'Flag removed.',
};

async function markOpenMessage(button) {
  const id = mail.openId;
  const action = button.dataset.action;
  if (id === null || !action || marking.has(id)) return;
  const status = $('#reader-mark-status');
  marking.add(id);
  $('#reader-mark-read').disabled = true;
  $('#reader-mark-flag').disabled = true;
  status.textContent = 'Writing to the server…';
  const stillOpen = () => mail.openId === id && !loggedOut();
  let accepted;
  try {
    accepted = await api('POST', `${messagePath(id)}/mark`, { action });
  } catch (error) {
    marking.delete(id);
    if (!stillOpen()) return;
    status.textContent = error.status === 401 ? '' : `Not changed: ${describeError(error)}`;
    $('#reader-mark-read').disabled = false;
    $('#reader-mark-flag').disabled = false;
    return;
  }
  // The flags shown are the store's once the job has written them, never a guess.
  watchJob(accepted.job_id, async (job) => {
    marking.delete(id);
    let message = null;
    try {
      message = await api('GET', messagePath(id));
    } catch (error) {
      if (error.status !== 401 && stillOpen()) status.textContent = describeError(error);
    }
    if (message) updateMessageRows(message);
    if (!stillOpen()) return;
    if (message) {
      renderHeaders(message);
      renderMarks(message);
    } else {
      $('#reader-mark-read').disabled = false;
      $('#reader-mark-flag').disabled = false;
    }
    status.textContent = job.status === 'completed'
      ? changeOutcome(job, MARK_WORDS[action] || 'Changed.')
      : `Not changed: ${job.error || job.status}`;
  });
  fetchJobSoon(accepted.job_id);
}

// What a finished change job says about its one message: done, or skipped and why.
function changeOutcome(job, doneText) {
  const result = job.result && typeof job.result === 'object' ? job.result : {};
  const report = result.changed && typeof result.changed === 'object' ? result.changed : result;
  if (report.failed) return `Not changed: ${firstReason(report.errors) || 'the server refused'}`;
  if (report.skipped && !report.done) {
    return `Not changed: ${firstReason(report.skipped_reasons) || 'skipped'}`;
  }
  return doneText;
}

function firstReason(reasons) {
  if (!reasons) return '';
  if (Array.isArray(reasons)) return reasons.length ? String(reasons[0]) : '';
  if (typeof reasons === 'object') return Object.keys(reasons)[0] || '';
  return String(reasons);
}

// The list rows of a message follow its read state.
function updateMessageRows(message) {
  const unread = isUnread(message);
  for (const row of document.querySelectorAll(`.mail-row[data-message-id="${Number(message.id)}"]`)) {
    row.classList.toggle('unread', unread);
    if (unread) row.dataset.unread = 'true';
    else delete row.dataset.unread;
  }
}

// A change job ended (a mark, an undo, a clean-up): the open message may be one it changed.
async function refreshOpenMessage() {
  const id = mail.openId;
  if (id === null || marking.has(id)) return;
  let message;
  try {
    message = await api('GET', messagePath(id));
  } catch {
    return;
  }
  if (mail.openId !== id || loggedOut()) return;
  renderHeaders(message);
  renderMarks(message);
  updateMessageRows(message);
}

function updateRowBadge(id, category) {
  for (const row of document.querySelectorAll(`#mail-list .mail-row[data-message-id="${Number(id)}"]`)) {
    const tags = row.querySelector('.mail-tags');
    const old = row.querySelector('.cat-badge');
    if (old) old.replaceWith(categoryBadge(category));
    else if (tags) tags.prepend(categoryBadge(category));
  }
}

// The HTML is loaded from its own route into a sandboxed frame, never into this page.
function messageFrame(id, remote) {
  const frame = document.createElement('iframe');
  frame.setAttribute('sandbox', FRAME_SANDBOX);
  frame.setAttribute('data-testid', 'reader-frame');
  frame.referrerPolicy = 'no-referrer';
  frame.title = 'Message content';
  frame.className = 'reader-frame';
  frame.src = `${messagePath(id)}/html?remote=${remote ? 1 : 0}`;
  return frame;
}

function showRemoteContent() {
  if (mail.openId === null) return;
  $('#reader-body').replaceChildren(messageFrame(mail.openId, true));
  $('#reader-remote').hidden = true;
}

async function openThread(id) {
  const seq = ++mail.readerSeq;
  mail.threadId = id;
  mail.openId = null;
  markSelected();
  let thread;
  try {
    thread = await api('GET', threadPath(id));
  } catch (error) {
    if (seq !== mail.readerSeq || error.status === 401) return;
    showBanner(`Could not open the thread: ${describeError(error)}`);
    return;
  }
  if (seq !== mail.readerSeq || loggedOut()) return;
  $('#thread-subject').textContent = thread.subject || '(no subject)';
  $('#thread-count').textContent = thread.message_count === 1
    ? '1 message'
    : `${fmtNumber(thread.message_count)} messages`;
  $('#reader-thread').dataset.threadId = String(thread.id);
  $('#thread-messages').replaceChildren(...thread.messages.map((message) => {
    const button = el('button', 'thread-message');
    button.type = 'button';
    button.setAttribute('data-testid', 'thread-message');
    button.dataset.messageId = String(message.id);
    if (isUnread(message)) button.classList.add('unread');
    const top = el('span', 'mail-row-top');
    top.append(
      el('span', 'mail-from', senderText(message.from) || '(no sender)'),
      el('span', 'mail-date', fmtListDate(message.sort_date || message.date)),
    );
    button.append(top, el('span', 'mail-snippet', message.snippet || ''));
    if (message.copies > 1) {
      button.append(el('span', 'hint', `${fmtNumber(message.copies)} copies`));
    }
    button.addEventListener('click', () => openMessage(message.id, { thread: thread.id }));
    const item = el('li');
    item.append(button);
    return item;
  }));
  showReader('thread');
}

function clearMail() {
  mail.loaded = false;
  mail.pagedOn = false;
  mail.stale = false;
  mail.query = '';
  mail.cursor = null;
  mail.searchSeq += 1;
  mail.folders = new Map();
  mail.counts = new Map();
  mail.category = '';
  mail.sort = 'date';
  mail.open = null;
  $('#mail-category').value = '';
  $('#mail-sort').value = 'date';
  $('#top-note').hidden = true;
  $('#mail-query').value = '';
  setQueryError('');
  $('#mail-list').replaceChildren();
  $('#mail-folders').replaceChildren();
  $('#mail-more').hidden = true;
  $('#mail-empty').hidden = true;
  resetReader();
}

function initMail() {
  $('#mail-search').addEventListener('submit', (event) => {
    event.preventDefault();
    runSearch();
  });
  $('#mail-mode').addEventListener('change', onModeChange);
  $('#mail-category').addEventListener('change', () => runSearch());
  $('#mail-sort').addEventListener('change', () => runSearch());
  $('#reader-category').addEventListener('change', changeCategory);
  $('#reader-mark-read').addEventListener('click', (e) => markOpenMessage(e.currentTarget));
  $('#reader-mark-flag').addEventListener('click', (e) => markOpenMessage(e.currentTarget));
  $('#mail-more').addEventListener('click', () => runSearch({ more: true }));
  $('#show-remote').addEventListener('click', showRemoteContent);
  $('#reader-back').addEventListener('click', () => {
    if (mail.threadId !== null) openThread(mail.threadId);
  });
  $('#reader-thread-open').addEventListener('click', (event) => {
    const id = Number(event.currentTarget.dataset.threadId);
    if (id) openThread(id);
  });
  window.addEventListener('hashchange', route);
}

// -- journaled changes: what a job changed, and its undo -------------------------------------

// Job kinds that change mail through the journal (inboxd.pipeline.changes); only these have
// a journal to summarize and maybe undo.
const CLEANUP_KIND = 'cleanup';
const JOURNALED_KINDS = new Set(['change', 'label', CLEANUP_KIND, 'undo']);
// Per job id: the journal's {counts, undoable, undone_by}, or null when it has none.
const journals = new Map();
// Jobs whose undo was asked for and not yet seen in the journal.
const undoing = new Set();
// Callbacks waiting for a job to finish (or to park for approval): job id -> [fn].
const jobWatchers = new Map();
// Finished jobs already handled here. Kept apart from the job snapshots, which the live
// stream updates in place (a snapshot's "previous status" may already be the new one).
const finishSeen = new Set();
let jobsPrimed = false;

const journalPath = (id) => `${jobPath(id)}/journal`;

function watchJob(id, callback) {
  const list = jobWatchers.get(id) || [];
  list.push(callback);
  jobWatchers.set(id, list);
}

// A full snapshot of a job came in (a GET, or the list): wake who waits for it and keep its
// journal summary current.
function jobSnapshot(job) {
  const settled = FINISHED_JOB.has(job.status) || job.status === 'awaiting_approval';
  if (settled && jobWatchers.has(job.id)) {
    const callbacks = jobWatchers.get(job.id);
    jobWatchers.delete(job.id);
    for (const callback of callbacks) callback(job);
  }
  reviewJobNews(job.id, job);
  if (!FINISHED_JOB.has(job.status)) {
    finishSeen.delete(job.id);
    return;
  }
  if (finishSeen.has(job.id)) return;
  finishSeen.add(job.id);
  if (!JOURNALED_KINDS.has(job.kind)) return;
  loadJournal(job.id);
  // An undo that ended changes what the job it undid can still do.
  if (job.kind === 'undo' && job.params && job.params.job_id) {
    loadJournal(job.params.job_id, { undoEnded: true });
  }
  if (jobsPrimed) mailWasChanged();
}

// A change reached the store: the open message, the folder counts and the list follow.
function mailWasChanged() {
  if (!mail.loaded) return;
  refreshOpenMessage();
  loadFolders().catch(reportLoadError);
  if (mail.pagedOn) return;
  if (currentTab() === 'mail' || currentTab() === 'top') runSearch({ quiet: true });
  else mail.stale = true;
}

async function loadJournal(id, { undoEnded = false } = {}) {
  let found = null;
  try {
    const answer = await api('GET', `${journalPath(id)}?limit=1`);
    found = {
      counts: answer.counts || {},
      undoable: Boolean(answer.undoable),
      undone_by: answer.undone_by || null,
    };
  } catch (error) {
    // 404: no journal (the job changed nothing), or the job is gone.
    if (error.status !== 404) return;
  }
  if (loggedOut()) return;
  journals.set(id, found);
  // Its undo ended (done or not): the journal now says whether there is more to undo.
  if (undoEnded || (found && found.undone_by)) undoing.delete(id);
  renderJob(id);
  if (cleanups.openId === id) renderReviewJournal();
}

// "3 done · 1 skipped", in the vocabulary's order of states.
function journalText(journal) {
  if (!journal) return '';
  const parts = [];
  const states = JOURNAL_STATES.length ? JOURNAL_STATES : Object.keys(journal.counts);
  for (const name of states) {
    const count = journal.counts[name];
    if (count) parts.push(`${fmtNumber(count)} ${name}`);
  }
  let text = parts.join(' · ');
  if (journal.undone_by) text += `${text ? ' — ' : ''}undone by ${shortId(journal.undone_by)}`;
  return text;
}

function canUndo(job, journal) {
  return Boolean(job && FINISHED_JOB.has(job.status) && journal && journal.undoable);
}

async function undoJob(id) {
  if (undoing.has(id)) return;
  undoing.add(id);
  renderJob(id);
  if (cleanups.openId === id) renderReviewJournal();
  try {
    const accepted = await api('POST', `${jobPath(id)}/undo`);
    // The undo job shows its progress in the list like any other job.
    fetchJobSoon(accepted.job_id);
  } catch (error) {
    undoing.delete(id);
    if (error.status !== 401) showBanner(`Could not undo the job: ${describeError(error)}`);
    loadJournal(id);
  } finally {
    renderJob(id);
    if (cleanups.openId === id) renderReviewJournal();
  }
}

// -- clean-ups: propose, review, approve -----------------------------------------------------

const cleanupPath = (id) => `/api/cleanups/${encodeURIComponent(id)}`;
const cleanupHash = (id) => `#cleanups/${encodeURIComponent(id)}`;
// Above this many candidates the sender groups start folded: the counts are what one reviews.
const REVIEW_UNFOLDED_MAX = 200;

const cleanups = {
  list: [],
  openId: null,
  // GET /api/cleanups/{id} and the job behind it (kept fresh by the live stream).
  detail: null,
  job: null,
  // Candidates the person deselected; everything else is approved.
  excluded: new Set(),
  // Sender groups the person folded or unfolded.
  folded: new Map(),
  // The job status the screen last showed (the job object itself changes in place).
  seenStatus: null,
  seq: 0,
  approving: false,
  starting: false,
};

function actionLabel(action) {
  if (action === 'mark-read') return 'Mark as read';
  if (action === 'unsubscribe') return 'Unsubscribe (one-click)';
  return capitalize(String(action).replace(/[-_]/g, ' '));
}

// A sender as the proposal gives it: a string, or {name, address}.
function fromText(from) {
  if (!from) return '(no sender)';
  if (typeof from === 'string') return from;
  if (from.name && from.address) return `${from.name} <${from.address}>`;
  return from.address || from.name || '(no sender)';
}

// A proposal's message: its sender's address in `from`, the display name beside it.
function itemSender(item) {
  if (item.from_name && typeof item.from === 'string' && item.from) {
    return `${item.from_name} <${item.from}>`;
  }
  return fromText(item.from || item.from_name);
}

function fillCleanupChoices() {
  const box = $('#cleanup-categories');
  const chosen = new Set(
    [...box.querySelectorAll('input:checked')].map((input) => input.value),
  );
  const fresh = box.children.length === 0;
  box.replaceChildren(...CATEGORIES.map((name) => {
    const label = el('label', 'check');
    const input = el('input');
    input.type = 'checkbox';
    input.name = 'category';
    input.value = name;
    input.checked = fresh ? BULK_CATEGORIES.has(name) : chosen.has(name);
    input.setAttribute('data-testid', 'cleanup-category');
    label.append(input, ` ${categoryLabel(name)}`);
    return label;
  }));
  const action = $('#cleanup-action');
  const current = action.value;
  action.replaceChildren(...CLEANUP_ACTIONS.map((name) => {
    const option = el('option', '', actionLabel(name));
    option.value = name;
    return option;
  }));
  if (current) action.value = current;
}

function fillCleanupAccounts() {
  const select = $('#cleanup-account');
  const current = select.value;
  select.replaceChildren(...state.accountOrder.map((id) => {
    const account = state.accounts.get(id);
    const option = el('option', '', `${account.name} (${account.provider})`);
    option.value = id;
    return option;
  }));
  if (current && state.accounts.has(current)) select.value = current;
}

function setCleanupFormError(message) {
  const error = $('#cleanup-form-error');
  error.textContent = message;
  error.hidden = !message;
}

async function startCleanup(event) {
  event.preventDefault();
  if (cleanups.starting) return;
  const accountId = $('#cleanup-account').value;
  const categories = [...document.querySelectorAll('#cleanup-categories input:checked')]
    .map((input) => input.value);
  if (!accountId) {
    setCleanupFormError('Choose an account.');
    return;
  }
  const olderThan = $('#cleanup-older-than').value.trim();
  const query = $('#cleanup-query').value.trim();
  // Without a search, the categories are what keeps a clean-up to bulk mail.
  if (categories.length === 0 && !query) {
    setCleanupFormError('Choose at least one category, or search for the mail to clean up.');
    return;
  }
  const body = { account_id: accountId, categories, action: $('#cleanup-action').value };
  if (olderThan) body.older_than = olderThan;
  if (query) body.query = query;
  cleanups.starting = true;
  $('#cleanup-start').disabled = true;
  setCleanupFormError('');
  try {
    const accepted = await api('POST', '/api/cleanups', body);
    fetchJobSoon(accepted.job_id);
    location.hash = cleanupHash(accepted.job_id);
  } catch (error) {
    if (error.status !== 401) setCleanupFormError(describeError(error));
  } finally {
    cleanups.starting = false;
    $('#cleanup-start').disabled = false;
  }
}

const loadCleanups = coalesced(async () => {
  const answer = await api('GET', '/api/cleanups');
  if (loggedOut()) return;
  cleanups.list = Array.isArray(answer) ? answer : answer.cleanups || [];
  renderCleanupList();
});

function renderCleanupList() {
  const rows = cleanups.list.map((item) => {
    const row = el('li', 'cleanup-row');
    row.setAttribute('data-testid', 'cleanup-row');
    row.dataset.jobId = item.job_id;
    const link = el('a', 'cleanup-link');
    link.href = cleanupHash(item.job_id);
    const status = item.status || '';
    const badge = el('span', `badge status-${status}`, status.replace('_', ' '));
    const counts = item.counts || {};
    const what = [
      accountName(item.account_id),
      actionLabel(item.action || ''),
      counts.candidates != null ? `${fmtNumber(counts.candidates)} candidates` : '',
      counts.protected ? `${fmtNumber(counts.protected)} protected` : '',
    ].filter(Boolean).join(' · ');
    link.append(el('span', 'mono job-id', shortId(item.job_id)), el('span', '', ` ${what} `));
    const when = el('span', 'hint');
    setTime(when, item.created_at || item.proposed_at, '');
    row.append(link, badge, when);
    if (item.job_id === cleanups.openId) row.setAttribute('aria-current', 'true');
    return row;
  });
  $('#cleanup-list').replaceChildren(...rows);
  $('#cleanups-empty').hidden = rows.length > 0;
}

function routeCleanups() {
  const match = /^#cleanups\/(.+)$/.exec(location.hash);
  const id = match ? decodeURIComponent(match[1]) : null;
  loadCleanups().catch(reportLoadError);
  if (id === null) {
    closeReview();
  } else if (id !== cleanups.openId) {
    openCleanup(id);
  } else {
    loadReview();
  }
}

function closeReview() {
  cleanups.seq += 1;
  cleanups.openId = null;
  cleanups.detail = null;
  cleanups.job = null;
  $('#review').hidden = true;
  renderCleanupList();
}

function openCleanup(id) {
  cleanups.openId = id;
  cleanups.detail = null;
  cleanups.job = state.jobs.get(id) || null;
  cleanups.seenStatus = cleanups.job ? cleanups.job.status : null;
  cleanups.excluded = new Set();
  cleanups.folded = new Map();
  setReviewError('');
  $('#review-title').textContent = `Clean-up ${shortId(id)}`;
  $('#review-criteria').textContent = 'Loading…';
  $('#review-proposal').hidden = true;
  $('#review-outcome').hidden = true;
  $('#review-protected').hidden = true;
  $('#review').hidden = false;
  renderCleanupList();
  loadReview();
}

// The proposal and its job, asked again (opened, approved, or the job moved on).
async function loadReview() {
  const id = cleanups.openId;
  if (id === null) return;
  const seq = ++cleanups.seq;
  let detail;
  let job;
  try {
    [detail, job] = await Promise.all([api('GET', cleanupPath(id)), api('GET', jobPath(id))]);
  } catch (error) {
    if (seq !== cleanups.seq || error.status === 401) return;
    setReviewError(error.status === 404
      ? 'This clean-up does not exist (or is not yours).'
      : `Could not load the clean-up: ${describeError(error)}`);
    $('#review-criteria').textContent = '';
    return;
  }
  if (seq !== cleanups.seq || loggedOut()) return;
  cleanups.detail = detail;
  cleanups.job = job;
  if (cleanups.seenStatus !== job.status) loadCleanups().catch(reportLoadError);
  cleanups.seenStatus = job.status;
  if (FINISHED_JOB.has(job.status) && !journals.has(id)) loadJournal(id);
  renderReview();
}

// Live news about a job: the review screen follows its clean-up's job.
function reviewJobNews(id, job) {
  extractionJobNews(id, job);
  if (cleanups.openId !== id) return;
  if (job) cleanups.job = job;
  const now = cleanups.job ? cleanups.job.status : null;
  const changed = now !== cleanups.seenStatus;
  cleanups.seenStatus = now;
  // A new phase (proposal ready, execution ended): the proposal itself changed.
  const settled = now === 'awaiting_approval' || FINISHED_JOB.has(now);
  if (changed && settled) loadReview();
  else renderReviewProgress();
  if (changed) loadCleanups().catch(reportLoadError);
}

function setReviewError(message) {
  const error = $('#review-error');
  error.textContent = message;
  error.hidden = !message;
}

function criteriaText(detail) {
  const criteria = detail.criteria || {};
  const parts = [accountName(detail.account_id), actionLabel(detail.action || '')];
  if (criteria.categories && criteria.categories.length) {
    parts.push(criteria.categories.map(categoryLabel).join(', '));
  }
  if (criteria.older_than) parts.push(`older than ${criteria.older_than}`);
  if (criteria.query) parts.push(`matching “${criteria.query}”`);
  return parts.filter(Boolean).join(' · ');
}

function reviewStatus() {
  return (cleanups.job && cleanups.job.status) || (cleanups.detail && cleanups.detail.status) || '';
}

function renderReview() {
  const detail = cleanups.detail;
  if (!detail) return;
  $('#review-criteria').textContent = criteriaText(detail);
  renderReviewProgress();
  const awaiting = reviewStatus() === 'awaiting_approval' && !detail.approved_at;
  $('#review-proposal').hidden = !awaiting;
  if (awaiting) renderProposal();
  renderOutcome();
  renderProtected();
  renderReviewJournal();
}

function renderReviewProgress() {
  const job = cleanups.job;
  const status = reviewStatus();
  const badge = $('#review-status');
  badge.textContent = status.replace('_', ' ');
  badge.className = `badge status-${status}`;
  const active = ACTIVE_JOB.has(status) && status !== 'awaiting_approval';
  setMeter($('#review-meter'), $('#review-progress'), $('#review-progress-text'),
    active && job ? job.progress : null, {
      active: status === 'running',
      label: 'Progress of the clean-up',
    });
  setRateEta($('#review-rate'), $('#review-eta'), job || {}, status === 'running', '/s');
  const step = $('#review-step');
  let text = '';
  if (active && job) {
    text = [job.step ? capitalize(job.step) : '', job.message].filter(Boolean).join(' — ');
    if (!text) text = status === 'pending' ? 'Waiting for a worker…' : 'Working…';
  } else if (status === 'failed' && job && job.error) {
    text = job.error;
  }
  step.textContent = text;
  step.hidden = !text;
  step.classList.toggle('error-text', status === 'failed');
}

// The candidates by sender (their address: display names vary), biggest groups first.
function senderGroups(candidates) {
  const groups = new Map();
  for (const item of candidates) {
    const key = typeof item.from === 'string' && item.from ? item.from.toLowerCase() : itemSender(item);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(item);
  }
  return [...groups.values()]
    .map((items) => [itemSender(items[0]), items])
    .sort((a, b) => b[1].length - a[1].length || a[0].localeCompare(b[0]));
}

function renderProposal() {
  const detail = cleanups.detail;
  const candidates = detail.candidates || [];
  const counts = detail.counts || {};
  const groups = senderGroups(candidates);
  const senders = groups.length === 1 ? '1 sender' : `${fmtNumber(groups.length)} senders`;
  $('#review-counts').textContent = candidates.length
    ? `${fmtNumber(candidates.length)} candidates from ${senders}; ` +
      `${fmtNumber(counts.protected || 0)} protected.`
    : 'Nothing to clean up: no message matched, or every match is protected.';
  const folded = candidates.length > REVIEW_UNFOLDED_MAX;
  $('#review-groups').replaceChildren(...groups.map(([sender, items]) => {
    const box = el('section', 'review-group');
    box.setAttribute('data-testid', 'review-group');
    box.dataset.sender = sender;
    const head = el('div', 'review-group-head');
    const label = el('label', 'check');
    const check = el('input');
    check.type = 'checkbox';
    check.setAttribute('data-testid', 'review-group-check');
    check.addEventListener('change', () => {
      for (const item of items) {
        if (check.checked) cleanups.excluded.delete(item.id);
        else cleanups.excluded.add(item.id);
      }
      syncSelection();
    });
    const name = el('span', 'review-sender', sender);
    name.setAttribute('data-testid', 'review-sender');
    const count = el('span', 'review-count', fmtNumber(items.length));
    count.setAttribute('data-testid', 'review-group-count');
    label.append(check, name);
    const toggle = el('button', 'btn btn-small');
    toggle.type = 'button';
    toggle.setAttribute('data-testid', 'review-group-toggle');
    const list = el('ul', 'review-items');
    list.id = `review-items-${box.dataset.sender.replace(/[^A-Za-z0-9_-]/g, '_')}-${items[0].id}`;
    toggle.setAttribute('aria-controls', list.id);
    const setFolded = (fold) => {
      cleanups.folded.set(sender, fold);
      list.hidden = fold;
      toggle.textContent = fold ? 'Show' : 'Hide';
      toggle.setAttribute('aria-expanded', String(!fold));
      toggle.setAttribute('aria-label', `${fold ? 'Show' : 'Hide'} the messages from ${sender}`);
    };
    toggle.addEventListener('click', () => setFolded(!list.hidden));
    head.append(label, count, toggle);
    list.append(...items.map(candidateRow));
    box.append(head, list);
    setFolded(cleanups.folded.has(sender) ? cleanups.folded.get(sender) : folded);
    return box;
  }));
  syncSelection();
}

function candidateRow(item) {
  const row = el('li', 'review-item');
  row.setAttribute('data-testid', 'review-item');
  row.dataset.messageId = String(item.id);
  const label = el('label', 'check');
  const check = el('input');
  check.type = 'checkbox';
  check.setAttribute('data-testid', 'review-item-check');
  check.dataset.messageId = String(item.id);
  check.addEventListener('change', () => {
    if (check.checked) cleanups.excluded.delete(item.id);
    else cleanups.excluded.add(item.id);
    syncSelection();
  });
  const subject = el('span', 'review-subject', item.subject || '(no subject)');
  subject.setAttribute('data-testid', 'review-subject');
  label.append(check, subject);
  const meta = el('span', 'review-meta');
  if (item.category) meta.append(categoryBadge(item.category));
  meta.append(el('span', 'mail-date', fmtListDate(item.date)));
  const reasons = el('span', 'review-reasons', (item.reasons || []).join(' · '));
  reasons.setAttribute('data-testid', 'review-reasons');
  row.append(label, meta, reasons);
  return row;
}

// The checkboxes, the groups' partial state and the Approve button follow `excluded`.
function syncSelection() {
  const candidates = (cleanups.detail && cleanups.detail.candidates) || [];
  for (const check of document.querySelectorAll('[data-testid="review-item-check"]')) {
    check.checked = !cleanups.excluded.has(Number(check.dataset.messageId));
  }
  for (const box of document.querySelectorAll('[data-testid="review-group"]')) {
    const checks = [...box.querySelectorAll('[data-testid="review-item-check"]')];
    const on = checks.filter((c) => c.checked).length;
    const group = box.querySelector('[data-testid="review-group-check"]');
    group.checked = on === checks.length;
    group.indeterminate = on > 0 && on < checks.length;
    group.setAttribute('aria-label', `All ${checks.length} from ${box.dataset.sender}`);
    box.dataset.selected = String(on);
  }
  const selected = candidates.filter((c) => !cleanups.excluded.has(c.id)).length;
  $('#review-selected').textContent =
    `${fmtNumber(selected)} of ${fmtNumber(candidates.length)} selected`;
  const approve = $('#review-approve');
  approve.textContent = selected === 1 ? 'Approve 1 message' : `Approve ${fmtNumber(selected)} messages`;
  approve.disabled = selected === 0 || cleanups.approving;
  $('#review-select-all').disabled = cleanups.approving;
  $('#review-select-none').disabled = cleanups.approving;
  $('#review-discard').disabled = cleanups.approving;
}

function selectAll(on) {
  const candidates = (cleanups.detail && cleanups.detail.candidates) || [];
  cleanups.excluded = on ? new Set() : new Set(candidates.map((c) => c.id));
  syncSelection();
}

// Sends the exact list: the shorter of "only these" and "all but these".
async function approveCleanup() {
  const id = cleanups.openId;
  const detail = cleanups.detail;
  if (!id || !detail || cleanups.approving) return;
  const candidates = detail.candidates || [];
  const selected = candidates.filter((c) => !cleanups.excluded.has(c.id)).map((c) => c.id);
  if (selected.length === 0) return;
  const excluded = candidates.filter((c) => cleanups.excluded.has(c.id)).map((c) => c.id);
  let body = {};
  if (excluded.length > 0) {
    body = selected.length < excluded.length ? { only: selected } : { exclude: excluded };
  }
  cleanups.approving = true;
  syncSelection();
  setReviewError('');
  try {
    const answer = await api('POST', `${cleanupPath(id)}/approve`, body);
    if (answer && answer.already_approved) showBanner('This clean-up was already approved.');
    fetchJobSoon(id);
  } catch (error) {
    if (error.status !== 401 && cleanups.openId === id) {
      setReviewError(`Not approved: ${describeError(error)}`);
    }
  } finally {
    cleanups.approving = false;
  }
  if (cleanups.openId === id) loadReview();
}

// No to the whole proposal: its job is cancelled and nothing is changed.
async function discardCleanup() {
  const id = cleanups.openId;
  if (!id || cleanups.approving) return;
  cleanups.approving = true;
  syncSelection();
  setReviewError('');
  try {
    upsertJob(await api('POST', `${jobPath(id)}/cancel`));
  } catch (error) {
    if (error.status !== 401 && cleanups.openId === id) {
      setReviewError(`Not discarded: ${describeError(error)}`);
    }
  } finally {
    cleanups.approving = false;
  }
  if (cleanups.openId === id) loadReview();
}

function candidateById(id) {
  const detail = cleanups.detail;
  const all = [...((detail && detail.candidates) || []), ...((detail && detail.protected) || [])];
  return all.find((item) => item.id === id) || null;
}

function renderOutcome() {
  const detail = cleanups.detail;
  const box = $('#review-outcome');
  if (!detail.approved_at) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const me = state.user && [state.user.id, state.user.name].includes(detail.approved_by);
  const by = detail.approved_by ? ` by ${me ? 'you' : detail.approved_by}` : '';
  const count = detail.approved_count == null ? '' : ` ${fmtNumber(detail.approved_count)} messages`;
  const approved = $('#review-approved');
  approved.replaceChildren(`Approved${count}${by} `);
  const when = el('span');
  setTime(when, detail.approved_at, '');
  approved.append(when, '.');
  const execution = detail.execution;
  const result = $('#review-result');
  const skippedList = $('#review-skipped');
  if (!execution) {
    result.textContent = FINISHED_JOB.has(reviewStatus())
      ? 'The execution left no report.'
      : 'Executing…';
    skippedList.hidden = true;
  } else {
    const skipped = execution.skipped || [];
    result.textContent = `${fmtNumber(execution.done || 0)} done, ` +
      `${fmtNumber(skipped.length)} skipped, ${fmtNumber(execution.failed || 0)} failed.`;
    skippedList.replaceChildren(...skipped.map((item) => {
      const found = candidateById(item.id);
      const what = found ? `${found.subject || '(no subject)'} — ${itemSender(found)}` : `#${item.id}`;
      const row = el('li', '', `${what}: ${item.why || 'skipped'}`);
      row.setAttribute('data-testid', 'review-skipped-item');
      row.dataset.messageId = String(item.id);
      return row;
    }));
    skippedList.hidden = skipped.length === 0;
  }
  renderUnsubscribe(detail.unsubscribe);
}

// A list in an unsubscribe report: its List-Id (else the sender) and what was done.
function unsubscribeItem(entry, detail) {
  const row = el('li', '', `${entry.list || entry.url || '?'}`);
  row.setAttribute('data-testid', 'review-unsubscribe-item');
  if (detail) row.append(el('span', 'hint', ` — ${detail}`));
  return row;
}

function renderUnsubscribe(unsub) {
  const box = $('#review-unsubscribe');
  if (!unsub) {
    box.hidden = true;
    return;
  }
  const parts = [];
  const section = (title, entries, describe) => {
    if (!entries || entries.length === 0) return;
    const list = el('ul', 'review-skipped');
    list.append(...entries.map((entry) => unsubscribeItem(entry, describe(entry))));
    parts.push(el('p', '', title), list);
  };
  section('Unsubscribed (one-click request sent):', unsub.posted,
    (e) => (e.status ? `answered ${e.status}` : ''));
  // Only a mail unsubscribes from these: the person sends it, inboxd never does.
  section('These lists unsubscribe only by mail, for you to send:', unsub.mailto_only, (e) => {
    const mailto = typeof e.mailto === 'string' && /^mailto:/i.test(e.mailto) ? e.mailto : '';
    return mailto.replace(/^mailto:/i, '');
  });
  section('Not unsubscribed:', unsub.failed, (e) => e.why || '');
  box.replaceChildren(...parts);
  box.hidden = parts.length === 0;
}

function renderProtected() {
  const detail = cleanups.detail;
  const items = detail.protected || [];
  const box = $('#review-protected');
  box.hidden = items.length === 0;
  $('#review-protected-title').textContent = items.length === 1
    ? '1 message protected'
    : `${fmtNumber(items.length)} messages protected`;
  $('#review-protected-list').replaceChildren(...items.map((item) => {
    const row = el('li', 'review-item');
    row.setAttribute('data-testid', 'review-protected-item');
    row.dataset.messageId = String(item.id);
    row.append(
      el('span', 'review-subject', item.subject || '(no subject)'),
      el('span', 'review-meta', itemSender(item)),
    );
    const why = el('span', 'review-reasons', (item.why || []).join(' · '));
    why.setAttribute('data-testid', 'review-why');
    row.append(why);
    return row;
  }));
}

function renderReviewJournal() {
  const id = cleanups.openId;
  if (!id) return;
  const journal = journals.get(id);
  const text = $('#review-journal');
  text.textContent = journalText(journal);
  const undo = $('#review-undo');
  undo.hidden = !canUndo(cleanups.job, journal);
  undo.disabled = undoing.has(id);
  undo.textContent = undoing.has(id) ? 'Undoing…' : 'Undo';
}

function initCleanups() {
  $('#cleanup-form').addEventListener('submit', startCleanup);
  $('#review-approve').addEventListener('click', approveCleanup);
  $('#review-discard').addEventListener('click', discardCleanup);
  $('#review-select-all').addEventListener('click', () => selectAll(true));
  $('#review-select-none').addEventListener('click', () => selectAll(false));
  $('#review-undo').addEventListener('click', () => {
    if (cleanups.openId) undoJob(cleanups.openId);
  });
}

// -- newsletters: extract the articles, read them, export ------------------------------------

const extractionPath = (id) => `/api/newsletters/extractions/${encodeURIComponent(id)}`;
const extractionHash = (id) => `#newsletters/${encodeURIComponent(id)}`;

const extractions = {
  list: [],
  openId: null,
  // GET /api/newsletters/extractions/{id}; the job's live ticks come through state.jobs.
  detail: null,
  seenStatus: null,
  seq: 0,
  starting: false,
};

// Only web links become hrefs: a newsletter's javascript: or data: URL stays text.
function safeHref(url) {
  if (typeof url !== 'string') return null;
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : null;
  } catch {
    return null;
  }
}

// A link the person opens in a new tab, telling the target nothing about the dashboard.
function outsideLink(url, text, testId) {
  const href = safeHref(url);
  const link = href ? el('a', 'news-link', text || url) : el('span', 'news-link', text || url);
  if (href) {
    link.href = href;
    link.target = '_blank';
    link.rel = 'noopener noreferrer';
    link.referrerPolicy = 'no-referrer';
  }
  if (testId) link.setAttribute('data-testid', testId);
  return link;
}

function fillExtractionAccounts() {
  const select = $('#extraction-account');
  const current = select.value;
  const options = state.accountOrder.map((id) => {
    const account = state.accounts.get(id);
    const option = el('option', '', `${account.name} (${account.provider})`);
    option.value = id;
    return option;
  });
  const all = el('option', '', 'All my accounts');
  all.value = '';
  select.replaceChildren(all, ...options);
  if (current && state.accounts.has(current)) select.value = current;
  else if (options.length === 1) select.value = options[0].value;
}

function setExtractionFormError(message) {
  const error = $('#extraction-form-error');
  error.textContent = message;
  error.hidden = !message;
}

async function startExtraction(event) {
  event.preventDefault();
  if (extractions.starting) return;
  const amount = Number($('#extraction-window').value);
  const max = Number($('#extraction-max').value);
  if (!Number.isInteger(amount) || amount < 1) {
    setExtractionFormError('The window is a whole number of hours or days, at least 1.');
    return;
  }
  if (!Number.isInteger(max) || max < 1 || max > 1000) {
    setExtractionFormError('Max newsletters is a whole number from 1 to 1000.');
    return;
  }
  const senders = $('#extraction-senders').value.split(',')
    .map((s) => s.trim()).filter(Boolean);
  const body = { max_results: max, senders };
  if ($('#extraction-unit').value === 'hours') body.hours_back = amount;
  else body.days_back = amount;
  const accountId = $('#extraction-account').value;
  if (accountId) body.account_id = accountId;
  extractions.starting = true;
  $('#extraction-start').disabled = true;
  setExtractionFormError('');
  try {
    const accepted = await api('POST', '/api/newsletters/extractions', body);
    fetchJobSoon(accepted.extraction_id);
    location.hash = extractionHash(accepted.extraction_id);
    // A second click while the same one waits or runs gets that one: say so.
    if (accepted.deduplicated) {
      setExtractionFormError('The same extraction is already under way: showing it.');
    }
  } catch (error) {
    if (error.status !== 401) setExtractionFormError(describeError(error));
  } finally {
    extractions.starting = false;
    $('#extraction-start').disabled = false;
  }
}

const loadExtractions = coalesced(async () => {
  const answer = await api('GET', '/api/newsletters/extractions');
  if (loggedOut()) return;
  extractions.list = answer.extractions || [];
  renderExtractionList();
});

function windowText(params) {
  const p = params || {};
  if (p.hours_back) return `last ${fmtNumber(p.hours_back)} h`;
  if (p.days_back) return `last ${fmtNumber(p.days_back)} d`;
  return '';
}

function extractionCriteria(item) {
  const p = item.params || {};
  return [
    p.account_id ? accountName(p.account_id) : 'all accounts',
    windowText(p),
    p.senders && p.senders.length ? `from ${p.senders.join(', ')}` : '',
    p.max_results ? `at most ${fmtNumber(p.max_results)}` : '',
  ].filter(Boolean).join(' · ');
}

function renderExtractionList() {
  const rows = extractions.list.map((item) => {
    const row = el('li', 'cleanup-row');
    row.setAttribute('data-testid', 'extraction-row');
    row.dataset.jobId = item.extraction_id;
    const link = el('a', 'cleanup-link');
    link.href = extractionHash(item.extraction_id);
    const counts = item.counts || {};
    const what = [
      extractionCriteria(item),
      counts.newsletters != null ? `${fmtNumber(counts.newsletters)} newsletters` : '',
      counts.articles != null ? `${fmtNumber(counts.articles)} articles` : '',
    ].filter(Boolean).join(' · ');
    link.append(el('span', 'mono job-id', shortId(item.extraction_id)), el('span', '', ` ${what} `));
    const status = item.status || '';
    const badge = el('span', `badge status-${status}`, status.replace('_', ' '));
    const when = el('span', 'hint');
    setTime(when, item.created_at, '');
    row.append(link, badge, when);
    if (item.extraction_id === extractions.openId) row.setAttribute('aria-current', 'true');
    return row;
  });
  $('#extraction-list').replaceChildren(...rows);
  $('#extractions-empty').hidden = rows.length > 0;
}

function routeExtractions() {
  const match = /^#newsletters\/(.+)$/.exec(location.hash);
  const id = match ? decodeURIComponent(match[1]) : null;
  loadExtractions().catch(reportLoadError);
  if (id === null) closeExtraction();
  else if (id !== extractions.openId) openExtraction(id);
  else loadExtraction();
}

function closeExtraction() {
  extractions.seq += 1;
  extractions.openId = null;
  extractions.detail = null;
  $('#extraction').hidden = true;
  renderExtractionList();
}

function setExtractionError(message) {
  const error = $('#extraction-error');
  error.textContent = message;
  error.hidden = !message;
}

function openExtraction(id) {
  extractions.openId = id;
  extractions.detail = null;
  const job = state.jobs.get(id);
  extractions.seenStatus = job ? job.status : null;
  setExtractionError('');
  $('#extraction-title').textContent = `Extraction ${shortId(id)}`;
  $('#extraction-criteria').textContent = 'Loading…';
  $('#extraction-newsletters').replaceChildren();
  $('#extraction-counts').textContent = '';
  $('#extraction-exports').hidden = true;
  disarmExtractionDelete();
  $('#extraction').hidden = false;
  renderExtractionList();
  loadExtraction();
}

async function loadExtraction() {
  const id = extractions.openId;
  if (id === null) return;
  const seq = ++extractions.seq;
  let detail;
  try {
    detail = await api('GET', extractionPath(id));
  } catch (error) {
    if (seq !== extractions.seq || error.status === 401) return;
    setExtractionError(error.status === 404
      ? 'This extraction does not exist (or is not yours).'
      : `Could not load the extraction: ${describeError(error)}`);
    $('#extraction-criteria').textContent = '';
    return;
  }
  if (seq !== extractions.seq || loggedOut()) return;
  extractions.detail = detail;
  if (extractions.seenStatus !== detail.status) loadExtractions().catch(reportLoadError);
  extractions.seenStatus = detail.status;
  renderExtraction();
  // The job ended while this GET was answered: its news was seen before the detail came.
  const live = state.jobs.get(id);
  if (live && FINISHED_JOB.has(live.status) && !FINISHED_JOB.has(detail.status)) {
    setTimeout(() => {
      if (extractions.openId === id) loadExtraction();
    }, 500);
  }
}

// Live news about a job: the open extraction follows it, and reloads once it has ended.
function extractionJobNews(id, job) {
  if (extractions.openId !== id || !extractions.detail) return;
  const now = job ? job.status : extractions.seenStatus;
  if (now !== extractions.seenStatus) {
    extractions.seenStatus = now;
    loadExtractions().catch(reportLoadError);
    if (FINISHED_JOB.has(now)) {
      loadExtraction();
      return;
    }
  }
  renderExtractionProgress();
}

function extractionStatus() {
  const job = extractions.openId ? state.jobs.get(extractions.openId) : null;
  const detail = extractions.detail;
  // The detail is the truth once the job ended; before, the live job is fresher.
  if (detail && FINISHED_JOB.has(detail.status)) return detail.status;
  return (job && job.status) || (detail && detail.status) || '';
}

function renderExtractionProgress() {
  const detail = extractions.detail;
  if (!detail) return;
  const job = state.jobs.get(extractions.openId);
  const status = extractionStatus();
  const badge = $('#extraction-status');
  badge.textContent = status.replace('_', ' ');
  badge.className = `badge status-${status}`;
  const active = ACTIVE_JOB.has(status);
  const progress = job && job.progress ? job.progress : {
    current: detail.progress_current,
    total: detail.progress_total,
    percent: detail.progress_total
      ? Math.round((100 * detail.progress_current) / detail.progress_total) : null,
  };
  setMeter($('#extraction-meter'), $('#extraction-progress'), $('#extraction-progress-text'),
    active ? progress : null, { active: status === 'running', label: 'Progress of the extraction' });
  setRateEta($('#extraction-rate'), $('#extraction-eta'), job || {}, status === 'running', '/s');
  const source = job || detail;
  let text = '';
  if (active) {
    text = [source.step ? capitalize(source.step) : '', source.message].filter(Boolean).join(' — ');
    if (!text && status === 'pending') {
      text = detail.queue_position != null
        ? `Waiting for a worker (position ${fmtNumber(detail.queue_position)})…`
        : 'Waiting for a worker…';
    }
    if (!text) text = 'Working…';
  } else if (status === 'failed') {
    text = detail.error || (job && job.error) || 'The extraction failed.';
  }
  const step = $('#extraction-step');
  step.textContent = text;
  step.hidden = !text;
  step.classList.toggle('error-text', status === 'failed');
  // Only an ended extraction may be deleted (the server answers 409 before).
  $('#extraction-delete').hidden = !FINISHED_JOB.has(status);
}

function disarmExtractionDelete() {
  const button = $('#extraction-delete');
  delete button.dataset.armed;
  button.textContent = 'Delete';
}

// Two clicks: the result goes for good.
async function deleteExtraction() {
  const id = extractions.openId;
  const button = $('#extraction-delete');
  if (id === null) return;
  if (!button.dataset.armed) {
    button.dataset.armed = 'true';
    button.textContent = 'Delete for good?';
    setTimeout(() => {
      if (extractions.openId === id) disarmExtractionDelete();
    }, 5000);
    return;
  }
  disarmExtractionDelete();
  button.disabled = true;
  try {
    await api('DELETE', extractionPath(id));
    extractions.list = extractions.list.filter((item) => item.extraction_id !== id);
    location.hash = '#newsletters';
  } catch (error) {
    if (error.status !== 401) setExtractionError(`Could not delete: ${describeError(error)}`);
  } finally {
    button.disabled = false;
  }
}

function renderExtraction() {
  const detail = extractions.detail;
  if (!detail) return;
  $('#extraction-criteria').textContent = extractionCriteria(detail);
  renderExtractionProgress();
  const result = detail.status === 'completed' ? detail.result || {} : null;
  const exports = $('#extraction-exports');
  exports.hidden = !result;
  if (result) {
    const base = `${extractionPath(detail.extraction_id)}/export`;
    $('#extraction-export-json').href = `${base}?format=json`;
    $('#extraction-export-text').href = `${base}?format=text`;
  }
  const letters = result ? result.newsletters || [] : [];
  const articles = letters.reduce((n, letter) => n + (letter.articles || []).length, 0);
  $('#extraction-counts').textContent = result
    ? `${fmtNumber(letters.length)} newsletters, ${fmtNumber(articles)} articles.`
    : '';
  $('#extraction-newsletters').replaceChildren(...letters.map(newsletterBox));
}

function newsletterBox(letter) {
  const box = el('section', 'review-group news-letter');
  box.setAttribute('data-testid', 'newsletter');
  const head = el('div', 'news-head');
  const subject = letter.canonical_url
    ? outsideLink(letter.canonical_url, letter.subject || '(no subject)', 'newsletter-subject')
    : el('strong', '', letter.subject || '(no subject)');
  if (!letter.canonical_url) subject.setAttribute('data-testid', 'newsletter-subject');
  const meta = el('p', 'hint');
  meta.setAttribute('data-testid', 'newsletter-meta');
  meta.append(fromText(letter.from), ' · ', el('span', 'mail-date', fmtListDate(letter.date)));
  head.append(subject, meta);
  const items = (letter.articles || []).map((article) => {
    const row = el('li', 'review-item');
    row.setAttribute('data-testid', 'newsletter-article');
    row.append(outsideLink(article.url, article.title || article.url, 'article-link'));
    if (article.title) row.append(el('span', 'hint mono', ` ${article.url}`));
    if (article.hops) row.append(el('span', 'hint', ` · ${fmtNumber(article.hops)} redirects`));
    return row;
  });
  const list = el('ul', 'review-items');
  list.append(...items);
  box.append(head);
  if (items.length) box.append(list);
  else box.append(el('p', 'hint', 'No article links.'));
  const rejected = letter.rejected || [];
  if (rejected.length) {
    const fold = el('details', 'review-protected');
    fold.setAttribute('data-testid', 'newsletter-rejected');
    fold.append(el('summary', '', rejected.length === 1
      ? '1 link rejected' : `${fmtNumber(rejected.length)} links rejected`));
    const rows = el('ul', 'review-items');
    // Rejected links are shown as text only: several of them act when merely opened.
    rows.append(...rejected.map((item) => {
      const row = el('li', 'review-item');
      row.setAttribute('data-testid', 'rejected-link');
      const url = el('span', 'mono', item.url || '');
      const reason = el('span', 'review-reasons', item.reason || '');
      reason.setAttribute('data-testid', 'rejected-reason');
      row.append(url, reason);
      return row;
    }));
    fold.append(rows);
    box.append(fold);
  }
  return box;
}

function initExtractions() {
  $('#extraction-form').addEventListener('submit', startExtraction);
  $('#extraction-delete').addEventListener('click', deleteExtraction);
}

// -- webhooks (Settings tab): the user's webhooks and each one's delivery log ----------------

const webhooks = {
  list: [],
  // Webhook ids whose delivery log is open, and the deliveries last read for each.
  open: new Set(),
  logs: new Map(),
  shown: false,
  timer: null,
  seq: 0,
};
const webhookPath = (id) => `/api/webhooks/${encodeURIComponent(id)}`;
// While a delivery is pending its log is read again this often (the queue retries it).
const WEBHOOK_POLL_MS = 1500;

function routeWebhooks(shown) {
  webhooks.shown = shown;
  if (!shown) {
    clearTimeout(webhooks.timer);
    webhooks.timer = null;
    return;
  }
  fillWebhookAccounts();
  loadWebhooks().catch(reportLoadError);
}

function clearWebhooks() {
  clearTimeout(webhooks.timer);
  webhooks.timer = null;
  webhooks.list = [];
  webhooks.open.clear();
  webhooks.logs.clear();
  $('#webhook-secret-box').hidden = true;
  $('#webhook-secret').textContent = '';
  renderWebhooks();
}

function fillWebhookAccounts() {
  const select = $('#webhook-account');
  const current = select.value;
  const all = el('option', '', 'All accounts');
  all.value = '';
  select.replaceChildren(all, ...state.accountOrder.map((id) => {
    const account = state.accounts.get(id);
    const option = el('option', '', `${account.name} (${account.provider})`);
    option.value = id;
    return option;
  }));
  if (current && state.accounts.has(current)) select.value = current;
}

async function loadWebhooks() {
  const seq = ++webhooks.seq;
  const data = await api('GET', '/api/webhooks');
  if (seq !== webhooks.seq) return;
  webhooks.list = data.webhooks;
  const known = new Set(webhooks.list.map((h) => h.id));
  for (const id of [...webhooks.open]) if (!known.has(id)) webhooks.open.delete(id);
  await Promise.all([...webhooks.open].map(loadDeliveries));
  if (seq === webhooks.seq) renderWebhooks();
}

async function loadDeliveries(id) {
  const data = await api('GET', `${webhookPath(id)}/deliveries?limit=50`);
  webhooks.logs.set(id, data.deliveries);
}

// Poll the open logs while something in them is still pending, and only while shown.
function scheduleWebhookPoll() {
  clearTimeout(webhooks.timer);
  webhooks.timer = null;
  const pending = [...webhooks.open].some(
    (id) => (webhooks.logs.get(id) || []).some((d) => d.status === 'pending'),
  );
  if (!pending || !webhooks.shown) return;
  webhooks.timer = setTimeout(() => {
    loadWebhooks().catch(reportLoadError);
  }, WEBHOOK_POLL_MS);
}

function webhookFilters(hook) {
  const parts = [hook.events.map((e) => e.replace('job.', '')).join(' and ')];
  if (hook.account_ids) {
    parts.push(`accounts: ${hook.account_ids.map((id) => accountName(id)).join(', ')}`);
  }
  if (hook.kinds) parts.push(`kinds: ${hook.kinds.join(', ')}`);
  if (hook.description) parts.push(hook.description);
  return parts.join(' · ');
}

function renderWebhooks() {
  const template = $('#webhook-template');
  const rows = webhooks.list.map((hook) => {
    const row = template.content.firstElementChild.cloneNode(true);
    row.dataset.webhookId = hook.id;
    row.querySelector('[data-testid="webhook-row-url"]').textContent = hook.url;
    row.querySelector('[data-role="filters"]').textContent = webhookFilters(hook);
    const badge = row.querySelector('[data-testid="webhook-state"]');
    badge.textContent = hook.enabled ? 'enabled' : 'disabled';
    badge.className = `badge ${hook.enabled ? 'status-completed' : 'status-failed'}`;
    const reason = row.querySelector('[data-testid="webhook-reason"]');
    reason.textContent = hook.disabled_reason || '';
    reason.hidden = hook.enabled || !hook.disabled_reason;
    const toggle = row.querySelector('[data-testid="webhook-toggle"]');
    toggle.textContent = hook.enabled ? 'Disable' : 'Enable';
    toggle.addEventListener('click', () => changeWebhook(hook, toggle, { enabled: !hook.enabled }));
    const test = row.querySelector('[data-testid="webhook-test"]');
    test.addEventListener('click', () => testWebhook(hook, test));
    const remove = row.querySelector('[data-testid="webhook-delete"]');
    remove.addEventListener('click', () => removeWebhook(hook, remove));
    const logToggle = row.querySelector('[data-testid="webhook-log-toggle"]');
    const open = webhooks.open.has(hook.id);
    logToggle.setAttribute('aria-expanded', String(open));
    logToggle.addEventListener('click', () => toggleWebhookLog(hook.id));
    const box = row.querySelector('[data-role="log"]');
    box.hidden = !open;
    if (open) renderDeliveries(box, webhooks.logs.get(hook.id) || []);
    return row;
  });
  $('#webhook-list').replaceChildren(...rows);
  $('#webhooks-empty').hidden = rows.length > 0;
  scheduleWebhookPoll();
}

function renderDeliveries(box, deliveries) {
  box.querySelector('[data-testid="webhook-log-empty"]').hidden = deliveries.length > 0;
  box.querySelector('table').hidden = deliveries.length === 0;
  box.querySelector('tbody').replaceChildren(...deliveries.map((d) => {
    const tr = el('tr');
    tr.dataset.testid = 'webhook-delivery';
    const when = el('td');
    setTime(when, d.last_attempt_at || d.created_at);
    const status = el('td');
    status.append(el('span', `badge status-${d.status}`, d.status));
    const answer = d.last_error || (d.last_status_code ? `HTTP ${d.last_status_code}` : '');
    const cells = [
      when,
      el('td', '', d.event),
      el('td', 'mono', d.job_id ? shortId(d.job_id) : '—'),
      status,
      el('td', '', String(d.attempts)),
      el('td', '', answer),
    ];
    // On a narrow screen each row is a card whose cells say what they are.
    const labels = ['When', 'Event', 'Job', 'Status', 'Tries', 'Answer'];
    cells.forEach((cell, i) => { cell.dataset.label = labels[i]; });
    tr.append(...cells);
    return tr;
  }));
}

async function toggleWebhookLog(id) {
  if (webhooks.open.has(id)) {
    webhooks.open.delete(id);
    renderWebhooks();
    return;
  }
  webhooks.open.add(id);
  try {
    await loadDeliveries(id);
  } catch (error) {
    showBanner(`Could not read the delivery log: ${describeError(error)}`);
  }
  renderWebhooks();
}

async function changeWebhook(hook, button, changes) {
  button.disabled = true;
  try {
    await api('PATCH', webhookPath(hook.id), changes);
    await loadWebhooks();
  } catch (error) {
    showBanner(`Could not change the webhook: ${describeError(error)}`);
  } finally {
    button.disabled = false;
  }
}

async function testWebhook(hook, button) {
  button.disabled = true;
  try {
    await api('POST', `${webhookPath(hook.id)}/test`);
    webhooks.open.add(hook.id);
    await loadWebhooks();
  } catch (error) {
    showBanner(`Could not send a test: ${describeError(error)}`);
  } finally {
    button.disabled = false;
  }
}

async function removeWebhook(hook, button) {
  if (!window.confirm(`Remove the webhook to ${hook.url} and its delivery log?`)) return;
  button.disabled = true;
  try {
    await api('DELETE', webhookPath(hook.id));
    webhooks.open.delete(hook.id);
    webhooks.logs.delete(hook.id);
    await loadWebhooks();
  } catch (error) {
    button.disabled = false;
    showBanner(`Could not remove the webhook: ${describeError(error)}`);
  }
}

function setWebhookFormError(message) {
  const error = $('#webhook-form-error');
  error.textContent = message;
  error.hidden = !message;
}

async function addWebhook(event) {
  event.preventDefault();
  const url = $('#webhook-url').value.trim();
  const events = [];
  if ($('#webhook-finished').checked) events.push('job.finished');
  if ($('#webhook-failed').checked) events.push('job.failed');
  if (!/^https?:\/\/\S+$/i.test(url)) {
    setWebhookFormError('Enter an http:// or https:// URL.');
    return;
  }
  if (events.length === 0) {
    setWebhookFormError('Choose at least one event.');
    return;
  }
  const body = { url, events };
  const account = $('#webhook-account').value;
  if (account) body.account_ids = [account];
  const kinds = $('#webhook-kinds').value.split(/[\s,]+/).filter(Boolean);
  if (kinds.length) body.kinds = kinds;
  const submit = $('#webhook-add');
  submit.disabled = true;
  setWebhookFormError('');
  try {
    const created = await api('POST', '/api/webhooks', body);
    $('#webhook-secret').textContent = created.secret;
    $('#webhook-secret-box').hidden = false;
    $('#webhook-form').reset();
    await loadWebhooks();
  } catch (error) {
    setWebhookFormError(describeError(error));
  } finally {
    submit.disabled = false;
  }
}

function initWebhooks() {
  $('#webhook-form').addEventListener('submit', addWebhook);
}

// -- session --------------------------------------------------------------------------------

function show(view) {
  $('#loading').hidden = view !== 'loading';
  $('#login-view').hidden = view !== 'login';
  $('#dashboard-view').hidden = view !== 'dashboard';
  const loggedIn = view === 'dashboard';
  $('#logout').hidden = !loggedIn;
  $('#user-name').hidden = !loggedIn;
  $('#conn-status').hidden = !loggedIn;
}

function clearData() {
  clearMail();
  closeReview();
  cleanups.list = [];
  renderCleanupList();
  closeExtraction();
  extractions.list = [];
  renderExtractionList();
  clearWebhooks();
  journals.clear();
  undoing.clear();
  jobWatchers.clear();
  finishSeen.clear();
  marking.clear();
  jobsPrimed = false;
  state.accounts = new Map();
  state.accountOrder = [];
  state.jobs = new Map();
  state.jobOrder = [];
  state.runs = [];
  renderAccounts();
  renderJobs();
  renderRuns();
}

function showLogin(message = '') {
  live.stop();
  state.user = null;
  clearData();
  updateNotifyButton();
  show('login');
  const error = $('#login-error');
  error.textContent = message;
  error.hidden = !message;
  $('#login-key').focus();
}

let sessionEnded = false;

function sessionLost() {
  if (!state.user || sessionEnded) return;
  sessionEnded = true;
  showLogin('Your session has ended. Please sign in again.');
}

async function enterDashboard(user) {
  state.user = user;
  sessionEnded = false;
  const name = $('#user-name');
  name.textContent = user.is_admin ? `${user.name} (admin)` : user.name;
  updateNotifyButton();
  show('dashboard');
  setConnection('connecting', 'Connecting to live updates');
  try {
    await refreshAll();
  } catch (error) {
    reportLoadError(error);
  }
  route();
  if (state.user === user) live.start();
}

async function onLogin(event) {
  event.preventDefault();
  const input = $('#login-key');
  const error = $('#login-error');
  const submit = $('#login-submit');
  const key = input.value.trim();
  if (!key) {
    error.textContent = 'Enter an API key.';
    error.hidden = false;
    input.focus();
    return;
  }
  submit.disabled = true;
  error.hidden = true;
  try {
    const user = await api('POST', '/api/session', { key }, { own401: true });
    // The key has done its job; it stays neither in the page nor anywhere else.
    input.value = '';
    await enterDashboard(user);
  } catch (failure) {
    error.textContent = failure.status === 401
      ? 'That API key is not valid (or was revoked).'
      : describeError(failure);
    error.hidden = false;
    input.select();
  } finally {
    submit.disabled = false;
  }
}

async function onLogout() {
  const button = $('#logout');
  button.disabled = true;
  try {
    await api('DELETE', '/api/session', undefined, { own401: true });
  } catch (error) {
    if (error.status !== 401) {
      showBanner(`Could not log out: ${describeError(error)}`);
      return;
    }
  } finally {
    button.disabled = false;
  }
  startedJobs.clear();
  showLogin();
}

async function boot(attempt = 0) {
  try {
    await enterDashboard(await api('GET', '/api/me', undefined, { own401: true }));
  } catch (error) {
    if (error.status === 401) {
      showLogin();
      return;
    }
    $('#loading').textContent = `Cannot reach the server (${describeError(error)}); retrying…`;
    setTimeout(() => boot(attempt + 1), Math.min(BACKOFF_MAX_MS, 1000 * 2 ** attempt));
  }
}

// -- signing in (Connect Gmail / Connect Outlook) -----------------------------------------
// Gmail: the server answers Google's sign-in address and the browser goes there; Google
// sends it back to /api/oauth/google/callback, which stores the account and comes back here
// with ?signed_in=ID. Outlook: a sign_in job shows a device code to enter at Microsoft's
// page; this polls the job until it ends.

function showConnect(text, { code = null, url = null } = {}) {
  const box = $('#connect-status');
  box.replaceChildren();
  const line = document.createElement('p');
  line.textContent = text;
  box.append(line);
  if (url) {
    const link = document.createElement('a');
    link.href = url;
    link.target = '_blank';
    link.rel = 'noopener noreferrer';
    link.textContent = url;
    link.dataset.testid = 'connect-url';
    const codeEl = document.createElement('code');
    codeEl.className = 'device-code';
    codeEl.textContent = code;
    codeEl.dataset.testid = 'connect-code';
    const where = document.createElement('p');
    where.append('Open ', link, ' and enter the code ', codeEl);
    box.append(where);
  }
  box.hidden = false;
}

async function followSignIn(jobId) {
  for (;;) {
    if (loggedOut()) return;
    let job;
    try {
      job = await api('GET', jobPath(jobId));
    } catch (error) {
      if (error.status !== 401) showConnect(`Sign-in: ${describeError(error)}`);
      return;
    }
    const found = /open (\S+) and enter the code (\S+)/.exec(job.message || '');
    if (job.status === 'completed') {
      await loadAccounts();
      const account = state.accounts.get(job.result && job.result.account_id);
      showConnect(`Connected: ${account ? account.name : 'the account'}.`);
      return;
    }
    if (['failed', 'cancelled'].includes(job.status)) {
      showConnect(`Sign-in did not succeed: ${job.error || job.status}`);
      return;
    }
    if (found) showConnect('Waiting for the sign-in at Microsoft…', { url: found[1], code: found[2] });
    await new Promise((resolve) => { setTimeout(resolve, 1000); });
  }
}

async function startSignIn(provider, body) {
  if (provider === 'google') {
    const started = await api('POST', `/api/oauth/${provider}/start`, body);
    window.location.assign(started.url);
    return;
  }
  // Outlook through Microsoft Graph (paging, delta sync), not Outlook's IMAP.
  const accepted = await api('POST', '/api/oauth/microsoft/device', { ...body, kind: 'graph' });
  showConnect('Asking Microsoft for a sign-in code…');
  followSignIn(accepted.job_id);
}

async function onConnect(event) {
  event.preventDefault();
  const provider = event.submitter && event.submitter.dataset.provider;
  const name = $('#connect-name').value.trim();
  if (!provider) return;
  if (!name) {
    showConnect('Give the new account a name first.');
    $('#connect-name').focus();
    return;
  }
  try {
    await startSignIn(provider, { name });
  } catch (error) {
    if (error.status !== 401) showConnect(`Sign-in not started: ${describeError(error)}`);
  }
}

async function signInAgain(id) {
  const account = state.accounts.get(id);
  if (!account) return;
  try {
    const started = await api('POST', `${accountPath(id)}/sign-in`);
    if (started.url) {
      window.location.assign(started.url);
      return;
    }
    showConnect(`Asking Microsoft for a sign-in code for ${account.name}…`);
    followSignIn(started.job_id);
  } catch (error) {
    if (error.status !== 401) showBanner(`Sign-in not started: ${describeError(error)}`);
  }
}

// Back from the provider's sign-in: say so once, and drop the marker from the address.
function noteSignedIn() {
  const params = new URLSearchParams(window.location.search);
  if (!params.has('signed_in')) return;
  showConnect('Connected. The first sync starts on its schedule, or press Sync now.');
  params.delete('signed_in');
  const query = params.toString();
  window.history.replaceState(null, '', `${window.location.pathname}${query ? `?${query}` : ''}${window.location.hash}`);
}

function init() {
  $('#login-form').addEventListener('submit', onLogin);
  $('#connect-form').addEventListener('submit', onConnect);
  noteSignedIn();
  $('#logout').addEventListener('click', onLogout);
  $('#notify-enable').addEventListener('click', enableNotifications);
  initMail();
  initCleanups();
  initExtractions();
  initWebhooks();
  window.addEventListener('online', () => live.onOnline());
  setInterval(refreshRelativeTimes, 30000);
  show('loading');
  boot();
}

init();
