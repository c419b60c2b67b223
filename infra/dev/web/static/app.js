// The demo page: what a front end on Supabase does with our functions.
// Its token comes from the `token` function (credentialed CORS), Realtime
// runs on that token (the private channels chat:<thread_id> and
// space:#lounge, with presence), and it is refreshed before it expires and
// handed to Realtime with setAuth. Opening a thread or the space loads its
// recent history (under RLS), then the channel carries it on live.
import { createClient } from '@supabase/supabase-js'

const $ = (id) => document.getElementById(id)
const config = await (await fetch('/config.json')).json()
// Read by the browser tests; handy in the console too.
const state = { me: null, token: null, refreshes: 0, threadId: null, dm: 'closed', lounge: 'closed',
                online: { dm: [], lounge: [] }, history: { dm: null, lounge: null },
                sentAt: {}, receivedAt: {}, seen: [], errors: [] }
window.chat = { state, signIn, send, say }

let supabase = null
let refreshTimer = null

function log(line) {
  $('log').textContent += `${new Date().toISOString().slice(11, 23)} ${line}\n`
  $('log').scrollTop = $('log').scrollHeight
}

async function api(path, body) {
  const response = await fetch(`${config.apiUrl}${path}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${state.token.access_token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  })
  const json = await response.json()
  if (!response.ok) throw new Error(`${path}: ${response.status} ${JSON.stringify(json)}`)
  return json
}

// GET /auth/token with the session cookie: refreshed by the function when due.
async function fetchToken() {
  const response = await fetch(`${config.apiUrl}/auth/token`, { credentials: 'include' })
  if (!response.ok) throw new Error(`token: ${response.status} ${await response.text()}`)
  state.token = await response.json()
  const left = Math.round(state.token.expires_at - Date.now() / 1000)
  $('status').textContent = `token valid ${left}s`
  scheduleRefresh()
  return state.token
}

// Ask again once the function would refresh it (within its margin).
function scheduleRefresh() {
  clearTimeout(refreshTimer)
  const left = state.token.expires_at - Date.now() / 1000
  const due = Math.max(1, left - config.refreshMarginSeconds)
  refreshTimer = setTimeout(async () => {
    try {
      const before = state.token.access_token
      await fetchToken()
      // Cookies are per browser profile: another tab may have signed in as someone else.
      if (state.token.user.mongo_user_id !== state.me) {
        clearTimeout(refreshTimer)
        await supabase.removeAllChannels()
        log(`this browser is now signed in as ${state.token.user.mongo_user_id}: reload the page`)
        return
      }
      if (state.token.access_token !== before) {
        state.refreshes += 1
        log(`token refreshed (#${state.refreshes}); handing it to Realtime`)
        await supabase.realtime.setAuth(state.token.access_token)
      }
    } catch (error) {
      state.errors.push(String(error))
      log(`refresh failed: ${error}`)
    }
  }, due * 1000)
}

async function signIn(user, expiresIn = 3600) {
  const response = await fetch(`/dev/sign-in?expires_in=${expiresIn}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ user }),
  })
  if (!response.ok) throw new Error(`sign-in: ${response.status}`)
  state.me = user
  await fetchToken()
  $('who').textContent = `signed in as ${user} (${state.token.user.id.slice(0, 8)}…)`
  log(`signed in as ${user}; token from ${config.apiUrl}/auth/token`)

  if (supabase) await supabase.removeAllChannels()
  // accessToken: Realtime asks for the current token on connect and on every
  // heartbeat; setAuth (above) hands a refreshed one over at once.
  supabase = createClient(config.supabaseUrl, config.anonKey, {
    accessToken: async () => state.token?.access_token ?? null,
  })
  // Private channels are authorized at join: the token must be there first.
  await supabase.realtime.setAuth(state.token.access_token)
  $('messages').replaceChildren()
  $('lounge').replaceChildren()

  const other = config.users.find((u) => u !== user)
  const { thread_id: threadId } = await api('/chat/threads/ensure', { other_mongo_id: other })
  state.threadId = threadId
  // Subscribe first, then load the history: whatever arrives meanwhile is
  // placed by time, and a row both bring is shown once.
  const dm = supabase
    .channel(`chat:${threadId}`, { config: { private: true, presence: { key: user } } })
    .on('broadcast', { event: 'INSERT' }, ({ payload }) => showMessage(payload.record))
  whoIsOnline(dm, 'dm', 'thread-online')
  dm.subscribe((status, error) => {
    state.dm = status
    $('thread-state').textContent = `chat:${threadId} ${status}`
    log(`chat:${threadId}: ${status}${error ? ` (${error.message})` : ''}`)
    if (status === 'SUBSCRIBED') goLive(dm, 'dm', { thread_id: threadId }, showMessage)
  })
  // The space's own private channel: its intentions as postgres_changes
  // (RLS per row) and who of its members is here.
  const lounge = supabase
    .channel(`space:${SPACE}`, { config: { private: true, presence: { key: user } } })
    .on('postgres_changes',
        { event: '*', schema: 'public', table: 'intentions', filter: `location_id=eq.${SPACE}` },
        ({ new: row }) => showIntention(row))
  whoIsOnline(lounge, 'lounge', 'lounge-online')
  lounge.subscribe((status, error) => {
    state.lounge = status
    $('lounge-state').textContent = status
    log(`space:${SPACE}: ${status}${error ? ` (${error.message})` : ''}`)
    if (status === 'SUBSCRIBED') goLive(lounge, 'lounge', { space: SPACE }, showIntention)
  })
}

const SPACE = '#lounge'

// Presence: the keys on the channel are who is here (a hint, not identity:
// keys are the clients' own).
function whoIsOnline(channel, which, element) {
  channel.on('presence', { event: 'sync' }, () => {
    state.online[which] = Object.keys(channel.presenceState()).sort()
    $(element).replaceChildren(...state.online[which].map((who) => {
      const badge = document.createElement('span')
      badge.className = 'online'
      badge.textContent = who
      return badge
    }))
  })
}

async function goLive(channel, which, filter, show) {
  try {
    await channel.track({ user: state.me, online_at: new Date().toISOString() })
    const rows = await history(filter)
    rows.forEach((row) => show(row, { earlier: true }))
    state.history[which] = rows.length
    log(`${which}: ${rows.length} earlier message(s) loaded, now live`)
  } catch (error) {
    state.errors.push(String(error))
    log(String(error))
  }
}

// The stand-in for supabase.from(...).select(...).order(...).limit(50): no
// PostgREST locally, so the page's server runs that select under RLS.
async function history(filter) {
  const response = await fetch(`/dev/history?${new URLSearchParams(filter)}`, {
    headers: { Authorization: `Bearer ${state.token.access_token}` },
  })
  if (!response.ok) throw new Error(`history: ${response.status} ${await response.text()}`)
  return response.json()
}

// Rows arrive live and from history in any order: each list stays in time order.
function place(list, item, createdAt) {
  item.dataset.created = createdAt ?? ''
  const later = [...list.children].find((other) => other.dataset.created > item.dataset.created)
  list.insertBefore(item, later ?? null)
}

function showMessage(record, { earlier = false } = {}) {
  if (!record || document.querySelector(`#messages li[data-id="${record.id}"]`)) return
  if (!earlier) state.receivedAt[record.body] = Date.now()
  const item = document.createElement('li')
  item.dataset.id = record.id
  item.dataset.sender = record.sender_mongo_id
  if (record.sender_mongo_id === state.me) item.classList.add('mine')
  item.innerHTML = '<span class="who"></span><span class="body"></span>'
  item.querySelector('.who').textContent = record.sender_mongo_id
  item.querySelector('.body').textContent = record.body
  place($('messages'), item, record.created_at)
  item.scrollIntoView()
}

function showIntention(row, { earlier = false } = {}) {
  if (!row?.id) return
  if (!earlier) state.seen.push([row.id, row.state])
  let item = document.querySelector(`#lounge li[data-id="${CSS.escape(row.id)}"]`)
  if (item && earlier) return // what came live is newer than the history's copy
  if (!item) {
    item = document.createElement('li')
    item.dataset.id = row.id
    item.innerHTML = '<span class="who"></span><span class="body"></span>'
    place($('lounge'), item, row.created_at)
  }
  item.dataset.state = row.state
  if (row.owner_id === `@${state.me}`) item.classList.add('mine')
  item.querySelector('.who').textContent = `${row.owner_id} · ${row.state}`
  item.querySelector('.body').textContent = row.content?.text ?? ''
  item.scrollIntoView()
}

async function send(body) {
  state.sentAt[body] = Date.now()
  return api('/chat/messages', { thread_id: state.threadId, body, client_id: crypto.randomUUID() })
}

// The stand-in for supabase.from('intentions').insert(...): no PostgREST locally.
async function say(text) {
  const response = await fetch('/dev/say', {
    method: 'POST',
    headers: { Authorization: `Bearer ${state.token.access_token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ text }),
  })
  if (!response.ok) throw new Error(`say: ${response.status} ${await response.text()}`)
  return response.json()
}

for (const user of config.users) $('user').append(new Option(user, user))
$('sign-in').onclick = () => signIn($('user').value).catch((e) => log(String(e)))
$('send-form').onsubmit = (event) => {
  event.preventDefault()
  const text = $('message').value.trim()
  if (text) send(text).then(() => { $('message').value = '' }, (e) => log(String(e)))
}
$('say-form').onsubmit = (event) => {
  event.preventDefault()
  const text = $('utterance').value.trim()
  if (text) say(text).then(() => { $('utterance').value = '' }, (e) => log(String(e)))
}
const params = new URLSearchParams(location.search)
if (params.get('as')) {
  $('user').value = params.get('as')
  signIn(params.get('as'), Number(params.get('expires_in') || 3600)).catch((e) => {
    state.errors.push(String(e))
    log(String(e))
  })
}
