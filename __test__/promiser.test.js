'use strict'
// Differential tests of `sqlite3-cluster/promiser` against the real sqlite3Worker1Promiser of
// @sqlite.org/sqlite-wasm@3.54.1-build1 (docs/worker1.md#promiser). The real promiser drives the
// real Worker1 (reference-worker.mjs); ours drives our worker1.js, both through the
// `{postMessage, onmessage}` wrapper of the harness. A scenario logs how every call settled
// (normalized envelope, row messages given to a function callback, synchronous throws), and
// the two logs must be equal.
//
// The npm module's `sqlite3Worker1Promiser` export IS the v2 factory (the v1 function is not
// exported), so ours' v1 is compared with the real v2. The real module is ESM; jest (without
// --experimental-vm-modules) cannot import() it, so it is imported through Node's own loader.
//
// SQLITE3_CLUSTER_W1_REFERENCE_ONLY=1 runs the scenarios on the reference alone.

const path = require('path')
const url = require('url')
const vm = require('vm')
const threads = require('worker_threads')
const { isNativeError } = require('util').types
const { wrapWorker, normalize, newContext, fill, ourModulePath } = require('./worker1/harness')

const REFERENCE_ONLY = process.env.SQLITE3_CLUSTER_W1_REFERENCE_ONLY === '1'
const oursTest = REFERENCE_ONLY ? test.skip : test
const CALL_TIMEOUT = 10000

const importESM = vm.constants && vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER
  ? vm.runInThisContext('(specifier) => import(specifier)', {
    importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  })
  : (specifier) => import(specifier)

let realPromiser
beforeAll(async () => {
  const dir = path.dirname(require.resolve('@sqlite.org/sqlite-wasm/package.json'))
  const mod = await importESM(url.pathToFileURL(path.join(dir, 'dist', 'index.mjs')).href)
  realPromiser = mod.sqlite3Worker1Promiser
})

function ourPromiserModule() {
  const mod = require(ourModulePath('promiser'))
  return mod.sqlite3Worker1Promiser || mod
}

const wrappers = new Set()
const threadsToEnd = new Set()
afterEach(async () => {
  const all = [...wrappers].map((w) => w.close()).concat([...threadsToEnd].map((t) => t.terminate()))
  wrappers.clear()
  threadsToEnd.clear()
  await Promise.all(all)
})

function startWrapped(kind) {
  const worker = wrapWorker(kind)
  wrappers.add(worker)
  return worker
}

const withTimeout = (p, what) => {
  let timer
  return Promise.race([
    p,
    new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout: ${what}`)), CALL_TIMEOUT)
    }),
  ]).finally(() => clearTimeout(timer))
}

// A scenario's view of one side: `call(...args)` calls the promiser with `$TMP`/`$DBn` filled in
// and logs how it settled; `rows()` is a callback function that logs each row message it gets.
function makeEnv(promiser, tmp, log = []) {
  const ctx = newContext(tmp)
  const norm = (v) => normalize([v], ctx)[0]
  const env = {
    tmp,
    ids: ctx.opened,
    log,
    promiser,
    record: (entry) => log.push(entry),
    rows: () => (row) => log.push({ row: norm(row) }),
    async call(...args) {
      let p
      try {
        p = promiser(...args.map((a) => fill(a, env)))
      } catch (e) {
        log.push({ threw: `${e.name}: ${e.message}` })
        return e
      }
      try {
        const v = await withTimeout(p, JSON.stringify(args))
        log.push({ resolved: norm(v) })
        return v
      } catch (e) {
        log.push(isNativeError(e) ? { rejectedWithError: e.message } : { rejected: norm(e) })
        return e
      }
    },
  }
  return env
}

// Closes every db the side's worker has open, through the promiser.
async function closeAllVia(promiser) {
  for (let i = 0; i < 50; i++) {
    const res = await withTimeout(promiser({ type: 'close', args: {} }), 'close')
    if (res.result.filename === undefined) return
  }
}

// One side: its wrapped worker, the promiser (real v2 for the reference; ours' v2 or v1) and a
// temp dir. `config({ record })` makes extra promiser config; `record` adds to the side's log.
async function side(kind, { version = 'v2', config = () => ({}) } = {}) {
  const worker = startWrapped(kind)
  const log = []
  const cfg = { ...config({ record: (entry) => log.push(entry) }), worker }
  let promiser
  if (kind === 'reference') {
    promiser = await withTimeout(realPromiser(cfg), 'ready')
  } else if (version === 'v1') {
    promiser = await withTimeout(new Promise((resolve) => {
      ourPromiserModule()({ ...cfg, onready: resolve })
    }), 'ready')
  } else {
    promiser = await withTimeout(ourPromiserModule().v2(cfg), 'ready')
  }
  const tmp = await worker.mkdtemp()
  return { worker, promiser, env: makeEnv(promiser, tmp, log) }
}

async function run(kind, body, opts) {
  const s = await side(kind, opts)
  await body(s.env, s)
  return s.env.log
}

// Runs the scenario on both sides; the logs must be equal. Resolves with the reference's log.
async function same(body, opts) {
  if (REFERENCE_ONLY) return run('reference', body, opts)
  const [expected, actual] = await Promise.all([run('reference', body, opts), run('ours', body, opts)])
  expect(actual).toStrictEqual(expected)
  return expected
}

const settled = (entry) => entry.resolved || entry.rejected

describe('Promiser: the same answers as the real one', () => {
  test('both call forms resolve with the whole response envelope; messageIds are "<type>#<n>"', async () => {
    const log = await same(async (env) => {
      await env.call('open', { filename: '$TMP/p.db' })
      await env.call({ type: 'exec', args: { sql: 'pragma page_size = 4096; create table t(a); insert into t values(1), (2)' } })
      await env.call('exec', { sql: 'select a from t order by a', rowMode: 'object' })
      await env.call({ type: 'exec', dbId: '$DB1', args: { sql: 'select a from t order by a', rowMode: 0 } })
      await env.call('exec', { sql: 'select count(*) from t', rowMode: 0, dbId: '$DB1' })
      await env.call('config-get', {})
      await env.call({ type: 'config-get', messageId: 'overwritten' })
      await env.call('export', {})
      await env.call('close', {})
    })
    expect(log.map((e) => settled(e).messageId)).toStrictEqual([
      'open#1', 'exec#1', 'exec#2', 'exec#3', 'exec#4', 'config-get#1', 'config-get#2', 'export#1', 'close#1',
    ])
    expect(log[0].resolved).toStrictEqual({
      type: 'open',
      dbId: 'DB1',
      messageId: 'open#1',
      result: { filename: '$TMP/p.db', persistent: false, dbId: 'DB1', vfs: '<vfs>' },
    })
    expect(log[2].resolved.result.resultRows).toStrictEqual([{ a: 1 }, { a: 2 }])
    // In the two-argument form the dbId travels in args, and so comes back in the result.
    expect(log[4].resolved.result).toMatchObject({ dbId: 'DB1', resultRows: [2] })
  })

  test('a function callback gets each row message, then the sentinel, before the promise resolves', async () => {
    const log = await same(async (env) => {
      await env.call('open', { filename: ':memory:' })
      await env.call('exec', { sql: "create table t(a, b); insert into t values(1, 'x'), (2, 'y')" })
      await env.call('exec', { sql: 'select a, b from t order by a', callback: env.rows() })
      await env.call({ type: 'exec', args: { sql: 'select a, b from t order by a', rowMode: 'object', callback: env.rows() } })
      await env.call('exec', { sql: 'select a from t where 0', callback: env.rows(), rowMode: 0 })
      await env.call('exec', { sql: "select x'0102' as b", callback: env.rows() })
    })
    expect(log.slice(2, 6)).toStrictEqual([
      { row: { type: 'exec#2:row', columnNames: ['a', 'b'], rowNumber: 1, row: [1, 'x'] } },
      { row: { type: 'exec#2:row', columnNames: ['a', 'b'], rowNumber: 2, row: [2, 'y'] } },
      { row: { type: 'exec#2:row', columnNames: ['a', 'b'], rowNumber: null, row: undefined } },
      {
        resolved: {
          type: 'exec',
          dbId: 'DB1',
          messageId: 'exec#2',
          result: { sql: 'select a, b from t order by a', callback: 'exec#2:row', columnNames: ['a', 'b'] },
        },
      },
    ])
    expect(log[6].row.row).toStrictEqual({ a: 1, b: 'x' })
    expect(log.slice(10, 12).map((e) => Object.keys(e)[0])).toStrictEqual(['row', 'resolved'])
    expect(log[12].row.row).toStrictEqual([{ bytes: [1, 2] }])
  })

  test('an error mid-stream: the callback gets the rows but no sentinel, and the promise rejects', async () => {
    const log = await same(async (env) => {
      await env.call('open', { filename: ':memory:' })
      await env.call('exec', {
        sql: 'select a, abs(a) as m from (select 1 as a union all select -9223372036854775808)',
        callback: env.rows(),
      })
    })
    expect(log.slice(1).map((e) => Object.keys(e)[0])).toStrictEqual(['row', 'rejected'])
    expect(log[2].rejected.result.message).toBe('SQLITE_ERROR: sqlite3 result code 1: integer overflow')
  })

  test('an error response rejects with the whole error envelope, not an Error', async () => {
    const log = await same(async (env) => {
      await env.call('exec', { sql: 'select 1' })
      await env.call('open', { filename: ':memory:' })
      await env.call('exec', { sql: 'selec 1' })
      await env.call({ type: 'bogus', args: { x: 1 } })
      await env.call('toss', {})
      await env.call('open', { filename: '$TMP/x.db', simulateError: true })
      await env.call('config-get', {})
    })
    expect(log[0].rejected).toMatchObject({ type: 'error', dbId: undefined, messageId: 'exec#1' })
    expect(log[2].rejected).toStrictEqual({
      type: 'error',
      dbId: 'DB1',
      messageId: 'exec#2',
      result: {
        operation: 'exec',
        message: 'SQLITE_ERROR: sqlite3 result code 1: near "selec": syntax error',
        errorClass: 'SQLite3Error',
        input: { type: 'exec', args: { sql: 'selec 1' }, dbId: 'DB1', messageId: 'exec#2' },
        stack: true,
      },
    })
    expect(log[3].rejected.result.message).toBe('Unknown db worker message type: bogus')
    expect(log[6].resolved.type).toBe('config-get')
  })

  test('synchronous throws: a string callback, a wrong argument count, a lone string', async () => {
    const log = await same(async (env) => {
      await env.call('open', { filename: ':memory:' })
      await env.call('exec', { sql: 'select 1', callback: 'cb' })
      await env.call('exec', { sql: 'select 1' })
      await env.call()
      await env.call('exec', { sql: 'select 1' }, 'extra')
      await env.call('config-get')
    })
    expect(log[1]).toStrictEqual({ threw: 'Error: exec callback may not be a string when using the Promise interface.' })
    // The failed call used up exec#1.
    expect(log[2].resolved.messageId).toBe('exec#2')
    expect(log[3]).toStrictEqual({ threw: 'Error: Invalid arguments for sqlite3Worker1Promiser()-created factory.' })
    expect(log[5]).toStrictEqual({ threw: "TypeError: Cannot create property 'dbId' on string 'config-get'" })
  })

  test('the remembered dbId: set by the first open, cleared when that db is closed, re-armed by the next open', async () => {
    const where = { sql: 'pragma database_list', rowMode: '$file' }
    const log = await same(async (env) => {
      await env.call('open', { filename: '$TMP/A.db' })
      await env.call('open', { filename: '$TMP/B.db' })
      await env.call('exec', where)
      await env.call('close', {})
      await env.call('exec', where)
      await env.call('open', { filename: '$TMP/C.db' })
      await env.call('exec', where)
      await env.call({ type: 'close' })
      await env.call('exec', where)
      await env.call('close', {})
    })
    const at = (i) => settled(log[i])
    expect(at(2)).toMatchObject({ dbId: 'DB1', result: { resultRows: ['$TMP/A.db'] } })
    expect(at(3)).toMatchObject({ dbId: 'DB1', result: { filename: '$TMP/A.db' } })
    expect(at(4)).toMatchObject({ dbId: 'DB2', result: { resultRows: ['$TMP/B.db'] } })
    expect(at(6)).toMatchObject({ dbId: 'DB3', result: { resultRows: ['$TMP/C.db'] } })
    expect(at(7)).toMatchObject({ dbId: 'DB3', result: { filename: '$TMP/C.db' } })
    expect(at(8)).toMatchObject({ dbId: 'DB2', result: { resultRows: ['$TMP/B.db'] } })
    expect(at(9)).toMatchObject({ dbId: undefined, result: { filename: '$TMP/B.db' } })
  })

  test('generateMessageId replaces the default ids', async () => {
    const config = () => {
      let n = 0
      return { generateMessageId: (msg) => `${msg.type}/${++n}` }
    }
    const log = await same(async (env) => {
      await env.call('open', { filename: ':memory:' })
      await env.call('exec', { sql: 'select 1 as one', callback: env.rows() })
      await env.call('exec', { sql: 'selec' })
    }, { config })
    expect(log.map((e) => (e.row || settled(e)).messageId || e.row.type))
      .toStrictEqual(['open/1', 'exec/2:row', 'exec/2:row', 'exec/2', 'exec/3'])
  })

  test('a message that matches nothing goes to onunhandled (with the event), else to onerror', async () => {
    const stray = { type: 'stray', messageId: 'nobody' }
    const unhandled = await same(async (env, s) => {
      s.worker.onmessage({ data: stray })
      await env.call('config-get', {})
    }, { config: ({ record }) => ({ onunhandled: (event) => record({ onunhandled: Object.keys(event), data: event.data }) }) })
    expect(unhandled[0]).toStrictEqual({ onunhandled: ['data'], data: stray })

    const errors = await same(async (env, s) => {
      s.worker.onmessage({ data: stray })
    }, { config: ({ record }) => ({ onerror: (...args) => record({ onerror: args }) }) })
    expect(errors).toStrictEqual([{ onerror: ['sqlite3Worker1Promiser() unhandled worker message:', stray] }])
  })
})

describe('Promiser: factories', () => {
  // v2 resolves with the promiser after awaiting config.onready (which it replaces with its own),
  // and rejects when onready throws.
  async function v2Story(kind) {
    const factory = kind === 'reference' ? realPromiser : ourPromiserModule().v2
    const story = []
    const onready = async (fn) => {
      story.push(`onready(${typeof fn})`)
      await new Promise((resolve) => setTimeout(resolve, 20))
      story.push('onready done')
      onready.got = fn
    }
    const config = { worker: startWrapped(kind), onready }
    const promiser = await withTimeout(factory(config), 'v2')
    story.push(`resolved: same function as onready got: ${promiser === onready.got}`)
    story.push(`config.onready replaced: ${typeof config.onready === 'function' && config.onready !== onready}`)
    const failing = factory({ worker: startWrapped(kind), onready: () => { throw new Error('onready failed') } })
    story.push(await withTimeout(failing, 'v2').then(() => 'resolved', (e) => `rejected: ${e.message}`))
    return story
  }

  test('v2 awaits onready, resolves with the function it was given, and rejects when onready throws', async () => {
    const expected = await v2Story('reference')
    expect(expected).toStrictEqual([
      'onready(function)',
      'onready done',
      'resolved: same function as onready got: true',
      'config.onready replaced: true',
      'rejected: onready failed',
    ])
    if (!REFERENCE_ONLY) expect(await v2Story('ours')).toStrictEqual(expected)
  })

  const shortStory = async (env) => {
    await env.call('open', { filename: ':memory:' })
    await env.call('exec', { sql: 'select 1 as one, 2 as two', rowMode: 'object', callback: env.rows() })
    await env.call('exec', { sql: 'nope' })
    await env.call('close', {})
  }

  oursTest('v1 returns the promiser at once and passes it to onready; it answers like the real one', async () => {
    const worker = startWrapped('ours')
    let readyWith
    const ready = new Promise((resolve) => {
      readyWith = resolve
    })
    const promiser = ourPromiserModule()({ worker, onready: (fn) => readyWith(fn) })
    expect(typeof promiser).toBe('function')
    expect(await withTimeout(ready, 'onready')).toBe(promiser)
    const env = makeEnv(promiser, await worker.mkdtemp())
    await shortStory(env)
    expect(env.log).toStrictEqual(await run('reference', shortStory))
  })

  oursTest('with no worker in the config, v2 starts our Worker1 in a worker thread', async () => {
    const Original = threads.Worker
    const started = []
    threads.Worker = class TrackedWorker extends Original {
      constructor(...args) {
        super(...args)
        started.push(this)
        threadsToEnd.add(this)
      }
    }
    let promiser
    try {
      let factory
      jest.isolateModules(() => {
        factory = ourPromiserModule()
      })
      promiser = await withTimeout(factory.v2(), 'v2()')
    } finally {
      threads.Worker = Original
    }
    expect(started).toHaveLength(1)
    const env = makeEnv(promiser, '')
    try {
      await shortStory(env)
    } finally {
      await closeAllVia(promiser)
    }
    expect(env.log).toStrictEqual(await run('reference', shortStory))
  })

  oursTest('blobs with a function callback and resultRows resolve normally (the real one never answers)', async () => {
    const log = await run('ours', async (env) => {
      await env.call('open', { filename: ':memory:' })
      await env.call('exec', { sql: "select x'0102' as b", callback: env.rows(), resultRows: [] })
    })
    expect(log.slice(1)).toStrictEqual([
      { row: { type: 'exec#1:row', columnNames: ['b'], rowNumber: 1, row: [{ bytes: [1, 2] }] } },
      { row: { type: 'exec#1:row', columnNames: ['b'], rowNumber: null, row: undefined } },
      {
        resolved: {
          type: 'exec',
          dbId: 'DB1',
          messageId: 'exec#1',
          result: {
            sql: "select x'0102' as b",
            callback: 'exec#1:row',
            resultRows: [[{ bytes: [1, 2] }]],
            columnNames: ['b'],
          },
        },
      },
    ])
  })
})
