// The real supabase-js (Node, no browser) against `make dev`'s Realtime
// endpoint: joins, refusals and deliveries, so a protocol failure reads
// plainly. Started by tests/browser/test_front_end.py, which passes the
// stack's URLs in the environment.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHmac, randomUUID } from 'node:crypto'
import WebSocket from 'ws'
import { createClient } from '@supabase/supabase-js'

const env = process.env
const USERS = {
  ada: { id: env.ADA_ID, mongo: 'ada' },
  bob: { id: env.BOB_ID, mongo: 'bob' },
  cy: { id: env.CY_ID, mongo: 'cy' },
}
const clients = []
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// An access token as GoTrue signs it (the local HS256 secret).
function token(user, ttlSeconds = 3600) {
  const now = Math.floor(Date.now() / 1000)
  const encode = (part) => Buffer.from(JSON.stringify(part)).toString('base64url')
  const claims = {
    iss: `${env.SUPABASE_URL}/auth/v1`, sub: USERS[user].id, aud: 'authenticated', role: 'authenticated', iat: now, exp: now + ttlSeconds,
    app_metadata: { provider: 'email', mongo_user_id: USERS[user].mongo }, user_metadata: {},
  }
  const unsigned = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(claims)}`
  return `${unsigned}.${createHmac('sha256', env.JWT_SECRET).update(unsigned).digest('base64url')}`
}

// As a front end does it: the token comes from elsewhere (our `token`
// function), supabase-js asks for it through `accessToken`.
async function connect(accessToken, realtime = {}) {
  const holder = { token: accessToken }
  const supabase = createClient(env.SUPABASE_URL, env.SUPABASE_ANON_KEY, {
    accessToken: async () => holder.token,
    realtime: { transport: WebSocket, ...realtime },
  })
  await supabase.realtime.setAuth(accessToken)
  clients.push(supabase)
  return { supabase, holder }
}

// Subscribes; resolves with the first outcome (SUBSCRIBED, CHANNEL_ERROR, ...).
function subscribe(channel) {
  return new Promise((resolve) => {
    let settled = false
    channel.subscribe((status, error) => {
      if (!settled) resolve({ status, error })
      settled = true
    })
  })
}

async function waitFor(predicate, ms = 3000) {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (predicate()) return true
    await sleep(20)
  }
  return predicate()
}

async function api(user, path, body) {
  const response = await fetch(`${env.API_URL}${path}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token(user)}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  })
  const text = await response.text()
  assert.ok(response.ok, `${path}: ${response.status} ${text}`)
  return JSON.parse(text)
}

function threadChannel(supabase, received, name = 'chat:ada__bob', isPrivate = true) {
  return supabase
    .channel(name, { config: { private: isPrivate } })
    .on('broadcast', { event: '*' }, (message) => received.push(message))
}

test.before(async () => {
  await api('ada', '/chat/threads/ensure', { other_mongo_id: 'bob' })
})

test.after(async () => {
  await Promise.all(clients.map((c) => c.removeAllChannels()))
})

test('a participant joins chat:<thread_id> and receives the messages written to the thread', async () => {
  // Given Ada and Bob on their private thread channel
  const { supabase: ada } = await connect(token('ada'))
  const { supabase: bob } = await connect(token('bob'))
  const adaGot = [], bobGot = []
  const adaChannel = threadChannel(ada, adaGot)
  assert.equal((await subscribe(adaChannel)).status, 'SUBSCRIBED')
  assert.equal((await subscribe(threadChannel(bob, bobGot))).status, 'SUBSCRIBED')

  // When Bob writes to Ada through the chat-message function
  const body = `hello ${randomUUID()}`
  const sent = await api('bob', '/chat/messages', { thread_id: 'ada__bob', body })

  // Then the row broadcast by the database reaches both of them
  assert.ok(await waitFor(() => adaGot.length && bobGot.length), 'no broadcast arrived')
  const { event, payload } = adaGot[0]
  assert.equal(event, 'INSERT')
  assert.equal(payload.operation, 'INSERT')
  assert.equal(payload.table, 'chat_messages')
  assert.equal(payload.record.id, sent.id)
  assert.equal(payload.record.body, body)
  assert.equal(payload.record.sender_mongo_id, 'bob')

  // And a broadcast Ada sends from the client, even one copying the database's
  // own INSERT with Bob as sender, never reaches Bob: no client may send on a
  // chat channel (the write check fails), so a message can only come from the database
  const forged = { ...payload, record: { ...payload.record, id: randomUUID(), body: 'forged' } }
  await adaChannel.send({ type: 'broadcast', event: 'INSERT', payload: forged })
  await adaChannel.send({ type: 'broadcast', event: 'typing', payload: { who: 'ada' } })
  await sleep(500)
  assert.ok(!bobGot.some((m) => m.payload?.record?.body === 'forged'), 'a forged message arrived')
  assert.ok(!bobGot.some((m) => m.event === 'typing'), 'a client broadcast arrived')
  assert.equal(bobGot.length, 1)
})

test('a user outside the thread is refused the private channel and receives nothing', async () => {
  // Given Cy, signed in but in no thread with Ada or Bob
  const { supabase: cy } = await connect(token('cy'))
  const { supabase: cyAgain } = await connect(token('cy'))
  const privateGot = [], publicGot = []

  // When Cy joins chat:ada__bob privately, and as a public channel of the same name
  const refused = await subscribe(threadChannel(cy, privateGot))
  const publicJoin = await subscribe(threadChannel(cyAgain, publicGot, 'chat:ada__bob', false))
  await api('bob', '/chat/messages', { thread_id: 'ada__bob', body: 'not for Cy' })
  await sleep(700)

  // Then the private join is refused as Realtime words it, and nothing arrives either way
  assert.equal(refused.status, 'CHANNEL_ERROR')
  assert.match(
    refused.error.message,
    /^Unauthorized: You do not have permissions to read from this Channel topic: chat:ada__bob$/,
  )
  assert.equal(publicJoin.status, 'SUBSCRIBED')
  assert.deepEqual(privateGot, [])
  assert.deepEqual(publicGot, [], 'a private broadcast leaked to a public channel')
})

test('the anon key alone cannot join a private channel', async () => {
  const { supabase: anon } = await connect(env.SUPABASE_ANON_KEY)
  const outcome = await subscribe(threadChannel(anon, []))
  assert.equal(outcome.status, 'CHANNEL_ERROR')
  assert.match(outcome.error.message, /^Unauthorized/)
})

test('postgres_changes on intentions reach members of the space only, and the bot reply streams to complete', async () => {
  // Given Ada (a member of #lounge) and Cy (not a member) following its intentions
  const follow = async (user, got, system) => {
    const { supabase } = await connect(token(user))
    const channel = supabase
      .channel(`space-${user}`)
      .on('postgres_changes',
          { event: '*', schema: 'public', table: 'intentions', filter: 'location_id=eq.#lounge' },
          (change) => got.push(change))
      .on('system', {}, (message) => system.push(message))
    assert.equal((await subscribe(channel)).status, 'SUBSCRIBED')
  }
  const adaGot = [], cyGot = [], adaSystem = []
  await follow('ada', adaGot, adaSystem)
  await follow('cy', cyGot, [])

  // When Ada speaks in #lounge
  const response = await fetch(`${env.PAGE_URL}/dev/say`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token('ada')}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ text: 'Hello Echo' }),
  })
  const text = await response.text()
  assert.equal(response.status, 201, text)
  const { id: said } = JSON.parse(text)

  // Then Ada sees her utterance, then @echo's reply go from active to complete
  const replies = () => adaGot.filter((c) => c.new?.content?.in_reply_to === said)
  assert.ok(await waitFor(() => replies().some((c) => c.new.state === 'complete'), 15000),
            `no complete reply: ${JSON.stringify(adaGot.map((c) => [c.eventType, c.new?.state]))}`)
  const mine = adaGot.find((c) => c.new?.id === said)
  assert.equal(mine.eventType, 'INSERT')
  assert.equal(mine.schema, 'public')
  assert.equal(mine.table, 'intentions')
  assert.equal(mine.new.content.text, 'Hello Echo')
  assert.equal(replies()[0].new.state, 'active')
  assert.equal(replies().at(-1).new.owner_id, '@echo')
  assert.ok(adaSystem.some((m) => m.extension === 'postgres_changes' && m.status === 'ok'))
  // And RLS hid every one of those rows from Cy
  assert.deepEqual(cyGot, [])
})

test('an expired token closes the channel; a token refreshed with setAuth keeps it open', async () => {
  // Given two joins by Ada whose tokens expire in 2 seconds
  const { supabase: stale } = await connect(token('ada', 2))
  const { supabase: fresh } = await connect(token('ada', 2))
  const staleStatuses = [], staleSystem = [], freshGot = []
  const staleChannel = stale
    .channel('chat:ada__bob', { config: { private: true } })
    .on('system', {}, (message) => staleSystem.push(message))
  const closed = new Promise((resolve) => {
    staleChannel.subscribe((status) => {
      staleStatuses.push(status)
      if (status === 'CLOSED') resolve()
    })
  })
  const freshChannel = threadChannel(fresh, freshGot)
  assert.equal((await subscribe(freshChannel)).status, 'SUBSCRIBED')
  await waitFor(() => staleStatuses.includes('SUBSCRIBED'))

  // When one of them refreshes before expiry and the other does not
  const renewed = token('ada', 3600)
  await fresh.realtime.setAuth(renewed)
  await Promise.race([closed, sleep(4000)])
  await api('bob', '/chat/messages', { thread_id: 'ada__bob', body: 'after expiry' })

  // Then the stale channel got Realtime's system error and closed
  assert.deepEqual(staleStatuses, ['SUBSCRIBED', 'CLOSED'])
  assert.equal(staleSystem[0].status, 'error')
  assert.match(staleSystem[0].message, /^Token has expired/)
  // And the refreshed one still receives
  assert.ok(await waitFor(() => freshGot.some((m) => m.payload.record.body === 'after expiry')))
})

test('a new token that may not read the topic closes the channel', async () => {
  // Given Ada on her thread channel
  const { supabase } = await connect(token('ada'))
  const statuses = [], system = []
  const channel = supabase
    .channel('chat:ada__bob', { config: { private: true } })
    .on('system', {}, (message) => system.push(message))
  const closed = new Promise((resolve) => {
    channel.subscribe((status) => {
      statuses.push(status)
      if (status === 'CLOSED') resolve()
    })
  })
  await waitFor(() => statuses.includes('SUBSCRIBED'))

  // When the connection hands over someone else's token (setAuth re-runs the read check)
  await supabase.realtime.setAuth(token('cy'))
  await Promise.race([closed, sleep(3000)])

  // Then Realtime says why and closes the channel
  assert.deepEqual(statuses, ['SUBSCRIBED', 'CLOSED'])
  assert.equal(system[0].message, 'You no longer have permission to read from this Channel topic: chat:ada__bob')
})

test('vsn 1.0.0 (JSON objects) works too, heartbeats included', async () => {
  const beats = []
  const { supabase } = await connect(token('bob'), { vsn: '1.0.0', heartbeatIntervalMs: 300 })
  supabase.realtime.onHeartbeat((status) => beats.push(status))
  const got = []
  assert.equal((await subscribe(threadChannel(supabase, got))).status, 'SUBSCRIBED')
  await api('ada', '/chat/messages', { thread_id: 'ada__bob', body: 'over vsn 1' })
  assert.ok(await waitFor(() => got.some((m) => m.payload.record.body === 'over vsn 1')))
  assert.ok(await waitFor(() => beats.includes('ok'), 2000), `heartbeats: ${beats}`)
})

// Presence as a front end uses it: a private channel with a presence key,
// `track` once SUBSCRIBED, and the `presence` events.
function presenceChannel(supabase, name, key, seen) {
  const channel = supabase.channel(name, { config: { private: true, presence: { key } } })
  channel
    .on('presence', { event: 'sync' }, () => { seen.online = Object.keys(channel.presenceState()).sort() })
    .on('presence', { event: 'join' }, ({ key: who }) => seen.joins.push(who))
    .on('presence', { event: 'leave' }, ({ key: who }) => seen.leaves.push(who))
  return channel
}

async function online(user, name, realtime = {}) {
  const { supabase } = await connect(token(user), realtime)
  const seen = { online: [], joins: [], leaves: [] }
  const channel = presenceChannel(supabase, name, user, seen)
  const joined = await subscribe(channel)
  const tracked = joined.status === 'SUBSCRIBED' ? await channel.track({ user, online_at: Date.now() }) : null
  return { supabase, channel, seen, joined, tracked }
}

test('presence on chat:<thread_id>: both see each other, a third can neither join nor appear, a leave is seen', async () => {
  // Given Ada and Bob online on their thread
  const ada = await online('ada', 'chat:ada__bob')
  const bob = await online('bob', 'chat:ada__bob')
  assert.equal(ada.joined.status, 'SUBSCRIBED')
  assert.equal(ada.tracked, 'ok')
  assert.equal(bob.tracked, 'ok')

  // Then each sees both
  assert.ok(await waitFor(() => ada.seen.online.join() === 'ada,bob' && bob.seen.online.join() === 'ada,bob'),
            `ada sees ${ada.seen.online}, bob sees ${bob.seen.online}`)
  assert.deepEqual(ada.channel.presenceState().bob.map((m) => m.user), ['bob'])

  // When Cy tries the private channel, and the public channel of the same name
  const cy = await online('cy', 'chat:ada__bob')
  const { supabase: cyPublic } = await connect(token('cy'))
  const lurker = cyPublic.channel('chat:ada__bob', { config: { presence: { key: 'cy' } } })
    .on('presence', { event: 'sync' }, () => {})
  assert.equal((await subscribe(lurker)).status, 'SUBSCRIBED')
  assert.equal(await lurker.track({ user: 'cy' }), 'ok')
  await sleep(500)

  // Then Cy is refused and appears nowhere on the private channel
  assert.equal(cy.joined.status, 'CHANNEL_ERROR')
  assert.match(cy.joined.error.message, /^Unauthorized: You do not have permissions to read from this Channel topic/)
  assert.deepEqual(ada.seen.online, ['ada', 'bob'])
  assert.ok(!ada.seen.joins.includes('cy'))
  assert.deepEqual(Object.keys(lurker.presenceState()), ['cy'], 'the public channel saw private presence')

  // When Bob leaves the channel, and later Ada's other tab disconnects
  const adaTab = await online('ada', 'chat:ada__bob')
  assert.ok(await waitFor(() => bob.seen.online.join() === 'ada,bob'
                                && bob.channel.presenceState().ada?.length === 2))
  await bob.supabase.removeChannel(bob.channel)
  assert.ok(await waitFor(() => ada.seen.leaves.includes('bob') && ada.seen.online.join() === 'ada'),
            `ada sees ${ada.seen.online} after Bob left`)
  const stillHere = ada.channel.presenceState().ada.length
  adaTab.supabase.realtime.disconnect()
  assert.ok(await waitFor(() => ada.channel.presenceState().ada?.length === stillHere - 1), 'no leave on disconnect')
})

test('presence on space:<id>: members see each other, a non-member is refused', async () => {
  const ada = await online('ada', 'space:#lounge')
  const bob = await online('bob', 'space:#lounge')
  const cy = await online('cy', 'space:#lounge')
  assert.ok(await waitFor(() => ada.seen.online.join() === 'ada,bob' && bob.seen.online.join() === 'ada,bob'))
  assert.equal(cy.joined.status, 'CHANNEL_ERROR')
  await bob.channel.untrack()
  assert.ok(await waitFor(() => ada.seen.online.join() === 'ada'), 'untrack was not seen')
})

test('the REST broadcast endpoint is authorized by the same policies', async () => {
  // Given Ada on her thread channel and on a public room
  const { supabase: ada } = await connect(token('ada'))
  const got = [], publicGot = []
  assert.equal((await subscribe(threadChannel(ada, got))).status, 'SUBSCRIBED')
  assert.equal((await subscribe(threadChannel(ada, publicGot, 'room:public', false))).status, 'SUBSCRIBED')

  // When Bob (a participant, but nobody may send on a chat topic) posts to the
  // thread through REST, both ways realtime-js does it, and to the public room
  const { supabase: bob } = await connect(token('bob'))
  const fromBob = bob.channel('chat:ada__bob', { config: { private: true } })
  await assert.rejects(fromBob.httpSend('INSERT', { forged: true }), /Unauthorized/)
  assert.equal(await fromBob.send({ type: 'broadcast', event: 'INSERT', payload: { forged: true } }), 'ok')
  await bob.channel('room:public').httpSend('hello', { from: 'bob' })

  // And the service role (which bypasses RLS, as on hosted) posts to the thread
  const { supabase: service } = await connect(env.SUPABASE_SERVICE_ROLE_KEY)
  await service.channel('chat:ada__bob', { config: { private: true } }).httpSend('notice', { from: 'service' })

  // Then only the authorized private message and the public one arrive
  assert.ok(await waitFor(() => got.some((m) => m.event === 'notice') && publicGot.length === 1))
  await sleep(300)
  assert.deepEqual(got.map((m) => m.event), ['notice'])
  assert.deepEqual(got[0].payload, { from: 'service' })
  assert.deepEqual(publicGot[0].payload, { from: 'bob' })

  // And a request without a valid API key is refused before anything
  const response = await fetch(`${env.SUPABASE_URL}/realtime/v1/api/broadcast`, {
    method: 'POST', headers: { apikey: 'wrong', 'Content-Type': 'application/json' },
    body: JSON.stringify({ messages: [{ topic: 'room:public', event: 'x', payload: {} }] }),
  })
  assert.equal(response.status, 401)
})
