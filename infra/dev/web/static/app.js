// The demo page: what a front end on Supabase does with our functions.
// Its token comes from the `token` function (credentialed CORS), Realtime
// runs on that token (the private channels chat:<thread_id> and
// space:#lounge, with presence, and typing:<thread_id> and typing:#lounge
// for "... is typing"), and it is refreshed before it expires and handed to
// Realtime with setAuth. Opening a thread or the space loads its newest page
// of history through an RPC (chat_messages_before, space_intentions_before),
// then the channel carries it on live; scrolling up pages further back. What
// the other participant has read is loaded with it (chat_thread_read_marks)
// and then arrives as READ on chat:<thread_id>.
import { createClient } from '@supabase/supabase-js'

const $ = (id) => document.getElementById(id)
const config = await (await fetch('/config.json')).json()
// Read by the browser tests; handy in the console too.
const state = { me: null, token: null, refreshes: 0, threadId: null, dm: 'closed', lounge: 'closed',
                online: { dm: [], lounge: [] }, history: { dm: null, lounge: null }, pages: { dm: 0, lounge: 0 },
                typing: { dm: [], lounge: [] }, typingSent: 0, readUpTo: null, readByOther: null,
                sentAt: {}, receivedAt: {}, seen: [], errors: [] }
window.chat = { state, signIn, send, say, loadEarlier }

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
  for (const pager of Object.values(pagers)) Object.assign(pager, { before: null, done: false, loading: null })
  Object.assign(state, { history: { dm: null, lounge: null }, pages: { dm: 0, lounge: 0 }, readUpTo: null, readByOther: null })

  const other = config.users.find((u) => u !== user)
  const { thread_id: threadId } = await api('/chat/threads/ensure', { other_mongo_id: other })
  state.threadId = threadId
  // Subscribe first, then load the history: whatever arrives meanwhile is
  // placed by time, and a row both bring is shown once.
  const dm = supabase
    .channel(`chat:${threadId}`, { config: { private: true, presence: { key: user } } })
    .on('broadcast', { event: 'INSERT' }, ({ payload }) => showMessage(payload.record))
    .on('broadcast', { event: 'READ' }, ({ payload }) => showRead(payload))
  whoIsOnline(dm, 'dm', 'thread-online')
  dm.subscribe((status, error) => {
    state.dm = status
    $('thread-state').textContent = `chat:${threadId} ${status}`
    log(`chat:${threadId}: ${status}${error ? ` (${error.message})` : ''}`)
    if (status === 'SUBSCRIBED') goLive(dm, 'dm')
  })
  typing.dm = typingChannel(`typing:${threadId}`, 'dm', 'thread-typing')
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
    if (status === 'SUBSCRIBED') goLive(lounge, 'lounge')
  })
  typing.lounge = typingChannel(`typing:${SPACE}`, 'lounge', 'lounge-typing')
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

async function goLive(channel, which) {
  try {
    await channel.track({ user: state.me, online_at: new Date().toISOString() })
    await loadEarlier(which)
    const list = $(pagers[which].list)
    // Fill the box, so that it scrolls (and scrolling up asks for more).
    while (!pagers[which].done && list.scrollHeight <= list.clientHeight) await loadEarlier(which)
    list.scrollTop = list.scrollHeight
    if (which === 'dm') await loadReadMarks()
    log(`${which}: ${state.history[which]} earlier message(s) loaded, now live`)
  } catch (error) {
    state.errors.push(String(error))
    log(String(error))
  }
}

// History through the RPCs, as a front end on Supabase calls them: a page
// of rows before the oldest one shown, newest first (keyset on (created_at,
// id): pages never skip or repeat a row, whatever is written meanwhile).
const PAGE_SIZE = 20
const pagers = {
  dm: { rpc: 'chat_messages_before', list: 'messages', show: (row, how) => showMessage(row, how),
        args: () => ({ _thread_id: state.threadId }), before: null, done: false, loading: null },
  lounge: { rpc: 'space_intentions_before', list: 'lounge', show: (row, how) => showIntention(row, how),
            args: () => ({ _space_id: SPACE }), before: null, done: false, loading: null },
}

// One page further back (one request at a time per list).
function loadEarlier(which) {
  const pager = pagers[which]
  if (pager.done) return Promise.resolve(0)
  pager.loading ??= (async () => {
    const { data, error } = await supabase.rpc(pager.rpc,
      { ...pager.args(), _before: pager.before, _limit: PAGE_SIZE })
    if (error) throw new Error(`${pager.rpc}: ${error.code} ${error.message}`)
    const list = $(pager.list)
    const fromBottom = list.scrollHeight - list.scrollTop // kept as older rows go in above
    data.forEach((row) => pager.show(row, { earlier: true }))
    list.scrollTop = list.scrollHeight - fromBottom
    if (data.length) pager.before = data.at(-1).id
    pager.done = data.length < PAGE_SIZE
    state.history[which] = (state.history[which] ?? 0) + data.length
    state.pages[which] += 1
    return data.length
  })().finally(() => { pager.loading = null })
  return pager.loading
}

for (const which of Object.keys(pagers)) {
  $(pagers[which].list).addEventListener('scroll', (event) => {
    if (event.target.scrollTop < 40 && supabase) loadEarlier(which).catch((e) => log(String(e)))
  })
}

// Typing: its own private topic, where participants (members, in a space)
// may send. Sends are throttled; what is shown expires unless renewed. The
// payload's name is the sender's word for it: a hint, like presence.
const TYPING_EVERY_MS = 2000
const TYPING_SHOWN_MS = 4000
const typing = {}

function typingChannel(topic, which, element) {
  const shown = new Map() // user -> expiry timer
  const render = () => {
    const names = [...shown.keys()].sort()
    state.typing[which] = names
    $(element).textContent = names.length ? `${names.join(', ')} ${names.length > 1 ? 'are' : 'is'} typing…` : ''
  }
  const stop = (user) => {
    clearTimeout(shown.get(user))
    if (shown.delete(user)) render()
  }
  const channel = supabase.channel(topic, { config: { private: true } })
    .on('broadcast', { event: 'typing' }, ({ payload }) => {
      const user = typeof payload?.user === 'string' ? payload.user : ''
      if (!user || user === state.me) return // another tab of mine
      clearTimeout(shown.get(user))
      shown.set(user, setTimeout(() => stop(user), TYPING_SHOWN_MS))
      render()
    })
  channel.subscribe((status, error) => {
    if (status !== 'SUBSCRIBED') log(`${topic}: ${status}${error ? ` (${error.message})` : ''}`)
  })
  let sentAt = 0
  return {
    typed() {
      if (Date.now() - sentAt < TYPING_EVERY_MS) return
      sentAt = Date.now()
      state.typingSent += 1
      channel.send({ type: 'broadcast', event: 'typing', payload: { user: state.me } })
    },
    sent() { sentAt = 0 },
    stop,
  }
}

// Read receipts: what this page shows of the other's messages is marked
// read (coalesced; the mark only ever moves forward), and the other's mark
// arrives as READ on the thread's channel.
let markTimer = null
function markRead(record) {
  if (document.visibilityState !== 'visible' || record.sender_mongo_id === state.me) return
  const position = `${record.created_at} ${record.id}`
  if (state.readUpTo && state.readUpTo.position >= position) return
  state.readUpTo = { position, id: record.id }
  clearTimeout(markTimer)
  markTimer = setTimeout(async () => {
    const { error } = await supabase.rpc('mark_chat_thread_read',
      { _thread_id: state.threadId, _message_id: state.readUpTo.id })
    if (error) log(`mark_chat_thread_read: ${error.code} ${error.message}`)
  }, 300)
}

// The marks the thread had before this page subscribed, in the READ
// payload's shape: the other may have read before this page was open.
async function loadReadMarks() {
  const { data, error } = await supabase.rpc('chat_thread_read_marks', { _thread_id: state.threadId })
  if (error) throw new Error(`chat_thread_read_marks: ${error.code} ${error.message}`)
  data.forEach(showRead)
}

function showRead(receipt) {
  if (receipt.reader_mongo_id === state.me) return
  // Loaded and live marks may arrive in either order: the newest one holds.
  const position = `${receipt.message_created_at} ${receipt.message_id}`
  if (!state.readByOther || state.readByOther.position < position) {
    state.readByOther = { position, id: receipt.message_id, createdAt: receipt.message_created_at }
  }
  // "seen" goes on my newest message up to their mark, as chat apps show it.
  const mine = [...$('messages').querySelectorAll('li.mine')]
  const last = mine.filter((item) => item.dataset.created <= state.readByOther.createdAt).at(-1)
  if (!last) return
  for (const item of mine) delete item.dataset.seen
  last.dataset.seen = 'true'
}

// Rows arrive live and from history in any order: each list stays in time order.
function place(list, item, createdAt) {
  item.dataset.created = createdAt ?? ''
  const later = [...list.children].find((other) => other.dataset.created > item.dataset.created)
  list.insertBefore(item, later ?? null)
}

function showMessage(record, { earlier = false } = {}) {
  if (!record || document.querySelector(`#messages li[data-id="${record.id}"]`)) return
  if (!earlier) {
    state.receivedAt[record.body] = Date.now()
    typing.dm?.stop(record.sender_mongo_id)
  }
  const item = document.createElement('li')
  item.dataset.id = record.id
  item.dataset.sender = record.sender_mongo_id
  if (record.sender_mongo_id === state.me) item.classList.add('mine')
  item.innerHTML = '<span class="who"></span><span class="body"></span>'
  item.querySelector('.who').textContent = record.sender_mongo_id
  item.querySelector('.body').textContent = record.body
  place($('messages'), item, record.created_at)
  if (!earlier) item.scrollIntoView()
  markRead(record)
}

function showIntention(row, { earlier = false } = {}) {
  if (!row?.id) return
  if (!earlier) {
    state.seen.push([row.id, row.state])
    typing.lounge?.stop(row.owner_id.replace(/^@/, ''))
  }
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
  if (!earlier) item.scrollIntoView()
}

async function send(body) {
  state.sentAt[body] = Date.now()
  typing.dm?.sent()
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
$('message').oninput = () => typing.dm?.typed()
$('utterance').oninput = () => typing.lounge?.typed()
document.addEventListener('visibilitychange', () => {
  const theirs = [...$('messages').querySelectorAll('li:not(.mine)')].at(-1)
  if (theirs) markRead({ id: theirs.dataset.id, created_at: theirs.dataset.created, sender_mongo_id: theirs.dataset.sender })
})
$('say-form').onsubmit = (event) => {
  event.preventDefault()
  const text = $('utterance').value.trim()
  typing.lounge?.sent()
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
