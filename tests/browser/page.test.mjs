// The demo page in headless Chromium (Debian's, driven by playwright-core:
// nothing downloaded): CORS with credentials, the private channel between
// two people, a stranger refused, the bot's reply streaming in, a session
// refreshed while the page keeps receiving, history paged back on scroll,
// "... is typing" and read receipts. Started by
// tests/browser/test_front_end.py with the stack's URLs in the environment.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { chromium } from 'playwright-core'

const env = process.env
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run']
let browser

before(async () => {
  browser = await chromium.launch({ executablePath: env.CHROMIUM || '/usr/bin/chromium', args: CHROMIUM_FLAGS })
})
after(async () => { await browser?.close() })

async function open(query, url = env.PAGE_URL) {
  const context = await browser.newContext()
  const page = await context.newPage()
  page.on('pageerror', (error) => console.error('page error:', error))
  await page.goto(`${url}/${query}`)
  return { context, page }
}

const chatState = (page) => page.evaluate(() => structuredClone(window.chat.state))

async function signedIn(query) {
  const opened = await open(query)
  await opened.page.waitForFunction(() => window.chat?.state.dm === 'SUBSCRIBED'
                                          && window.chat.state.lounge === 'SUBSCRIBED')
  return opened
}

function token(sub, mongo) {
  const now = Math.floor(Date.now() / 1000)
  const encode = (part) => Buffer.from(JSON.stringify(part)).toString('base64url')
  const unsigned = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode({
    iss: `${env.SUPABASE_URL}/auth/v1`, sub, aud: 'authenticated', role: 'authenticated', iat: now, exp: now + 3600,
    app_metadata: { provider: 'email', mongo_user_id: mongo } })}`
  return `${unsigned}.${createHmac('sha256', env.JWT_SECRET).update(unsigned).digest('base64url')}`
}

async function send(page, text) {
  await page.fill('#message', text)
  await page.press('#message', 'Enter')
}

const messageIn = (page, text) =>
  page.locator('#messages li', { hasText: text }).waitFor({ timeout: 5000 })

test('the credentialed token fetch works from the allowed origin and is refused by the browser from another', async () => {
  // Given a browser signed in as Ada on the page's origin (the session cookie is set)
  const { context, page } = await open('?as=ada')
  await page.waitForFunction(() => window.chat?.state.token)
  assert.equal((await chatState(page)).token.user.mongo_user_id, 'ada')

  // When the same browser runs the same page from an origin not in ALLOWED_ORIGINS
  const other = await context.newPage()
  await other.goto(env.PAGE_URL.replace('127.0.0.1', 'localhost') + '/')
  const outcome = await other.evaluate(async (api) => {
    try {
      const response = await fetch(`${api}/auth/token`, { credentials: 'include' })
      return `status ${response.status}`
    } catch (error) {
      return `${error.name}: ${error.message}`
    }
  }, env.API_URL)

  // Then the browser refuses to hand over the response
  assert.equal(outcome, 'TypeError: Failed to fetch')
  await context.close()
})

test('Ada and Bob: a message from one reaches the other over the private channel in under 500 ms', async () => {
  const ada = await signedIn('?as=ada')
  const bob = await signedIn('?as=bob')

  for (const [from, to, text] of [[bob, ada, 'Hi Ada, it is Bob'], [ada, bob, 'Hi Bob! Shall we ask Echo?'],
                                  [bob, ada, 'Go ahead, it is in #lounge']]) {
    await send(from.page, text)
    await messageIn(to.page, text)
    await messageIn(from.page, text) // the sender's page shows it from the same broadcast
    const sent = (await chatState(from.page)).sentAt[text]
    const received = (await chatState(to.page)).receivedAt[text]
    console.log(`delivery: ${received - sent} ms (${text})`)
    assert.ok(received - sent < 500, `took ${received - sent} ms`)
  }

  // And the bot's reply streams into #lounge, from active to complete
  const question = `Hello Echo, are you there? (${Date.now()})`
  await ada.page.fill('#utterance', question)
  await ada.page.press('#utterance', 'Enter')
  await ada.page.locator('#lounge li[data-state="complete"][data-id^="/bot-"]', { hasText: question }).waitFor({ timeout: 15000 })
  const seen = (await chatState(ada.page)).seen.filter(([id]) => id.startsWith('/bot-'))
  const states = seen.map(([, state]) => state)
  assert.equal(states[0], 'active', `states seen: ${states}`)
  assert.equal(states.at(-1), 'complete')
  await bob.page.locator('#lounge li[data-state="complete"][data-id^="/bot-"]', { hasText: question }).waitFor({ timeout: 5000 })

  if (env.SCREENSHOT) {
    mkdirSync(dirname(env.SCREENSHOT), { recursive: true })
    await ada.page.screenshot({ path: env.SCREENSHOT })
  }
  await ada.context.close()
  await bob.context.close()
})

test('a third user joining chat:ada__bob in the browser is refused and receives nothing', async () => {
  const bob = await signedIn('?as=bob')
  const { context, page } = await open('')
  const cyToken = token(env.CY_ID, 'cy')

  // When Cy's browser joins the private channel with her own valid token
  await page.evaluate(async ({ url, key, accessToken }) => {
    const { createClient } = await import('@supabase/supabase-js')
    const supabase = createClient(url, key, { accessToken: async () => accessToken })
    await supabase.realtime.setAuth(accessToken)
    window.cy = { statuses: [], got: [] }
    supabase.channel('chat:ada__bob', { config: { private: true } })
      .on('broadcast', { event: '*' }, (message) => window.cy.got.push(message))
      .subscribe((status, error) => window.cy.statuses.push(`${status} ${error?.message ?? ''}`.trim()))
  }, { url: env.SUPABASE_URL, key: env.SUPABASE_ANON_KEY, accessToken: cyToken })
  await page.waitForFunction(() => window.cy.statuses.length > 0)
  await send(bob.page, 'Only for Ada')
  await messageIn(bob.page, 'Only for Ada')
  await page.waitForTimeout(500)

  // Then the join is refused and nothing of the thread arrives
  const cy = await page.evaluate(() => window.cy)
  assert.equal(cy.statuses[0],
    'CHANNEL_ERROR Unauthorized: You do not have permissions to read from this Channel topic: chat:ada__bob')
  assert.ok(!cy.statuses.includes('SUBSCRIBED'))
  assert.deepEqual(cy.got, [])
  await context.close()
  await bob.context.close()
})

test('an expired or expiring session is refreshed through token and the page keeps receiving', async () => {
  // Given Ada signed in with an already expired session, and again with one
  // that expires in 62 s (the token function refreshes within 60 s of expiry)
  const expired = await signedIn('?as=ada&expires_in=-30')
  const expiring = await signedIn('?as=ada&expires_in=62')
  const cookieBefore = (await expiring.context.cookies()).find((c) => c.name.endsWith('-auth-token'))
  const tokenBefore = (await chatState(expiring.page)).token

  // When the page refreshes before expiry (and hands the token to Realtime)
  await expiring.page.waitForFunction(() => window.chat.state.refreshes === 1, null, { timeout: 10000 })

  // Then the session cookies were rewritten through the local GoTrue
  const cookieAfter = (await expiring.context.cookies()).find((c) => c.name.endsWith('-auth-token'))
  assert.notEqual(cookieAfter.value, cookieBefore.value)
  const tokenAfter = (await chatState(expiring.page)).token
  assert.ok(tokenAfter.expires_at > tokenBefore.expires_at + 3000)
  assert.ok((await chatState(expired.page)).token.expires_at > Date.now() / 1000 + 3000)

  // And both pages still receive Bob's messages on the private channel
  const bob = await signedIn('?as=bob')
  await send(bob.page, 'Still there, Ada?')
  await messageIn(expiring.page, 'Still there, Ada?')
  await messageIn(expired.page, 'Still there, Ada?')
  assert.equal((await chatState(expiring.page)).dm, 'SUBSCRIBED')
  assert.deepEqual((await chatState(expiring.page)).errors, [])
  for (const opened of [expired, expiring, bob]) await opened.context.close()
})

async function post(url, user, body) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token(env[`${user.toUpperCase()}_ID`], user)}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  })
  assert.ok(response.ok, `${url}: ${response.status} ${await response.text()}`)
}

test('opened after messages were sent, the thread and #lounge show their history, then go live', async () => {
  // Given Bob wrote to Ada and spoke in #lounge while Ada's page was closed
  const stamp = Date.now()
  await post(`${env.API_URL}/chat/messages`, 'bob', { thread_id: 'ada__bob', body: `While you were away ${stamp}` })
  await post(`${env.PAGE_URL}/dev/say`, 'bob', { text: `Lounge news ${stamp}` })

  // When Ada opens the page
  const ada = await signedIn('?as=ada')

  // Then both are there, loaded through RLS
  await messageIn(ada.page, `While you were away ${stamp}`)
  await ada.page.locator('#lounge li:not([data-id^="/bot-"])', { hasText: `Lounge news ${stamp}` }).waitFor({ timeout: 5000 })
  await ada.page.waitForFunction(() => window.chat.state.history.dm > 0 && window.chat.state.history.lounge > 0)

  // And what comes next arrives live, after them
  await post(`${env.API_URL}/chat/messages`, 'bob', { thread_id: 'ada__bob', body: `Welcome back ${stamp}` })
  await messageIn(ada.page, `Welcome back ${stamp}`)
  const bodies = await ada.page.locator('#messages li .body').allTextContents()
  assert.ok(bodies.indexOf(`While you were away ${stamp}`) < bodies.indexOf(`Welcome back ${stamp}`), bodies.join(' | '))
  assert.equal(bodies.filter((b) => b === `While you were away ${stamp}`).length, 1)

  // And a stranger's page gets none of it
  const { context, page } = await open('')
  const refused = await page.evaluate(async ({ url, key, cy }) => {
    const { createClient } = await import('@supabase/supabase-js')
    const supabase = createClient(url, key, { accessToken: async () => cy })
    const thread = await supabase.rpc('chat_messages_before', { _thread_id: 'ada__bob' })
    const space = await supabase.rpc('space_intentions_before', { _space_id: '#lounge' })
    return [thread.data, thread.error?.details, space.data, space.error?.details]
  }, { url: env.SUPABASE_URL, key: env.SUPABASE_ANON_KEY, cy: token(env.CY_ID, 'cy') })
  assert.deepEqual(refused, [null, 'unknown_thread', null, 'not_member'])
  await context.close()
  await ada.context.close()
})

test('who is online: Ada and Bob see each other in the thread and in #lounge; a closed page leaves', async () => {
  const ada = await signedIn('?as=ada')
  const bob = await signedIn('?as=bob')
  const both = () => { const s = window.chat.state.online; return s.dm.join() === 'ada,bob' && s.lounge.join() === 'ada,bob' }
  await ada.page.waitForFunction(both, null, { timeout: 5000 })
  await bob.page.waitForFunction(both, null, { timeout: 5000 })
  assert.deepEqual(await ada.page.locator('#thread-online .online').allTextContents(), ['ada', 'bob'])

  await bob.context.close()
  await ada.page.waitForFunction(() => window.chat.state.online.dm.join() === 'ada'
                                       && window.chat.state.online.lounge.join() === 'ada', null, { timeout: 5000 })
  assert.deepEqual(await ada.page.locator('#lounge-online .online').allTextContents(), ['ada'])
  await ada.context.close()
})

test('scrolled to the top, the thread pages further back: each message once, in order', async () => {
  // Given more messages in the thread than the page first loads (1,000 seeded)
  assert.equal(env.SEED_COUNT, '1000', 'run through tests/browser/test_front_end.py (it seeds the thread)')
  const ada = await signedIn('?as=ada')
  await ada.page.waitForFunction(() => window.chat.state.history.dm > 0)
  const before = await chatState(ada.page)
  const shown = () => ada.page.locator('#messages li').count()
  const first = await shown()

  // When Ada scrolls to the top of the thread
  await ada.page.locator('#messages').evaluate((list) => { list.scrollTop = 0 })

  // Then the page before arrives above, once
  await ada.page.waitForFunction((pages) => window.chat.state.pages.dm > pages, before.pages.dm, { timeout: 5000 })
  await ada.page.waitForFunction((n) => document.querySelectorAll('#messages li').length > n, first)
  const ids = await ada.page.locator('#messages li').evaluateAll((items) => items.map((i) => i.dataset.id))
  assert.equal(new Set(ids).size, ids.length, 'a message is shown twice')
  const created = await ada.page.locator('#messages li').evaluateAll((items) => items.map((i) => i.dataset.created))
  assert.deepEqual(created, [...created].sort())
  assert.ok(await shown() > first)
  await ada.context.close()
})

test('typing shows "... is typing" on the other page, throttled, and gone once the message arrives; a read message shows as seen', async () => {
  const ada = await signedIn('?as=ada')
  const bob = await signedIn('?as=bob')

  // When Ada types a long message, key by key
  await ada.page.locator('#message').pressSequentially('Typing, slowly', { delay: 20 })

  // Then Bob's page says so, from a few throttled sends (not one per key)
  await bob.page.locator('#thread-typing', { hasText: 'ada is typing…' }).waitFor({ timeout: 5000 })
  assert.ok((await chatState(ada.page)).typingSent <= 2, `sent ${(await chatState(ada.page)).typingSent} typing events`)
  assert.equal(await ada.page.locator('#thread-typing').textContent(), '')

  // When she sends it, the indicator goes, and Bob's page (visible) marks it read
  await ada.page.press('#message', 'Enter')
  await messageIn(bob.page, 'Typing, slowly')
  assert.equal(await bob.page.locator('#thread-typing').textContent(), '')
  const mine = ada.page.locator('#messages li.mine', { hasText: 'Typing, slowly' })
  await mine.and(ada.page.locator('li[data-seen]')).waitFor({ timeout: 5000 })

  // And in #lounge, Bob sees Ada typing too, until it expires
  await ada.page.locator('#utterance').pressSequentially('hm', { delay: 20 })
  await bob.page.locator('#lounge-typing', { hasText: 'ada is typing…' }).waitFor({ timeout: 5000 })
  await bob.page.locator('#lounge-typing', { hasText: /^$/ }).waitFor({ timeout: 8000 })
  await ada.context.close()
  await bob.context.close()
})
