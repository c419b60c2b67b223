// The chat beyond sending, with the real supabase-js against `make dev`:
// typing on typing:<thread_id> and typing:<space id>, read receipts (READ on
// chat:<thread_id>), unread counts and history paging through the RPCs
// (supabase.rpc, served by make dev's PostgREST stand-in). Started by
// tests/browser/test_front_end.py, which passes the stack's URLs.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { api, closeAll, connect, env, sleep, subscribe, token, waitFor } from './support.mjs'

const THREAD = 'ada__bob'

function listen(supabase, name, got, isPrivate = true) {
  return supabase
    .channel(name, { config: { private: isPrivate } })
    .on('broadcast', { event: '*' }, (message) => got.push(message))
}

// supabase.rpc as the user (one client each); the error (if any) is part of the answer.
const callers = {}
async function rpc(user, fn, args = {}) {
  callers[user] ??= (await connect(token(user))).supabase
  return callers[user].rpc(fn, args)
}

async function ok(user, fn, args) {
  const { data, error } = await rpc(user, fn, args)
  assert.equal(error, null, `${fn} as ${user}: ${JSON.stringify(error)}`)
  return data
}

async function unread(user) {
  return Object.fromEntries((await ok(user, 'chat_unread_counts')).map((r) => [r.thread_id, r.unread_count]))
}

async function newest(user) {
  return (await ok(user, 'chat_messages_before', { _thread_id: THREAD, _limit: 1 }))[0]
}

test.before(async () => {
  await api('ada', '/chat/threads/ensure', { other_mongo_id: 'bob' })
})

test.after(closeAll)

test("Ada's typing reaches Bob on typing:ada__bob, and not Cy", { timeout: 30_000 }, async () => {
  // Given Ada and Bob on their thread's typing topic, and Cy trying it privately and publicly
  const bobGot = [], cyGot = [], cyPublicGot = []
  const { supabase: ada } = await connect(token('ada'))
  const { supabase: bob } = await connect(token('bob'))
  const { supabase: cy } = await connect(token('cy'))
  const { supabase: cyAgain } = await connect(token('cy'))
  const adaTyping = listen(ada, `typing:${THREAD}`, [])
  assert.equal((await subscribe(adaTyping)).status, 'SUBSCRIBED')
  assert.equal((await subscribe(listen(bob, `typing:${THREAD}`, bobGot))).status, 'SUBSCRIBED')
  const refused = await subscribe(listen(cy, `typing:${THREAD}`, cyGot))
  assert.equal((await subscribe(listen(cyAgain, `typing:${THREAD}`, cyPublicGot, false))).status, 'SUBSCRIBED')

  // When Ada types
  assert.equal(await adaTyping.send({ type: 'broadcast', event: 'typing', payload: { user: 'ada' } }), 'ok')

  // Then Bob sees it, and Cy was refused and got nothing either way
  assert.ok(await waitFor(() => bobGot.length === 1), 'Bob did not see Ada typing')
  assert.deepEqual(bobGot[0].payload, { user: 'ada' })
  assert.equal(bobGot[0].event, 'typing')
  assert.equal(refused.status, 'CHANNEL_ERROR')
  assert.match(refused.error.message, /^Unauthorized: You do not have permissions to read from this Channel topic: typing:ada__bob$/)
  await sleep(300)
  assert.deepEqual(cyGot, [])
  assert.deepEqual(cyPublicGot, [], 'a private typing event reached a public channel')
})

test('Cy can neither send nor listen on typing:ada__bob, nor on typing:#lounge', { timeout: 30_000 }, async () => {
  const bobGot = [], bobLounge = []
  const { supabase: bob } = await connect(token('bob'))
  assert.equal((await subscribe(listen(bob, `typing:${THREAD}`, bobGot))).status, 'SUBSCRIBED')
  assert.equal((await subscribe(listen(bob, 'typing:#lounge', bobLounge))).status, 'SUBSCRIBED')

  // When Cy sends on both topics over REST (what realtime-js does before a join), both ways
  const { supabase: cy } = await connect(token('cy'))
  for (const topic of [`typing:${THREAD}`, 'typing:#lounge']) {
    const channel = cy.channel(topic, { config: { private: true } })
    await assert.rejects(channel.httpSend('typing', { user: 'bob' }), /Unauthorized/)
    await channel.send({ type: 'broadcast', event: 'typing', payload: { user: 'bob' } })
  }
  // And a member of #lounge does type there
  const { supabase: ada } = await connect(token('ada'))
  const lounge = listen(ada, 'typing:#lounge', [])
  assert.equal((await subscribe(lounge)).status, 'SUBSCRIBED')
  await lounge.send({ type: 'broadcast', event: 'typing', payload: { user: 'ada' } })

  // Then only Ada's arrives
  assert.ok(await waitFor(() => bobLounge.length === 1))
  await sleep(300)
  assert.deepEqual(bobLounge.map((m) => m.payload.user), ['ada'])
  assert.deepEqual(bobGot, [])
  const { supabase: cyListening } = await connect(token('cy'))
  const cyLounge = await subscribe(listen(cyListening, 'typing:#lounge', []))
  assert.equal(cyLounge.status, 'CHANNEL_ERROR')
})

test("a client's INSERT-shaped event on chat:ada__bob is still refused; typing carries no message", { timeout: 30_000 }, async () => {
  // Given Bob on the thread channel and on its typing topic
  const chatGot = [], typingGot = []
  const { supabase: bob } = await connect(token('bob'))
  assert.equal((await subscribe(listen(bob, `chat:${THREAD}`, chatGot))).status, 'SUBSCRIBED')
  assert.equal((await subscribe(listen(bob, `typing:${THREAD}`, typingGot))).status, 'SUBSCRIBED')

  // When Ada, who may send on typing, sends a copy of the database's INSERT on the chat
  // channel (socket, then REST), and the same copy on the typing topic
  const { supabase: ada } = await connect(token('ada'))
  const forged = { operation: 'INSERT', table: 'chat_messages', schema: 'public', old_record: null,
                   record: { id: randomUUID(), thread_id: THREAD, sender_mongo_id: 'bob', body: 'forged' } }
  const chat = listen(ada, `chat:${THREAD}`, [])
  assert.equal((await subscribe(chat)).status, 'SUBSCRIBED')
  await chat.send({ type: 'broadcast', event: 'INSERT', payload: forged })
  const { supabase: adaRest } = await connect(token('ada'))
  await assert.rejects(adaRest.channel(`chat:${THREAD}`, { config: { private: true } }).httpSend('INSERT', forged), /Unauthorized/)
  const typingChannel = listen(ada, `typing:${THREAD}`, [])
  assert.equal((await subscribe(typingChannel)).status, 'SUBSCRIBED')
  await typingChannel.send({ type: 'broadcast', event: 'INSERT', payload: forged })

  // Then nothing reaches the chat channel, and the copy only ever travels on typing,
  // which a client treats as ephemeral (nothing there is a stored message)
  assert.ok(await waitFor(() => typingGot.length === 1))
  await sleep(300)
  assert.deepEqual(chatGot, [])
  assert.equal(typingGot[0].event, 'INSERT')
})

test("Bob's read mark reaches Ada live, as READ on chat:ada__bob", { timeout: 30_000 }, async () => {
  // Given Ada on the thread channel, and a message of hers to Bob
  const adaGot = []
  const { supabase: ada } = await connect(token('ada'))
  assert.equal((await subscribe(listen(ada, `chat:${THREAD}`, adaGot))).status, 'SUBSCRIBED')
  const sent = await api('ada', '/chat/messages', { thread_id: THREAD, body: `read me ${randomUUID()}` })

  // When Bob marks the thread read up to it
  const marked = await ok('bob', 'mark_chat_thread_read', { _thread_id: THREAD, _message_id: sent.id })

  // Then Ada receives the receipt from the database
  assert.equal(marked.moved, true)
  assert.ok(await waitFor(() => adaGot.some((m) => m.event === 'READ')), 'no READ arrived')
  const receipt = adaGot.find((m) => m.event === 'READ').payload
  assert.equal(receipt.thread_id, THREAD)
  assert.equal(receipt.reader_mongo_id, 'bob')
  assert.equal(receipt.reader_id, env.BOB_ID)
  assert.equal(receipt.message_id, sent.id)
  assert.equal(receipt.message_created_at.slice(0, 19), sent.created_at.slice(0, 19))

  // And Cy may not mark it, and is told what a missing thread tells (nothing about Ada and Bob)
  const { error } = await rpc('cy', 'mark_chat_thread_read', { _thread_id: THREAD, _message_id: sent.id })
  assert.equal(error.code, 'PT404')
  assert.equal(error.details, 'unknown_thread')
  const missing = await rpc('cy', 'mark_chat_thread_read', { _thread_id: 'ada__nobody', _message_id: sent.id })
  assert.deepEqual(missing.error, error)
})

test('unread counts right after sends and reads', { timeout: 30_000 }, async () => {
  // Given both have read everything so far
  const start = await newest('ada')
  await ok('ada', 'mark_chat_thread_read', { _thread_id: THREAD, _message_id: start.id })
  await ok('bob', 'mark_chat_thread_read', { _thread_id: THREAD, _message_id: start.id })
  assert.equal((await unread('ada'))[THREAD], 0)
  assert.equal((await unread('bob'))[THREAD], 0)

  // When Ada sends three messages
  const sent = []
  for (const n of [1, 2, 3]) sent.push(await api('ada', '/chat/messages', { thread_id: THREAD, body: `count ${n}` }))

  // Then Bob has three unread and Ada none (her own never count)
  assert.equal((await unread('bob'))[THREAD], 3)
  assert.equal((await unread('ada'))[THREAD], 0)

  // When Bob reads up to the second, then (late) the first, then the third
  const second = await ok('bob', 'mark_chat_thread_read', { _thread_id: THREAD, _message_id: sent[1].id })
  assert.equal(second.unread_count, 1)
  assert.equal((await unread('bob'))[THREAD], 1)
  const late = await ok('bob', 'mark_chat_thread_read', { _thread_id: THREAD, _message_id: sent[0].id })
  assert.equal(late.moved, false)
  assert.equal((await unread('bob'))[THREAD], 1, 'an older mark moved the read position back')
  await ok('bob', 'mark_chat_thread_read', { _thread_id: THREAD, _message_id: sent[2].id })
  assert.equal((await unread('bob'))[THREAD], 0)

  // And Bob's reply is one unread for Ada; Cy sees no such thread
  await api('bob', '/chat/messages', { thread_id: THREAD, body: 'count reply' })
  assert.equal((await unread('ada'))[THREAD], 1)
  assert.equal((await unread('cy'))[THREAD], undefined)
})

test('paging back through 1,000 messages while others are written returns each exactly once', { timeout: 120_000 }, async () => {
  // Given the thread's 1,000 seeded messages (tests/browser/conftest.py) and what the tests
  // above wrote after them, the newest message being the anchor
  const seedTag = `${env.SEED_TAG} `
  const seeded = Number(env.SEED_COUNT)
  assert.ok(env.SEED_TAG && seeded === 1000, 'run through tests/browser/test_front_end.py (it seeds the thread)')
  const anchor = await newest('ada')
  const { supabase: ada } = await connect(token('ada'))
  const { supabase: bob } = await connect(token('bob'))

  // When Ada pages back from the anchor, 50 at a time, while Bob writes between her pages
  const seen = []
  let before = anchor.id
  let written = 0
  for (;;) {
    const { data, error } = await ada.rpc('chat_messages_before', { _thread_id: THREAD, _before: before, _limit: 50 })
    assert.equal(error, null, JSON.stringify(error))
    if (!data.length) break
    seen.push(...data)
    before = data.at(-1).id
    if (written < 5) {
      const sent = await bob.rpc('insert_chat_message', { _thread_id: THREAD, _body: 'meanwhile', _client_id: randomUUID() })
      assert.equal(sent.error, null, JSON.stringify(sent.error))
      written += 1
    }
  }

  // Then each message before the anchor came exactly once, newest first, and none written meanwhile
  const ids = seen.map((m) => m.id)
  assert.equal(new Set(ids).size, ids.length, 'a message came twice')
  const bodies = seen.filter((m) => m.body.startsWith(seedTag)).map((m) => m.body)
  assert.equal(new Set(bodies).size, seeded, `${bodies.length} seeded messages, ${new Set(bodies).size} distinct`)
  assert.equal(bodies.length, seeded)
  assert.deepEqual(bodies.slice(0, 2), [`${seedTag}999`, `${seedTag}998`])
  assert.ok(!seen.some((m) => m.body === 'meanwhile'), 'a message written meanwhile came in a page')
  for (let i = 1; i < seen.length; i++) {
    const [a, b] = [seen[i - 1], seen[i]]
    assert.ok(a.created_at > b.created_at || (a.created_at === b.created_at && a.id > b.id), `out of order at ${i}`)
  }
  assert.equal(written, 5)
})
