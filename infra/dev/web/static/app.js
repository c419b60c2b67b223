// The demo page: what a front end on Supabase does with our functions.
// Its token comes from the `token` function (credentialed CORS), Realtime
// runs on that token (the private channel chat:<thread_id>), and it is
// refreshed before it expires and handed to Realtime with setAuth.
import { createClient } from '@supabase/supabase-js'

const $ = (id) => document.getElementById(id)
const config = await (await fetch('/config.json')).json()
// Read by the browser tests; handy in the console too.
const state = { me: null, token: null, refreshes: 0, threadId: null, dm: 'closed', lounge: 'closed',
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
  supabase
    .channel(`chat:${threadId}`, { config: { private: true } })
    .on('broadcast', { event: 'INSERT' }, ({ payload }) => showMessage(payload.record))
    .subscribe((status, error) => {
      state.dm = status
      $('thread-state').textContent = `chat:${threadId} ${status}`
      log(`chat:${threadId}: ${status}${error ? ` (${error.message})` : ''}`)
    })
  supabase
    .channel('space:#lounge')
    .on('postgres_changes',
        { event: '*', schema: 'public', table: 'intentions', filter: 'location_id=eq.#lounge' },
        ({ new: row }) => showIntention(row))
    .subscribe((status, error) => {
      state.lounge = status
      $('lounge-state').textContent = status
      log(`#lounge postgres_changes: ${status}${error ? ` (${error.message})` : ''}`)
    })
}

function showMessage(record) {
  if (!record || document.querySelector(`#messages li[data-id="${record.id}"]`)) return
  state.receivedAt[record.body] = Date.now()
  const item = document.createElement('li')
  item.dataset.id = record.id
  item.dataset.sender = record.sender_mongo_id
  if (record.sender_mongo_id === state.me) item.classList.add('mine')
  item.innerHTML = '<span class="who"></span><span class="body"></span>'
  item.querySelector('.who').textContent = record.sender_mongo_id
  item.querySelector('.body').textContent = record.body
  $('messages').append(item)
  item.scrollIntoView()
}

function showIntention(row) {
  if (!row?.id) return
  state.seen.push([row.id, row.state])
  let item = document.querySelector(`#lounge li[data-id="${CSS.escape(row.id)}"]`)
  if (!item) {
    item = document.createElement('li')
    item.dataset.id = row.id
    item.innerHTML = '<span class="who"></span><span class="body"></span>'
    $('lounge').append(item)
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
