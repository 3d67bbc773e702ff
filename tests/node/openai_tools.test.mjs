// Tools and structured output through the official `openai` npm client, against a running
// `ember agent` serving stories260K (started by agent/tests/api_node.sh). stories260K knows
// nothing of JSON or tools: every call and every JSON answer here is well formed only because
// the server constrains sampling to the tool list / schema. Each test validates what the
// client received against the schema with the validator below (independent of the server).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.EMBER_API_BASE;
const apiKey = process.env.EMBER_API_KEY;
if (!baseURL || !apiKey) {
  console.error('EMBER_API_BASE and EMBER_API_KEY must be set (run via agent/tests/api_node.sh)');
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60000 });
const MODEL = 'stories260K';

// A Home Assistant-style light control (the names follow HA's intents: HassTurnOn,
// HassLightSet). maxLength bounds the strings a 260K-parameter model would otherwise run on.
const tools = [
  {
    type: 'function',
    function: {
      name: 'HassTurnOn',
      description: 'Turns on a light or switch',
      parameters: {
        type: 'object',
        properties: { name: { type: 'string', maxLength: 24 }, area: { type: 'string', maxLength: 24 } },
        required: ['name'],
        additionalProperties: false,
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'HassLightSet',
      description: 'Sets the brightness of a light',
      parameters: {
        type: 'object',
        properties: {
          name: { type: 'string', maxLength: 24 },
          brightness: { type: 'integer' },
          color: { enum: ['red', 'green', 'blue', 'white'] },
        },
        required: ['name', 'brightness'],
        additionalProperties: false,
      },
    },
  },
];
const schema = {
  type: 'object',
  properties: {
    room: { type: 'string', maxLength: 20 },
    lights_on: { type: 'integer' },
    dimmed: { type: 'boolean' },
    mood: { enum: ['cozy', 'bright', null] },
  },
  required: ['room', 'lights_on', 'dimmed', 'mood'],
  additionalProperties: false,
};

// Validates v against the subset of JSON Schema used above; returns '' or why not.
function invalid(v, s) {
  if (s.enum) return s.enum.some((e) => e === v) ? '' : `not in enum: ${JSON.stringify(v)}`;
  switch (s.type) {
    case 'string':
      if (typeof v !== 'string') return 'not a string';
      if (s.maxLength !== undefined && [...v].length > s.maxLength) return 'string too long';
      return '';
    case 'integer':
      return Number.isInteger(v) ? '' : 'not an integer';
    case 'boolean':
      return typeof v === 'boolean' ? '' : 'not a boolean';
    case 'object': {
      if (!v || typeof v !== 'object' || Array.isArray(v)) return 'not an object';
      for (const r of s.required || []) if (!(r in v)) return `missing ${r}`;
      for (const [k, x] of Object.entries(v)) {
        if (!s.properties[k]) return `extra property ${k}`;
        const why = invalid(x, s.properties[k]);
        if (why) return `${k}: ${why}`;
      }
      return '';
    }
    default:
      return `validator does not know ${s.type}`;
  }
}

function checkCall(call) {
  assert.equal(call.type, 'function');
  assert.match(call.id, /^call_/);
  const tool = tools.find((t) => t.function.name === call.function.name);
  assert.ok(tool, `unknown tool ${call.function.name}`);
  const args = JSON.parse(call.function.arguments);
  assert.equal(invalid(args, tool.function.parameters), '', call.function.arguments);
}

const question = [
  { role: 'system', content: 'You control the lights of a home.' },
  { role: 'user', content: 'Turn on the kitchen light.' },
];

test('tool round trip, not streamed: required call, tool result, final answer', async () => {
  const r = await client.chat.completions.create({
    model: MODEL, messages: question, tools, tool_choice: 'required', temperature: 1.0, seed: 11,
    max_tokens: 300, parallel_tool_calls: false,
  });
  const c = r.choices[0];
  assert.equal(c.finish_reason, 'tool_calls');
  assert.equal(c.message.content, null);
  assert.ok(c.message.tool_calls.length >= 1);
  for (const call of c.message.tool_calls) checkCall(call);
  const call = c.message.tool_calls[0];
  const history = [...question, c.message,
    { role: 'tool', tool_call_id: call.id, content: '{"success": true, "state": "on"}' }];
  const r2 = await client.chat.completions.create({
    model: MODEL, messages: history, tools, temperature: 0, max_tokens: 16,
  });
  const c2 = r2.choices[0];
  assert.ok(['stop', 'length', 'tool_calls'].includes(c2.finish_reason), c2.finish_reason);
  if (c2.finish_reason !== 'tool_calls') assert.equal(typeof c2.message.content, 'string');
});

async function streamedCall(params) {
  const stream = await client.chat.completions.create({ ...params, stream: true });
  const calls = [];
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    const ch = chunk.choices[0];
    if (!ch) continue;
    if (ch.delta?.content) text += ch.delta.content;
    for (const d of ch.delta?.tool_calls || []) {
      // as OpenAI's docs accumulate: the first fragment has id and name, later ones arguments
      calls[d.index] ??= { id: '', type: 'function', function: { name: '', arguments: '' } };
      const c = calls[d.index];
      if (d.id) c.id = d.id;
      if (d.function?.name) c.function.name += d.function.name;
      if (d.function?.arguments) c.function.arguments += d.function.arguments;
    }
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  return { calls, text, finish };
}

test('tool round trip, streamed: delta.tool_calls, then the tool result', async () => {
  const { calls, text, finish } = await streamedCall({
    model: MODEL, messages: question, tools, tool_choice: 'required', temperature: 1.0, seed: 5,
    max_tokens: 300, parallel_tool_calls: false,
  });
  assert.equal(finish, 'tool_calls');
  assert.equal(text, '');
  assert.ok(calls.length >= 1);
  for (const c of calls) checkCall(c);
  const history = [...question, { role: 'assistant', content: null, tool_calls: calls },
    { role: 'tool', tool_call_id: calls[0].id, content: 'ok' }];
  const second = await streamedCall({ model: MODEL, messages: history, tools, tool_choice: 'none',
    temperature: 0, max_tokens: 12 });
  assert.ok(['stop', 'length'].includes(second.finish), second.finish);
  assert.equal(second.calls.length, 0);
});

test('parallel calls: each complete call is reported, at most 8', async () => {
  const r = await client.chat.completions.create({
    model: MODEL, messages: question, tools, tool_choice: 'required', temperature: 1.0, seed: 21,
    max_tokens: 900,
  });
  const c = r.choices[0];
  assert.ok(['tool_calls', 'length'].includes(c.finish_reason), c.finish_reason);
  assert.ok(c.message.tool_calls.length >= 1 && c.message.tool_calls.length <= 8);
  for (const call of c.message.tool_calls) checkCall(call);
  const ids = new Set(c.message.tool_calls.map((x) => x.id));
  assert.equal(ids.size, c.message.tool_calls.length, 'call ids are unique');
});

test('tool_choice naming one function calls that function', async () => {
  const r = await client.chat.completions.create({
    model: MODEL, messages: question, tools, temperature: 1.0, seed: 3, max_tokens: 300,
    tool_choice: { type: 'function', function: { name: 'HassLightSet' } }, parallel_tool_calls: false,
  });
  const calls = r.choices[0].message.tool_calls;
  assert.equal(calls.length, 1);
  assert.equal(calls[0].function.name, 'HassLightSet');
  checkCall(calls[0]);
});

test('tool_choice auto: stories260K writes prose, which stays text', async () => {
  const r = await client.chat.completions.create({
    model: MODEL, messages: question, tools, temperature: 0, max_tokens: 24,
  });
  const c = r.choices[0];
  assert.ok(['stop', 'length'].includes(c.finish_reason), c.finish_reason);
  assert.equal(typeof c.message.content, 'string');
  assert.ok(!c.message.tool_calls || c.message.tool_calls.length === 0);
});

test('response_format json_schema, streamed and not, parses and validates', async () => {
  const response_format = { type: 'json_schema', json_schema: { name: 'room', strict: true, schema } };
  const r = await client.chat.completions.create({
    model: MODEL, messages: question, response_format, temperature: 1.0, seed: 9, max_tokens: 300,
  });
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(invalid(JSON.parse(r.choices[0].message.content), schema), '');
  const s = await streamedCall({ model: MODEL, messages: question, response_format,
    temperature: 1.0, seed: 10, max_tokens: 300 });
  assert.equal(s.finish, 'stop');
  assert.equal(invalid(JSON.parse(s.text), schema), '');
});

test('response_format json_object gives a JSON object', async () => {
  const r = await client.chat.completions.create({
    model: MODEL, messages: question, response_format: { type: 'json_object' }, temperature: 0.8,
    seed: 4, max_tokens: 400,
  });
  if (r.choices[0].finish_reason === 'stop') {
    const v = JSON.parse(r.choices[0].message.content);
    assert.equal(typeof v, 'object');
    assert.ok(!Array.isArray(v));
  } else {
    // unbounded nesting can outlast max_tokens; the text is then a prefix of an object
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.match(r.choices[0].message.content, /^\{/);
  }
});

test('6 sampled runs each over HTTP: every call and every answer validates', async () => {
  for (let seed = 100; seed < 106; seed++) {
    const r = await client.chat.completions.create({
      model: MODEL, messages: question, tools, tool_choice: 'required', temperature: 1.0, seed,
      max_tokens: 300, parallel_tool_calls: false,
    });
    assert.equal(r.choices[0].finish_reason, 'tool_calls', `seed ${seed}`);
    for (const call of r.choices[0].message.tool_calls) checkCall(call);
    const j = await client.chat.completions.create({
      model: MODEL, messages: question, temperature: 1.0, seed, max_tokens: 300,
      response_format: { type: 'json_schema', json_schema: { name: 'room', schema } },
    });
    assert.equal(j.choices[0].finish_reason, 'stop', `seed ${seed}`);
    assert.equal(invalid(JSON.parse(j.choices[0].message.content), schema), '', `seed ${seed}`);
  }
});

test('hostile schemas and bad tool_choice are 400s', async () => {
  await assert.rejects(client.chat.completions.create({
    model: MODEL, messages: question, tools: [{ type: 'function', function: { name: 'f',
      parameters: { type: 'string', pattern: '^x$' } } }],
  }), (e) => e instanceof OpenAI.BadRequestError && /pattern/.test(e.message));
  await assert.rejects(client.chat.completions.create({
    model: MODEL, messages: question, tools, tool_choice: { type: 'function', function: { name: 'Nope' } },
  }), (e) => e instanceof OpenAI.BadRequestError);
  let deep = {};
  for (let i = 0; i < 100; i++) deep = { type: 'array', items: deep };
  await assert.rejects(client.chat.completions.create({
    model: MODEL, messages: question,
    response_format: { type: 'json_schema', json_schema: { name: 'd', schema: deep } },
  }), (e) => e instanceof OpenAI.BadRequestError && /nested deeper/.test(e.message));
});
