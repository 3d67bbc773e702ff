// Ember's HTTP API through the official `openai` npm client, against a running `ember agent`
// (started by agent/api/tests/api_node.sh, which passes EMBER_API_BASE and EMBER_API_KEY). Chat and
// legacy completions, streamed and not, must agree with each other token for token at
// temperature 0; errors must surface as the client's typed exceptions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.EMBER_API_BASE;
const apiKey = process.env.EMBER_API_KEY;
if (!baseURL || !apiKey) {
  console.error('EMBER_API_BASE and EMBER_API_KEY must be set (run via agent/api/tests/api_node.sh)');
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30000 });
const MODEL = 'stories260K';
const messages = [
  { role: 'system', content: 'You tell short stories.' },
  { role: 'user', content: 'Tell me a story about a cat.' },
];

function checkUsage(usage, maxCompletion) {
  assert.ok(usage, 'usage present');
  assert.ok(usage.prompt_tokens > 0, `prompt_tokens ${usage.prompt_tokens}`);
  assert.ok(usage.completion_tokens >= 1 && usage.completion_tokens <= maxCompletion,
    `completion_tokens ${usage.completion_tokens}`);
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
}

function checkEnergy(energy) {
  assert.ok(energy && typeof energy === 'object', 'energy object present');
  for (const k of ['joules', 'joules_per_token', 'avg_watts']) {
    assert.ok(energy[k] === null || (typeof energy[k] === 'number' && energy[k] >= 0),
      `energy.${k} = ${energy[k]}`);
  }
}

test('models.list names the served model', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids, [MODEL]);
  const one = await client.models.retrieve(MODEL);
  assert.equal(one.id, MODEL);
  assert.equal(one.object, 'model');
});

test('chat completion, non-streaming', async () => {
  const r = await client.chat.completions.create({
    model: MODEL, messages, max_tokens: 24, temperature: 0, seed: 7,
  });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.model, MODEL);
  assert.equal(r.choices.length, 1);
  const c = r.choices[0];
  assert.equal(c.message.role, 'assistant');
  assert.equal(typeof c.message.content, 'string');
  assert.ok(c.message.content.length > 0, 'some text');
  assert.ok(['stop', 'length'].includes(c.finish_reason), c.finish_reason);
  checkUsage(r.usage, 24);
  if (c.finish_reason === 'length') assert.equal(r.usage.completion_tokens, 24);
  checkEnergy(r.energy);
});

test('chat streaming yields the same text as non-streaming', async () => {
  // repeat_penalty 1: with penalties the worker's text still depends on the KV cache's state.
  const params = { model: MODEL, messages, max_tokens: 32, temperature: 0, repeat_penalty: 1 };
  const whole = await client.chat.completions.create(params);
  const stream = await client.chat.completions.create({
    ...params, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let first = true;
  let finish = null;
  let usage = null;
  let chunks = 0;
  let id = null;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    id ??= chunk.id;
    assert.equal(chunk.id, id, 'one id for the whole stream');
    if (chunk.usage) {
      usage = chunk.usage;
      assert.equal(chunk.choices.length, 0, 'the usage chunk has no choices');
      checkEnergy(chunk.energy);
      continue;
    }
    const ch = chunk.choices[0];
    if (first) {
      assert.equal(ch.delta.role, 'assistant', 'the first delta carries the role');
      first = false;
    }
    assert.equal(finish, null, 'nothing after finish_reason but usage');
    if (ch.delta.content) text += ch.delta.content;
    if (ch.finish_reason) {
      finish = ch.finish_reason;
      checkEnergy(chunk.energy);
    }
  }
  assert.ok(chunks >= 3, `${chunks} chunks`);
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  checkUsage(usage, 32);
  assert.equal(usage.completion_tokens, whole.usage.completion_tokens);
  assert.equal(usage.prompt_tokens, whole.usage.prompt_tokens);
});

test('stream helper (runner) assembles the final message', async () => {
  const runner = client.chat.completions.stream({
    model: MODEL, messages, max_tokens: 16, temperature: 0,
  });
  const deltas = [];
  runner.on('content', (d) => deltas.push(d));
  const final = await runner.finalChatCompletion();
  assert.equal(final.choices[0].message.content, deltas.join(''));
  assert.ok(deltas.length > 0);
});

test('sampling parameters and seeds', async () => {
  const params = {
    model: MODEL, messages, max_completion_tokens: 20, temperature: 0.9, top_p: 0.95,
    presence_penalty: 0.2, frequency_penalty: 0.1, seed: 1234,
    // Ember's extensions ride along in the body.
    top_k: 40, min_p: 0.05, repeat_penalty: 1.0,
  };
  const a = await client.chat.completions.create(params);
  const b = await client.chat.completions.create(params);
  assert.equal(a.choices[0].message.content, b.choices[0].message.content, 'same seed, same text');
  assert.ok(a.usage.completion_tokens <= 20);
});

test('stop strings end the text before the match', async () => {
  const r = await client.chat.completions.create({
    model: MODEL, messages, max_tokens: 200, temperature: 0, stop: ['.', '!'],
  });
  const text = r.choices[0].message.content;
  assert.ok(!text.includes('.') && !text.includes('!'), `stop string leaked: ${text}`);
  assert.equal(r.choices[0].finish_reason, 'stop');
});

test('legacy completions, streamed and not', async () => {
  const params = {
    model: MODEL, prompt: 'Once upon a time', max_tokens: 20, temperature: 0, repeat_penalty: 1,
  };
  const r = await client.completions.create(params);
  assert.equal(r.object, 'text_completion');
  assert.match(r.id, /^cmpl-/);
  assert.ok(r.choices[0].text.length > 0);
  checkUsage(r.usage, 20);
  const stream = await client.completions.create({ ...params, stream: true });
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    text += chunk.choices[0].text;
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  assert.equal(text, r.choices[0].text);
  assert.equal(finish, r.choices[0].finish_reason);
});

test('a stream the client abandons leaves the agent serving', async () => {
  const stream = await client.completions.create({
    model: MODEL, prompt: 'Once upon a time', max_tokens: 400, temperature: 1, stream: true,
  });
  let n = 0;
  for await (const chunk of stream) {
    void chunk;
    if (++n === 3) {
      stream.controller.abort(); // closes the connection: the agent cancels the generation
      break;
    }
  }
  assert.equal(n, 3);
  const r = await client.completions.create({ model: MODEL, prompt: 'The dog', max_tokens: 4 });
  assert.ok(r.choices[0].text.length > 0);
});

test('errors arrive as typed client exceptions', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'gpt-4o', messages }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found');
  await assert.rejects(
    client.chat.completions.create({ model: MODEL, messages, temperature: 5 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'temperature');
  await assert.rejects(
    client.chat.completions.create({ model: MODEL, messages: [] }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages');
  const wrong = new OpenAI({ baseURL, apiKey: 'not-the-token', maxRetries: 0 });
  await assert.rejects(
    wrong.chat.completions.create({ model: MODEL, messages }),
    (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  await assert.rejects(
    client.chat.completions.create({ model: MODEL, messages, stream: true, max_tokens: 'x' }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'max_tokens');
});

test('PUT /v1/governor changes the policy shown by GET and /metrics', async () => {
  const root = baseURL.replace(/\/v1\/?$/, '');
  const auth = { Authorization: `Bearer ${apiKey}` };
  let r = await fetch(`${root}/v1/governor`, {
    method: 'PUT', headers: { ...auth, 'Content-Type': 'application/json' },
    body: JSON.stringify({ policy: 'powersave' }),
  });
  assert.equal(r.status, 200, await r.clone().text());
  assert.equal((await r.json()).policy, 'powersave');
  r = await fetch(`${root}/v1/governor`, { headers: auth });
  assert.equal((await r.json()).policy, 'powersave');
  r = await fetch(`${root}/metrics`, { headers: auth });
  assert.equal(r.status, 200);
  const text = await r.text();
  assert.match(text, /^ember_governor_policy\{policy="powersave"\} 1$/m);
  assert.match(text, /^ember_request_duration_seconds_count [1-9]\d*$/m);
  r = await fetch(`${root}/v1/governor`, {
    method: 'PUT', headers: { ...auth, 'Content-Type': 'application/json' },
    body: JSON.stringify({ policy: 'warp-speed' }),
  });
  assert.equal(r.status, 400);
  assert.equal((await r.json()).error.param, 'policy');
  r = await fetch(`${root}/health`);
  assert.equal(r.status, 200);
});
