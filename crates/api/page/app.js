// The status page's code (SPEC §9): plain JavaScript, no framework and no build step.
//
// What it talks to, all on this server:
//   /metrics/stream   live samples (Server-Sent Events: `id:` = the sample's Unix ms,
//                     `data:` = the /metrics JSON; `lag` and `reset` control events)
//   /metrics/history  the charts' buckets (avg, min, max per bucket; null = no data)
//   /health           interval, problems, database state; polled
//   /gpu              one row per device; polled
//
// The page's contract with tests and scripts: each headline number is the text of the
// element with data-metric="cpu|ram|gpu|temperature|disk" (one decimal, as /metrics
// has it, or "—" for null), <html data-sample-id> is the id of the last event shown, and
// #freshness has data-state="connecting|live|stale".
//
// The Content-Security-Policy allows no inline code and no eval: everything is built
// with DOM calls, text goes in with textContent, and styles are classes (plus the
// CSSOM's element.style for widths, which the policy allows).

'use strict';

(function () {
  /** The five headline metrics, in page order. */
  const METRICS = [
    { key: 'cpu', label: 'CPU', unit: '%', percent: true },
    { key: 'ram', label: 'RAM', unit: '%', percent: true },
    { key: 'gpu', label: 'GPU', unit: '%', percent: true },
    { key: 'temperature', label: 'Temperature', unit: '°C', percent: false },
    { key: 'disk', label: 'Disk', unit: '%', percent: true },
  ];

  /** The chart ranges. No step is sent: the server's default (SPEC §6) is the smallest
   *  multiple of its persist interval that gives at most 1,000 buckets, which always
   *  meets its rules (a step at least the live interval, under the bucket cap) and is
   *  answered from windows, which a restart keeps (they are refilled from PostgreSQL). */
  const RANGES = {
    hour: { seconds: 3600, words: 'the last hour' },
    day: { seconds: 86400, words: 'the last day' },
    week: { seconds: 604800, words: 'the last week' },
  };

  /** "stale" after this many live intervals without a sample (SPEC §9). */
  const STALE_INTERVALS = 3;
  /** How often /health and /gpu are asked. */
  const POLL_MS = 5000;
  /** A poll that takes longer than this is given up (a paused server answers nothing). */
  const POLL_TIMEOUT_MS = 4000;
  /** History of a week may come from PostgreSQL, with the server's own bounded waits. */
  const HISTORY_TIMEOUT_MS = 20000;
  /** The shortest time between two refreshes of the shown range's history. */
  const HISTORY_REFRESH_MS = 60000;
  /** Reopening a stream the browser gave up on: 1 s, doubling, at most 10 s. */
  const BACKOFF_MIN_MS = 1000;
  const BACKOFF_MAX_MS = 10000;
  /** An open stream with no sample for this long (and at least 6 intervals) is reopened:
   *  a connection a proxy or a network dropped silently never reports an error. */
  const SILENT_STREAM_MS = 30000;
  /** Live samples kept to redraw the buckets they fall in (age and count caps). */
  const RECENT_MAX_AGE_MS = 2 * 3600 * 1000;
  const RECENT_MAX = 20000;
  const CHART_HEIGHT = 170;

  const state = {
    intervalMs: 5000, // the live interval; SPEC §4's default until /health says
    lastEventAt: performance.now(), // the wait for the first sample starts at load
    lastId: null, // the `id` of the last sample event shown (a string)
    lastSampleMs: null,
    freshness: 'connecting',
    es: null,
    openedAt: 0,
    backoffMs: BACKOFF_MIN_MS,
    reopenTimer: null,
    reopenAt: 0,
    streamNote: '',
    range: 'hour',
    loaded: {}, // range → the buckets shown for it (see buildView)
    recent: [], // live samples: { ms, values: { cpu: …, … } }, oldest first
    charts: {}, // metric key → uPlot
    historyAbort: null,
    historyTimer: null,
    renderPending: false,
  };

  // ---- small helpers -------------------------------------------------------------

  const $ = (selector, root = document) => root.querySelector(selector);

  function isNumber(v) {
    return typeof v === 'number' && Number.isFinite(v);
  }

  /** One decimal, as /metrics carries it; an em dash for null (SPEC §9). */
  function fmt1(v) {
    return isNumber(v) ? v.toFixed(1) : '—';
  }

  function withUnit(v, unit) {
    return isNumber(v) ? v.toFixed(1) + (unit === '%' ? ' %' : ' ' + unit) : '—';
  }

  /** Bytes in binary units (GiB as `df -h` prints G). */
  function fmtBytes(n) {
    if (!isNumber(n)) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i += 1;
    }
    return (i === 0 ? String(n) : n.toFixed(1)) + ' ' + units[i];
  }

  /** A duration for people: "4 s", "3 min 2 s", "5 h 12 min", "2 d 3 h". */
  function fmtDuration(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + (s % 60) + ' s';
    const h = Math.floor(m / 60);
    if (h < 24) return h + ' h ' + (m % 60) + ' min';
    return Math.floor(h / 24) + ' d ' + (h % 24) + ' h';
  }

  /** Local time of day; the date too when it is not today. */
  function fmtTime(ms) {
    const d = new Date(ms);
    const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
    return d.toDateString() === new Date().toDateString() ? time : d.toLocaleDateString() + ' ' + time;
  }

  /** A headline value of a /metrics JSON (disk is its percent). */
  function valueOf(sample, key) {
    if (key === 'disk') return sample.disk ? sample.disk.percent : null;
    return sample[key];
  }

  /** GET a JSON resource with a deadline. Resolves with the status and the body (null
   *  when it is not JSON); rejects when no answer came. */
  async function fetchJson(url, timeoutMs, outer) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    const onAbort = () => ctl.abort();
    if (outer) outer.addEventListener('abort', onAbort);
    try {
      const r = await fetch(url, { cache: 'no-store', signal: ctl.signal, headers: { Accept: 'application/json' } });
      let body = null;
      try {
        body = await r.json();
      } catch (_) {
        body = null;
      }
      return { status: r.status, body };
    } finally {
      clearTimeout(timer);
      if (outer) outer.removeEventListener('abort', onAbort);
    }
  }

  function errorText(e) {
    if (e && e.name === 'AbortError') return 'no answer in time';
    return (e && e.message) || String(e);
  }

  /** Runs `task` now and then `ms` after each run ends (runs never overlap). */
  function every(ms, task) {
    const run = async () => {
      try {
        await task();
      } finally {
        setTimeout(run, ms);
      }
    };
    run();
  }

  // ---- live: the stream ----------------------------------------------------------

  /** Opens /metrics/stream. Within one EventSource the browser resumes by itself (it
   *  sends Last-Event-ID); a new one is told where to resume with ?last_event_id=
   *  (SPEC §7), so a reopen leaves no gap the server still holds. */
  function openStream() {
    clearTimeout(state.reopenTimer);
    state.reopenTimer = null;
    if (state.es) state.es.close();
    const url = state.lastId
      ? '/metrics/stream?last_event_id=' + encodeURIComponent(state.lastId)
      : '/metrics/stream';
    const es = new EventSource(url);
    state.es = es;
    state.openedAt = performance.now();
    setStream('connecting');

    es.onopen = () => {
      if (state.es !== es) return;
      state.backoffMs = BACKOFF_MIN_MS;
      setStream('open');
    };
    es.onmessage = (event) => {
      if (state.es === es) onSample(event);
    };
    es.addEventListener('lag', (event) => {
      // A slow connection skipped samples; the server goes on with the freshest.
      let dropped = '?';
      try {
        dropped = JSON.parse(event.data).dropped;
      } catch (_) {
        // keep '?'
      }
      flashStreamNote('skipped ' + dropped + ' samples (slow connection)');
      soonReloadHistory();
    });
    es.addEventListener('reset', () => {
      // Our resume point is older than the server's memory (it restarted, or we were
      // away long): the samples it holds follow; history fills what it can.
      flashStreamNote('resumed after a gap');
      soonReloadHistory();
    });
    es.onerror = () => {
      if (state.es !== es) return;
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up: a non-200 answer (the 503 of a full server) or a wrong
        // content type. It will not retry by itself, so we do, with back-off.
        es.close();
        scheduleReopen();
      } else {
        // Connection lost: the browser reconnects by itself after the server's `retry:`.
        setStream('connecting');
      }
    };
  }

  function scheduleReopen() {
    // Jitter (±20 %) keeps many pages from coming back at the same moment.
    const delay = Math.round(state.backoffMs * (0.8 + 0.4 * Math.random()));
    state.backoffMs = Math.min(state.backoffMs * 2, BACKOFF_MAX_MS);
    state.reopenAt = performance.now() + delay;
    state.reopenTimer = setTimeout(openStream, delay);
    setStream('waiting');
  }

  function onSample(event) {
    let sample;
    try {
      sample = JSON.parse(event.data);
    } catch (_) {
      return;
    }
    const id = event.lastEventId;
    let ms = Number(id);
    if (!id || !Number.isFinite(ms)) ms = Date.parse(sample.timestamp);
    state.lastId = id || state.lastId;
    state.lastSampleMs = ms;
    state.lastEventAt = performance.now();
    showHeadline(id, sample);
    updateFreshness();
    addLive(ms, sample);
  }

  /** The five numbers, the sample id and its time, all in one task: a reader never
   *  sees the numbers of one sample with the id of another. */
  function showHeadline(id, sample) {
    for (const m of METRICS) {
      const v = valueOf(sample, m.key);
      const el = $('[data-metric="' + m.key + '"]');
      el.textContent = fmt1(v);
      const tile = $('[data-tile="' + m.key + '"]');
      const bar = $('.bar > span', tile);
      bar.style.width = isNumber(v) ? Math.max(0, Math.min(100, v)) + '%' : '0';
      tile.dataset.level = level(m, v);
    }
    const d = sample.disk || {};
    $('#disk-detail').textContent = isNumber(d.used)
      ? fmtBytes(d.used) + ' used of ' + fmtBytes(d.total) + ', ' + fmtBytes(d.free) + ' free'
      : '';
    const t = $('#last-sample');
    t.dateTime = sample.timestamp || '';
    t.textContent = isNumber(state.lastSampleMs) ? fmtTime(state.lastSampleMs) : '—';
    document.documentElement.dataset.sampleId = id;
  }

  /** A tile's colour: none, warn or high (only a hint; the number is what counts). */
  function level(metric, v) {
    if (!isNumber(v)) return 'unknown';
    const [warn, high] = metric.percent ? [75, 90] : [70, 85];
    return v >= high ? 'high' : v >= warn ? 'warn' : 'ok';
  }

  /** Checked four times a second: "stale" after 3 live intervals without a sample. */
  function updateFreshness() {
    const now = performance.now();
    const idle = now - state.lastEventAt;
    const pill = $('#freshness');
    let next;
    let text;
    if (idle > STALE_INTERVALS * state.intervalMs) {
      next = 'stale';
      text = state.lastId ? 'stale: no sample for ' + fmtDuration(idle) : 'stale: no sample yet';
    } else if (state.lastId) {
      next = 'live';
      text = 'live';
    } else {
      next = 'connecting';
      text = 'connecting';
    }
    if (pill.dataset.state !== next) pill.dataset.state = next;
    if (pill.textContent !== text) pill.textContent = text;
    state.freshness = next;

    // A stream that is open but silent for long may be a dead connection nobody told
    // the browser about: start a new one.
    const silent = Math.max(SILENT_STREAM_MS, 6 * state.intervalMs);
    if (state.es && state.es.readyState === EventSource.OPEN && idle > silent
        && now - state.openedAt > silent) {
      openStream();
    }
    if (state.reopenTimer) setStream('waiting');
  }

  function setStream(kind) {
    const el = $('#stream-note');
    let text = '';
    if (kind === 'connecting') text = 'connecting to the live stream…';
    if (kind === 'waiting') {
      const s = Math.max(0, Math.ceil((state.reopenAt - performance.now()) / 1000));
      text = 'live stream closed: reconnecting in ' + s + ' s';
    }
    if (kind === 'open') text = state.streamNote;
    if (el.dataset.stream !== kind) el.dataset.stream = kind;
    if (el.textContent !== text) el.textContent = text;
  }

  function flashStreamNote(text) {
    state.streamNote = text;
    setStream('open');
    setTimeout(() => {
      if (state.streamNote === text) {
        state.streamNote = '';
        if ($('#stream-note').dataset.stream === 'open') setStream('open');
      }
    }, 10000);
  }

  // ---- history: buckets and charts -------------------------------------------------

  /** The buckets of one range, from a /metrics/history answer. `base` keeps the
   *  server's numbers; `shown` is base with the live samples since folded in. */
  function buildView(range, h) {
    const stepMs = Math.round(h.step_seconds * 1000);
    const view = {
      range,
      stepMs,
      spanMs: RANGES[range].seconds * 1000,
      xs: h.timestamps.map((t) => Date.parse(t)),
      base: {},
      shown: {},
      source: h.source,
      partial: h.partial,
      fetchedAt: performance.now(),
    };
    for (const m of METRICS) {
      const s = (h.series && h.series[m.key]) || {};
      const col = (name) => (Array.isArray(s[name]) ? s[name].slice() : view.xs.map(() => null));
      view.base[m.key] = { avg: col('avg'), min: col('min'), max: col('max') };
      view.shown[m.key] = { avg: col('avg'), min: col('min'), max: col('max') };
    }
    return view;
  }

  /** Keeps a live sample and folds it into the shown range's bucket. */
  function addLive(ms, sample) {
    if (!isNumber(ms)) return;
    const values = {};
    for (const m of METRICS) {
      const v = valueOf(sample, m.key);
      values[m.key] = isNumber(v) ? v : null;
    }
    state.recent.push({ ms, values });
    while (state.recent.length > RECENT_MAX || state.recent[0].ms < ms - RECENT_MAX_AGE_MS) {
      state.recent.shift();
    }
    const view = state.loaded[state.range];
    if (view) {
      foldSample(view, ms);
      slide(view, ms);
      renderSoon();
    }
  }

  /** Recomputes the bucket holding `ms` (appending buckets up to it: the ones between
   *  stay null, a gap). */
  function foldSample(view, ms) {
    if (view.xs.length === 0) return;
    const bucket = Math.floor(ms / view.stepMs) * view.stepMs;
    const i = Math.round((bucket - view.xs[0]) / view.stepMs);
    if (i < 0) return;
    while (view.xs.length <= i) {
      view.xs.push(view.xs[view.xs.length - 1] + view.stepMs);
      for (const m of METRICS) {
        for (const name of ['avg', 'min', 'max']) {
          view.base[m.key][name].push(null);
          view.shown[m.key][name].push(null);
        }
      }
    }
    recompute(view, i);
  }

  /** Bucket i as shown: the server's when it had one (its mean, with the extremes
   *  widened by live samples it did not have yet), else the live samples' own. */
  function recompute(view, i) {
    const from = view.xs[i];
    const to = from + view.stepMs;
    const inside = [];
    for (let k = state.recent.length - 1; k >= 0; k -= 1) {
      const r = state.recent[k];
      if (r.ms >= from && r.ms < to) inside.push(r);
      else if (r.ms < from - view.stepMs) break; // recent is in arrival order: close enough
    }
    for (const m of METRICS) {
      const base = view.base[m.key];
      const shown = view.shown[m.key];
      const live = inside.map((r) => r.values[m.key]).filter(isNumber);
      if (live.length === 0) {
        shown.avg[i] = base.avg[i];
        shown.min[i] = base.min[i];
        shown.max[i] = base.max[i];
      } else if (isNumber(base.avg[i])) {
        shown.avg[i] = base.avg[i];
        shown.min[i] = Math.min(isNumber(base.min[i]) ? base.min[i] : Infinity, ...live);
        shown.max[i] = Math.max(isNumber(base.max[i]) ? base.max[i] : -Infinity, ...live);
      } else {
        const mean = live.reduce((a, b) => a + b, 0) / live.length;
        shown.avg[i] = Math.round(mean * 10) / 10;
        shown.min[i] = Math.min(...live);
        shown.max[i] = Math.max(...live);
      }
    }
  }

  /** Drops the buckets that have left the range. */
  function slide(view, nowMs) {
    let drop = 0;
    while (drop < view.xs.length - 1 && view.xs[drop] + view.stepMs <= nowMs - view.spanMs) drop += 1;
    if (drop === 0) return;
    view.xs.splice(0, drop);
    for (const m of METRICS) {
      for (const name of ['avg', 'min', 'max']) {
        view.base[m.key][name].splice(0, drop);
        view.shown[m.key][name].splice(0, drop);
      }
    }
  }

  /** Folds every kept live sample into a freshly loaded view. */
  function foldRecent(view) {
    const done = new Set();
    for (const r of state.recent) {
      if (view.xs.length === 0 || r.ms < view.xs[0]) continue;
      const bucket = Math.floor(r.ms / view.stepMs) * view.stepMs;
      if (done.has(bucket)) continue;
      done.add(bucket);
      foldSample(view, r.ms);
    }
    if (state.lastSampleMs) slide(view, state.lastSampleMs);
  }

  async function loadHistory() {
    clearTimeout(state.historyTimer);
    state.historyTimer = null;
    const range = state.range;
    if (state.historyAbort) state.historyAbort.abort();
    const ctl = new AbortController();
    state.historyAbort = ctl;
    if (!state.loaded[range]) setHistoryNote('Loading ' + RANGES[range].words + '…');
    let refreshMs = HISTORY_REFRESH_MS;
    try {
      const r = await fetchJson('/metrics/history?start=-' + RANGES[range].seconds, HISTORY_TIMEOUT_MS, ctl.signal);
      if (ctl.signal.aborted || state.range !== range) return;
      if (r.status !== 200 || !r.body || !Array.isArray(r.body.timestamps)) {
        throw new Error((r.body && r.body.error) || 'the server answered ' + r.status);
      }
      const view = buildView(range, r.body);
      foldRecent(view);
      state.loaded[range] = view;
      refreshMs = Math.max(HISTORY_REFRESH_MS, view.stepMs);
      let note = 'Buckets of ' + fmtDuration(view.stepMs) + ' from ' + view.source + '.';
      if (view.partial) note += ' Partial: the range reaches past the service\'s memory, and the database (disabled or unreachable) could not answer for that part.';
      setHistoryNote(note);
      render();
    } catch (e) {
      if (ctl.signal.aborted && state.historyAbort !== ctl) return; // replaced by a newer load
      setHistoryNote('History unavailable (' + errorText(e) + '); retrying.');
      refreshMs = 10000;
    } finally {
      if (state.historyAbort === ctl) {
        state.historyAbort = null;
        state.historyTimer = setTimeout(loadHistory, refreshMs);
      }
    }
  }

  /** After a gap in the stream: refetch soon (once, however many gaps). */
  function soonReloadHistory() {
    if (state.historyAbort) return;
    clearTimeout(state.historyTimer);
    state.historyTimer = setTimeout(loadHistory, 2000);
  }

  function setHistoryNote(text) {
    $('#history-note').textContent = text;
  }

  /** The colours of the current scheme, from the style sheet's custom properties. */
  function palette() {
    const css = getComputedStyle(document.documentElement);
    const get = (name) => css.getPropertyValue(name).trim();
    const colours = { text: get('--muted'), grid: get('--grid') };
    for (const m of METRICS) {
      colours[m.key] = { line: get('--c-' + m.key), band: get('--c-' + m.key + '-band'), edge: get('--c-' + m.key + '-edge') };
    }
    return colours;
  }

  /** The x range: the whole span, ending at the newest data, so a service that started
   *  a minute ago shows a minute at the right edge of an hour. */
  function xRange() {
    const view = state.loaded[state.range];
    let end = Date.now();
    if (view && view.xs.length) end = view.xs[view.xs.length - 1] + view.stepMs;
    if (isNumber(state.lastSampleMs)) end = Math.max(end, state.lastSampleMs);
    const span = RANGES[state.range].seconds * 1000;
    return [(end - span) / 1000, end / 1000];
  }

  function yRange(metric) {
    if (metric.percent) return () => [0, 100];
    return (u, min, max) => {
      if (!isNumber(min) || !isNumber(max)) return [0, 100];
      return [Math.floor(Math.min(min, 30) / 10) * 10, Math.ceil((max + 5) / 10) * 10];
    };
  }

  /** Buckets to mark with a dot: those of a run of data too short to see as a line (a
   *  lone bucket between gaps, or the first minute of an hour). Gaps stay gaps. */
  function shortRuns(u, seriesIdx) {
    const xs = u.data[0];
    const ys = u.data[seriesIdx];
    const marked = [];
    let i = 0;
    while (i < ys.length) {
      if (ys[i] == null) {
        i += 1;
        continue;
      }
      let j = i;
      while (j + 1 < ys.length && ys[j + 1] != null) j += 1;
      const px = u.valToPos(xs[j], 'x') - u.valToPos(xs[i], 'x');
      if (px < 4) for (let k = i; k <= j; k += 1) marked.push(k);
      i = j + 1;
    }
    return marked.length ? marked : null;
  }

  function createCharts() {
    const colours = palette();
    for (const m of METRICS) {
      const el = $('[data-chart="' + m.key + '"] .chart');
      el.replaceChildren();
      const c = colours[m.key];
      const readout = document.createElement('p');
      readout.className = 'readout';
      const axis = {
        stroke: colours.text,
        grid: { stroke: colours.grid, width: 1 },
        ticks: { stroke: colours.grid, width: 1 },
      };
      const opts = {
        width: Math.max(200, el.clientWidth),
        height: CHART_HEIGHT,
        series: [
          {},
          { label: 'highest', stroke: c.edge, width: 1, points: { show: false } },
          { label: 'lowest', stroke: c.edge, width: 1, points: { show: false } },
          {
            label: 'mean',
            stroke: c.line,
            width: 2,
            points: { show: false, filter: shortRuns, size: 5, fill: c.line, stroke: c.line },
          },
        ],
        // The min–max band, so a short peak stays visible in long buckets.
        bands: [{ series: [1, 2], fill: c.band }],
        scales: { x: { time: true, range: xRange }, y: { range: yRange(m) } },
        axes: [
          axis,
          Object.assign({}, axis, { size: 62, values: (u, splits) => splits.map((v) => v + (m.unit === '%' ? ' %' : ' ' + m.unit)) }),
        ],
        cursor: { drag: { x: false, y: false } },
        // No legend table: the caption says latest, lowest and highest, and the cursor's
        // bucket is read out below the chart.
        legend: { show: false },
        hooks: { setCursor: [(u) => readOut(u, m, readout)] },
      };
      state.charts[m.key] = new uPlot(opts, chartData(m.key), el);
      el.appendChild(readout);
    }
  }

  /** The bucket under the cursor, in words ("" when the cursor is off the chart). */
  function readOut(u, metric, el) {
    const i = u.cursor.idx;
    let text = '';
    if (i != null && u.data[0][i] != null) {
      const mean = u.data[3][i];
      text = fmtTime(u.data[0][i] * 1000) + ': ';
      text += isNumber(mean)
        ? 'mean ' + withUnit(mean, metric.unit) + ', ' + withUnit(u.data[2][i], metric.unit)
          + ' to ' + withUnit(u.data[1][i], metric.unit)
        : 'no data';
    }
    if (el.textContent !== text) el.textContent = text;
  }

  function destroyCharts() {
    for (const key of Object.keys(state.charts)) {
      state.charts[key].destroy();
      delete state.charts[key];
    }
  }

  function chartData(key) {
    const view = state.loaded[state.range];
    if (!view) return [[], [], [], []];
    const s = view.shown[key];
    return [view.xs.map((x) => x / 1000), s.max, s.min, s.avg];
  }

  /** Redraws at the next frame, once however many samples came (a resume can bring an
   *  hour of them at once); a hidden tab draws when it is shown again. */
  function renderSoon() {
    if (state.renderPending) return;
    state.renderPending = true;
    requestAnimationFrame(() => {
      state.renderPending = false;
      render();
    });
  }

  /** Redraws the charts and writes their text alternative: latest, lowest and highest
   *  of the range in each caption (also as data-* for scripts). */
  function render() {
    const view = state.loaded[state.range];
    const words = RANGES[state.range].words;
    for (const m of METRICS) {
      const chart = state.charts[m.key];
      if (chart) chart.setData(chartData(m.key));
      const figure = $('[data-chart="' + m.key + '"]');
      const summary = $('.summary', figure);
      if (!view) {
        summary.textContent = 'loading ' + words;
        continue;
      }
      const s = view.shown[m.key];
      let points = 0;
      let first = null;
      let last = null;
      let lowest = Infinity;
      let highest = -Infinity;
      for (let i = 0; i < view.xs.length; i += 1) {
        if (isNumber(s.avg[i])) {
          points += 1;
          if (first === null) first = i;
          last = i;
        }
        if (isNumber(s.min[i])) lowest = Math.min(lowest, s.min[i]);
        if (isNumber(s.max[i])) highest = Math.max(highest, s.max[i]);
      }
      figure.dataset.points = String(points);
      figure.dataset.first = first === null ? '' : String(view.xs[first]);
      figure.dataset.last = last === null ? '' : String(view.xs[last]);
      summary.textContent = points === 0
        ? 'no data in ' + words
        : 'latest ' + withUnit(s.avg[last], m.unit) + ', lowest ' + withUnit(lowest, m.unit)
          + ', highest ' + withUnit(highest, m.unit) + ' in ' + words;
    }
  }

  function chooseRange(range) {
    if (!RANGES[range] || range === state.range) return;
    state.range = range;
    for (const b of document.querySelectorAll('[data-range]')) {
      b.setAttribute('aria-pressed', String(b.dataset.range === range));
    }
    const view = state.loaded[range];
    if (view) {
      foldRecent(view); // catch up with the samples shown while another range was
      setHistoryNote('Refreshing ' + RANGES[range].words + '…');
    }
    render();
    for (const key of Object.keys(state.charts)) state.charts[key].redraw(true, true);
    loadHistory();
  }

  // ---- GPUs ----------------------------------------------------------------------

  function cell(row, label, text, className) {
    const td = document.createElement('td');
    td.dataset.label = label;
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  async function pollGpu() {
    const summary = $('#gpu-summary');
    const table = $('#gpu-table');
    let g;
    try {
      const r = await fetchJson('/gpu', POLL_TIMEOUT_MS);
      if (r.status !== 200 || !r.body) throw new Error((r.body && r.body.error) || 'the server answered ' + r.status);
      g = r.body;
    } catch (e) {
      summary.textContent = 'GPUs unknown: ' + errorText(e);
      return;
    }
    const devices = Array.isArray(g.gpus) ? g.gpus : [];
    if (!g.available) {
      summary.textContent = 'No GPU' + (g.reason ? ': ' + g.reason : '') + '.';
      table.hidden = true;
      return;
    }
    const facts = [devices.length + (devices.length === 1 ? ' device' : ' devices'), 'backend ' + g.backend];
    if (g.driver_version) facts.push('driver ' + g.driver_version);
    if (g.board_model) facts.push(g.board_model);
    if (g.l4t_release) facts.push('L4T ' + g.l4t_release);
    summary.textContent = facts.join(' · ');
    const rows = devices.map((d) => {
      const tr = document.createElement('tr');
      cell(tr, 'GPU', d.index + (d.name ? ' · ' + d.name : ''));
      cell(tr, 'Utilisation', withUnit(d.utilization, '%'));
      let memory = fmtBytes(d.memory_used) + ' / ' + fmtBytes(d.memory_total);
      if (isNumber(d.memory_used) && isNumber(d.memory_total) && d.memory_total > 0) {
        memory += ' (' + Math.round((d.memory_used / d.memory_total) * 100) + ' %)';
      }
      cell(tr, 'Memory', memory);
      cell(tr, 'Temperature', withUnit(d.temperature, '°C'));
      const watts = (w) => (isNumber(w) ? w.toFixed(1) : '—');
      cell(tr, 'Power / limit', watts(d.power_draw) + ' / ' + watts(d.power_limit) + ' W');
      const reasons = Array.isArray(d.throttle_reasons)
        ? (d.throttle_reasons.length ? d.throttle_reasons.join(', ') : 'none')
        : '—';
      cell(tr, 'Throttling', reasons);
      cell(tr, 'State', d.healthy ? 'healthy' : 'unhealthy' + (d.error ? ': ' + d.error : ''),
        d.healthy ? 'ok' : 'bad');
      return tr;
    });
    $('tbody', table).replaceChildren(...rows);
    table.hidden = false;
  }

  // ---- health --------------------------------------------------------------------

  async function pollHealth() {
    let h;
    let status;
    try {
      const r = await fetchJson('/health', POLL_TIMEOUT_MS);
      // A 503 carries the same body (no sample for 3 intervals): show it.
      if (!r.body || typeof r.body.status !== 'string') throw new Error('the server answered ' + r.status);
      h = r.body;
      status = r.status;
    } catch (e) {
      $('#health-status').textContent = 'no answer: ' + errorText(e);
      $('#health-status').dataset.state = 'bad';
      return;
    }
    if (isNumber(h.interval_seconds) && h.interval_seconds > 0) state.intervalMs = h.interval_seconds * 1000;
    if (h.host) {
      $('#host').textContent = h.host;
      document.title = h.host + ' · metrics-collector';
    }
    const st = $('#health-status');
    st.textContent = h.status + (status === 503 ? ' (not serving samples: 503)' : '');
    st.dataset.state = status === 503 ? 'bad' : h.status === 'ok' ? 'ok' : 'warn';
    const db = h.database || {};
    const dbEl = $('#health-database');
    dbEl.textContent = (db.state || '—') + (db.error ? ': ' + db.error : '');
    dbEl.dataset.state = db.state === 'connected' ? 'ok' : db.state === 'disabled' ? 'off' : 'bad';
    let pending = isNumber(db.pending_rows) ? String(db.pending_rows) : '—';
    if (isNumber(db.dropped_windows) && db.dropped_windows > 0) pending += ' (' + db.dropped_windows + ' windows dropped)';
    $('#health-pending').textContent = pending;
    $('#health-interval').textContent = isNumber(h.interval_seconds) ? h.interval_seconds + ' s' : '—';
    $('#health-uptime').textContent = isNumber(h.uptime_seconds) ? fmtDuration(h.uptime_seconds * 1000) : '—';
    $('#health-version').textContent = h.version || '—';
    const problems = Array.isArray(h.problems) ? h.problems : [];
    const items = problems.map((p) => {
      const li = document.createElement('li');
      li.textContent = p;
      return li;
    });
    if (items.length === 0) {
      const li = document.createElement('li');
      li.className = 'none';
      li.textContent = 'none';
      items.push(li);
    }
    $('#problems').replaceChildren(...items);
  }

  // ---- start ---------------------------------------------------------------------

  function start() {
    for (const b of document.querySelectorAll('[data-range]')) {
      b.addEventListener('click', () => chooseRange(b.dataset.range));
    }
    openStream();
    setInterval(updateFreshness, 250);
    every(POLL_MS, pollHealth);
    every(POLL_MS, pollGpu);
    if (typeof uPlot === 'function') {
      createCharts();
      // Charts follow their box (a phone turned, a window resized).
      const resize = new ResizeObserver(() => {
        for (const m of METRICS) {
          const chart = state.charts[m.key];
          const el = $('[data-chart="' + m.key + '"] .chart');
          if (chart && el.clientWidth > 0 && Math.abs(chart.width - el.clientWidth) > 1) {
            chart.setSize({ width: el.clientWidth, height: CHART_HEIGHT });
          }
        }
      });
      resize.observe($('.charts'));
      // Light and dark: the canvas colours come from the style sheet, so the charts are
      // made again when the scheme changes.
      matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
        destroyCharts();
        createCharts();
        render();
      });
    } else {
      setHistoryNote('The chart library did not load; the numbers below are still live.');
    }
    loadHistory();
  }

  start();
})();
