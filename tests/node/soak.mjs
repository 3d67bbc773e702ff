// Soak load for scripts/soak: mixed API traffic through the official `openai` npm client against a
// running `ember agent` until EMBER_SOAK_UNTIL (ms since the epoch): chats and completions streamed
// and not, streams aborted after a few chunks, model listings, plain /health and /metrics and
// /v1/governor requests. Prints one JSON line of counters at the end: requests by kind, errors by
// kind.
import OpenAI from 'openai';

const baseURL = process.env.EMBER_API_BASE;
const apiKey = process.env.EMBER_API_KEY;
const until = Number(process.env.EMBER_SOAK_UNTIL);
const workers = Number(process.env.EMBER_SOAK_WORKERS || 3);
if (!baseURL || !apiKey || !until) {
  console.error('EMBER_API_BASE, EMBER_API_KEY and EMBER_SOAK_UNTIL must be set (run via scripts/soak)');
  process.exit(2);
}
const root = baseURL.replace(/\/v1$/, '');
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60000 });
const ok = {};
const errors = {};
const count = (o, k) => { o[k] = (o[k] || 0) + 1; };
const prompts = ['Once upon a time', 'The little dog', 'Lily went to the park', 'Tom had a red ball'];
const pick = (a) => a[Math.floor(Math.random() * a.length)];

const kinds = {
  async chat() {
    await client.chat.completions.create({ model: 'stories260K', max_tokens: 24,
      messages: [{ role: 'user', content: pick(prompts) }] });
  },
  async chat_stream() {
    const s = await client.chat.completions.create({ model: 'stories260K', max_tokens: 32, stream: true,
      stream_options: { include_usage: true }, messages: [{ role: 'user', content: pick(prompts) }] });
    for await (const _ of s) { /* read it all */ }
  },
  async completion() {
    await client.completions.create({ model: 'stories260K', prompt: pick(prompts), max_tokens: 16 });
  },
  async completion_stream() {
    const s = await client.completions.create({ model: 'stories260K', prompt: pick(prompts),
      max_tokens: 48, stream: true });
    for await (const _ of s) { /* read it all */ }
  },
  async aborted_stream() {
    const ac = new AbortController();
    const s = await client.chat.completions.create({ model: 'stories260K', max_tokens: 400, stream: true,
      messages: [{ role: 'user', content: pick(prompts) }] }, { signal: ac.signal });
    let n = 0;
    try {
      for await (const _ of s) { if (++n === 3) ac.abort(); }
    } catch (e) {
      if (e.name !== 'AbortError' && !(e instanceof OpenAI.APIUserAbortError)) throw e;
    }
  },
  async models() { await client.models.list(); },
  async health() {
    const r = await fetch(`${root}/health`);
    if (r.status !== 200) throw new Error(`health ${r.status}`);
    await r.text();
  },
  async metrics() {
    const r = await fetch(`${root}/metrics`, { headers: { Authorization: `Bearer ${apiKey}` } });
    if (r.status !== 200) throw new Error(`metrics ${r.status}`);
    await r.text();
  },
  async governor() {
    const r = await fetch(`${baseURL}/governor`, { method: 'PUT',
      headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ policy: pick(['balanced', 'powersave', 'efficiency']) }) });
    if (r.status !== 200 && r.status !== 404) throw new Error(`governor ${r.status}`);
    await r.text();
  },
};
const weights = [['chat', 3], ['chat_stream', 3], ['completion', 2], ['completion_stream', 2],
  ['aborted_stream', 2], ['models', 1], ['health', 2], ['metrics', 1], ['governor', 1]];
const bag = weights.flatMap(([k, w]) => Array(w).fill(k));

async function worker() {
  while (Date.now() < until) {
    const kind = pick(bag);
    try {
      await kinds[kind]();
      count(ok, kind);
    } catch (e) {
      const what = e instanceof OpenAI.APIError ? `${kind}:${e.status}:${e.code ?? e.type ?? ''}`
        : `${kind}:${e.name}:${String(e.message).slice(0, 60)}`;
      count(errors, what);
    }
  }
}
await Promise.all(Array.from({ length: workers }, worker));
const served = Object.values(ok).reduce((a, b) => a + b, 0);
console.log(JSON.stringify({ served, ok, errors }));
