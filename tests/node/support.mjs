// What the supabase-js tests share: the users of `make dev`, their access
// tokens as GoTrue signs them, clients built as a front end builds them,
// and waiting on conditions (never on wall-clock speed).
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import WebSocket from 'ws'
import { createClient } from '@supabase/supabase-js'

export const env = process.env
export const USERS = {
  ada: { id: env.ADA_ID, mongo: 'ada' },
  bob: { id: env.BOB_ID, mongo: 'bob' },
  cy: { id: env.CY_ID, mongo: 'cy' },
}
export const clients = []
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// An access token as GoTrue signs it (the local HS256 secret).
export function token(user, ttlSeconds = 3600) {
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
export async function connect(accessToken, realtime = {}) {
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
export function subscribe(channel) {
  return new Promise((resolve) => {
    let settled = false
    channel.subscribe((status, error) => {
      if (!settled) resolve({ status, error })
      settled = true
    })
  })
}

export async function waitFor(predicate, ms = 3000) {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (predicate()) return true
    await sleep(20)
  }
  return predicate()
}

// A call of one of our HTTP functions, as the user.
export async function api(user, path, body) {
  const response = await fetch(`${env.API_URL}${path}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token(user)}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  })
  const text = await response.text()
  assert.ok(response.ok, `${path}: ${response.status} ${text}`)
  return JSON.parse(text)
}

export async function closeAll() {
  await Promise.all(clients.splice(0).map((c) => c.removeAllChannels()))
}
