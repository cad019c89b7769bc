/**
 * The Lua scripts of the Redis lease backend (./redis.ts), one per change, each atomic at the server.
 * Every script gets the same KEYS and the same first two ARGV:
 *
 *   KEYS[1] leader   `ballot:{E}:leader`   the holder's session id, SET NX PX (the lock itself)
 *   KEYS[2] token    `ballot:{E}:token`    fencing-token counter, INCRed by every acquire
 *   KEYS[3] line     `ballot:{E}:line`     sorted set: session id → join sequence (the line of candidates)
 *   KEYS[4] seq      `ballot:{E}:seq`      join-sequence counter
 *   KEYS[5] version  `ballot:{E}:version`  bumped by every change; orders script replies and messages
 *   ARGV[1]          `ballot:{E}:session:` prefix of the session hashes (ttl, id, address, tags, seq, token)
 *   ARGV[2]          `ballot:{E}:changes`  the pub/sub channel every change publishes its new line on
 *
 * `{E}` is a Redis Cluster hash tag: every key of an election is in one slot. The session hashes are
 * named from ARGV (their ids are not known in advance), which a single server and Sentinel allow; the hash
 * tag keeps them in the election's slot too.
 *
 * Counters (token, seq, version) that are missing (a restart without persistence, a failover to a replica
 * that lacked them) start again from the server's clock in microseconds, so they keep growing across such
 * a loss unless the server's clock went back. That is the only use of the server's clock, and it is for
 * tokens, never for deciding who may lead (the lease machine does that on the candidate's own clock).
 *
 * Numbers leave the scripts as strings: Lua numbers are doubles and cjson prints 14 digits.
 */

const PRELUDE = `
local leaderKey, tokenKey, lineKey, seqKey, versionKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local sessionPrefix, channel = ARGV[1], ARGV[2]

local function sessionKey(sid) return sessionPrefix .. sid end

local function checkTypes()
  local lt = redis.call('TYPE', leaderKey)['ok']
  if lt ~= 'none' and lt ~= 'string' then
    return redis.error_reply('FOREIGN ' .. leaderKey .. ' is a ' .. lt .. ', not the string of a lock')
  end
  local zt = redis.call('TYPE', lineKey)['ok']
  if zt ~= 'none' and zt ~= 'zset' then
    return redis.error_reply('FOREIGN ' .. lineKey .. ' is a ' .. zt .. ', not the sorted set of a line')
  end
  return nil
end

-- A counter that only grows, also when its key was lost.
local function bump(key)
  if redis.call('EXISTS', key) == 0 then
    local t = redis.call('TIME')
    redis.call('SET', key, t[1] .. string.format('%06d', tonumber(t[2])))
  end
  redis.call('INCR', key)
  return redis.call('GET', key)
end

-- The lock is free: the first live candidate in line takes it (SET NX PX), with the next token. Its
-- lock expires with its session (PX = the session's PTTL): it holds it no longer than its own session,
-- which it proves alive itself. Dead entries met on the way leave the line. True when anything changed.
local function promote()
  if redis.call('EXISTS', leaderKey) == 1 then return false end
  local changed = false
  local members = redis.call('ZRANGE', lineKey, 0, -1)
  for _, sid in ipairs(members) do
    local sk = sessionKey(sid)
    local pttl = redis.call('PTTL', sk)
    if pttl > 0 and redis.call('HEXISTS', sk, 'seq') == 1 then
      redis.call('SET', leaderKey, sid, 'NX', 'PX', pttl)
      redis.call('HSET', sk, 'token', bump(tokenKey))
      return true
    end
    redis.call('ZREM', lineKey, sid)
    changed = true
  end
  return changed
end

-- Entries of candidates whose session is gone leave the line. True when any did.
local function purge()
  local changed = false
  local members = redis.call('ZRANGE', lineKey, 0, -1)
  for _, sid in ipairs(members) do
    if redis.call('EXISTS', sessionKey(sid)) == 0 then
      redis.call('ZREM', lineKey, sid)
      changed = true
    end
  end
  return changed
end

-- The line as JSON: the version, the holder (session id or a foreign value), its token, the lock's PTTL
-- (a hint for when to look again, never trusted for safety), and the live candidates in join order.
local function snapshot(version)
  local holder = redis.call('GET', leaderKey)
  local out = { v = version or (redis.call('GET', versionKey) or '0'), holder = holder or '',
    pttl = redis.call('PTTL', leaderKey), token = redis.call('GET', tokenKey) or '0', line = {} }
  local members = redis.call('ZRANGE', lineKey, 0, -1)
  for _, sid in ipairs(members) do
    local h = redis.call('HMGET', sessionKey(sid), 'id', 'seq', 'address', 'tags', 'token')
    if h[1] and h[2] then
      out.line[#out.line + 1] = { sid = sid, id = h[1], seq = h[2], address = h[3] or '',
        tags = h[4] or '', token = h[5] or '' }
    end
  end
  return cjson.encode(out)
end

local function changed()
  local text = snapshot(bump(versionKey))
  redis.call('PUBLISH', channel, text)
  return text
end
`

function script(body: string): string {
  return `${PRELUDE}\nlocal bad = checkTypes()\nif bad then return bad end\n${body}`
}

/** ARGV[3] sid, ARGV[4] ttl ms: a new session (a hash with its TTL; not in the line yet). */
export const OPEN_SESSION = script(`
local sk = sessionKey(ARGV[3])
redis.call('DEL', sk)
redis.call('HSET', sk, 'ttl', ARGV[4])
redis.call('PEXPIRE', sk, ARGV[4])
return 1
`)

/**
 * ARGV[3] sid, ARGV[4] id, ARGV[5] address, ARGV[6] tags (JSON): joins the line at the back (unless
 * already in it), takes the lock if free and first, and returns the line.
 */
export const JOIN = script(`
local sid = ARGV[3]
local sk = sessionKey(sid)
if redis.call('EXISTS', sk) == 0 then return redis.error_reply('SESSION_LOST session ' .. sid .. ' is gone') end
redis.call('HSET', sk, 'id', ARGV[4], 'address', ARGV[5], 'tags', ARGV[6])
local didChange = false
if not redis.call('ZSCORE', lineKey, sid) then
  local seq = bump(seqKey)
  redis.call('ZADD', lineKey, seq, sid)
  redis.call('HSET', sk, 'seq', seq)
  redis.call('HDEL', sk, 'token')
  didChange = true
end
if promote() then didChange = true end
if didChange then return changed() end
return snapshot(nil)
`)

/**
 * ARGV[3] sid: one keep-alive: the session (and the lock, when it holds it) live another TTL from now.
 * Frees nothing; takes the lock for the first in line if it has expired (a crashed holder); the holder
 * also clears dead candidates from the line. Returns {held, pttl} as JSON.
 */
export const KEEP_ALIVE = script(`
local sid = ARGV[3]
local sk = sessionKey(sid)
local ttl = redis.call('HGET', sk, 'ttl')
if not ttl then return redis.error_reply('SESSION_LOST session ' .. sid .. ' is gone') end
redis.call('PEXPIRE', sk, ttl)
local held = redis.call('GET', leaderKey) == sid
if held then
  redis.call('PEXPIRE', leaderKey, ttl)
  if purge() then changed() end
elseif promote() then
  changed()
end
return cjson.encode({ held = redis.call('GET', leaderKey) == sid, pttl = redis.call('PTTL', leaderKey),
  holder = redis.call('GET', leaderKey) or '' })
`)

/**
 * ARGV[3] sid, ARGV[4] the seq its last join got ('' when unknown): leaves the line, releasing the lock
 * if it holds it (the next in line takes it at once). A leave for an older join does nothing.
 */
export const LEAVE = script(`
local sid = ARGV[3]
local sk = sessionKey(sid)
if not redis.call('ZSCORE', lineKey, sid) then return snapshot(nil) end
if ARGV[4] ~= '' and redis.call('HGET', sk, 'seq') ~= ARGV[4] then return snapshot(nil) end
redis.call('ZREM', lineKey, sid)
redis.call('HDEL', sk, 'seq', 'token')
if redis.call('GET', leaderKey) == sid then redis.call('DEL', leaderKey) end
promote()
return changed()
`)

/** ARGV[3] sid: ends the session: leaves the line, releases the lock if held, deletes the session hash. */
export const CLOSE_SESSION = script(`
local sid = ARGV[3]
local inLine = redis.call('ZREM', lineKey, sid) == 1
redis.call('DEL', sessionKey(sid))
local held = redis.call('GET', leaderKey) == sid
if held then redis.call('DEL', leaderKey) end
if inLine or held then
  promote()
  return changed()
end
return snapshot(nil)
`)

/** ARGV[3] sid or '': the line as it is; `alive` says whether that session still exists. */
export const READ = script(`
local text = snapshot(nil)
if ARGV[3] == '' then return text end
return cjson.encode({ snap = text, alive = redis.call('EXISTS', sessionKey(ARGV[3])) == 1 })
`)

/** The lock may have expired (a crashed holder): the first in line takes it. Returns the line. */
export const TRY_ACQUIRE = script(`
if promote() then return changed() end
return snapshot(nil)
`)
