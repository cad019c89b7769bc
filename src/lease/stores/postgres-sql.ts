/**
 * The SQL of the PostgreSQL lease backend (./postgres.ts): the tables it creates in its own schema and
 * every statement it runs. Each statement is ONE statement (no explicit transaction, no session state),
 * so it works through a connection pool and through PgBouncer in transaction mode; each reads the
 * database's clock once (`clock_timestamp()`, in the CTE `t`) and judges every expiry against it.
 *
 * In schema S (default `ballot`):
 *
 *   S.leases       one row per election: the holder's session, its id, the fencing token and when the
 *                  lease expires (database clock). Free when holder IS NULL or expires_at <= now.
 *   S.candidates   one row per session (a candidate's process): its id, address, tags, when it expires,
 *                  and `joined`, its place in the line (from S.line_order; NULL while out of the line).
 *   S.lease_tokens the fencing tokens: nextval on every change of holder, so a token only grows.
 *   S.line_order   the order of the line: nextval on every join.
 *
 * A lease is taken only by the first live candidate in line, only while the lease is free, in one
 * INSERT ... ON CONFLICT DO UPDATE ... WHERE (the row is locked and the WHERE judged on its latest
 * version, so two takers never both succeed), and it expires exactly when its holder's session does:
 * both get the same expires_at in the same statement. Releases, takes and joins NOTIFY the channel
 * `<schema>.lease` with the election's name, for the other candidates' LISTEN connections.
 */

/** A schema name as the user gave it, quoted for SQL (the check keeps it to plain identifiers). */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`
}

/** What every statement below needs: the quoted schema. */
export interface Sql {
  /** CREATE ... IF NOT EXISTS for the schema, sequences, tables and index. */
  migrate: string[]
  /** Whether the tables exist already: one row, one boolean `ready`. */
  exists: string
  /** $1 election, $2 session, $3 id, $4 ttl ms: a new session (and expired ones of the election removed). */
  openSession: string
  /** $1 election, $2 session, $3 ttl ms, $4 channel: renews session and held lease, takes if first; state. */
  keepAlive: string
  /** $1 election, $2 session, $3 id, $4 address, $5 tags, $6 channel: enters the line (once), takes if first; state. */
  join: string
  /** $1 election, $2 session, $3 channel: takes if first and free; state. */
  sync: string
  /** $1 election: the state, read only. */
  read: string
  /**
   * $1 election, $2 session, $3 channel, $4 the `joined` of the entry meant (or null), $5 the token of the
   * lease meant (or null): out of the line, the lease released if held; state. The guards make a leave
   * that arrives late (after a rejoin under the same session) change nothing.
   */
  leave: string
  /** $1 election, $2 session, $3 channel: the session's row deleted, the lease released if held; state. */
  closeSession: string
}

/**
 * The state every statement returns, as one JSON column `state`:
 *   lease   {holder, id, token} of a live lease, or null
 *   line    live candidates in the line, by `joined`: {session, id, address, tags, joined}
 *   wake    ms until the next expiry (of the lease or of a live candidate in line), or null
 *   alive   whether this statement's session is alive (after its renewal, for keepAlive)
 *   holding whether this session holds the lease after the statement
 *   took    whether this statement took the lease
 */
function stateSelect(s: string, lease: string, cands: string, session: string, extra = ''): string {
  return `SELECT json_build_object(
  'lease', (SELECT json_build_object('holder', l.holder, 'id', l.holder_id, 'token', l.token::text)
            FROM ${lease} l, t WHERE l.holder IS NOT NULL AND l.expires_at > t.now),
  'line', (SELECT coalesce(json_agg(json_build_object('session', c.session, 'id', c.id, 'address', c.address,
                   'tags', c.tags, 'joined', c.joined::text) ORDER BY c.joined), '[]'::json)
           FROM ${cands} c, t WHERE c.joined IS NOT NULL AND c.expires_at > t.now),
  'wake', (SELECT ceil(extract(epoch FROM min(e.x - t.now)) * 1000)::bigint
           FROM (SELECT l.expires_at FROM ${lease} l WHERE l.holder IS NOT NULL
                 UNION ALL SELECT c.expires_at FROM ${cands} c WHERE c.joined IS NOT NULL) e(x), t
           WHERE e.x > t.now),
  'alive', EXISTS (SELECT 1 FROM ${cands} c, t WHERE c.session = ${session} AND c.expires_at > t.now),
  'holding', EXISTS (SELECT 1 FROM ${lease} l, t WHERE l.holder = ${session} AND l.expires_at > t.now)${extra}
) AS state
FROM t`.replace(/\bS\./g, `${s}.`)
}

/**
 * The take: the first live candidate in line (`mine`, when nobody live joined before it) takes the lease
 * if the snapshot shows it free, and the INSERT's conflict WHERE judges again on the locked latest row.
 */
const TAKE = `first AS (
  SELECT m.* FROM mine m, t
  WHERE m.joined IS NOT NULL AND m.expires_at > t.now
    AND NOT EXISTS (SELECT 1 FROM S.candidates o WHERE o.election = $1 AND o.session <> m.session
                    AND o.joined IS NOT NULL AND o.joined < m.joined AND o.expires_at > t.now)
    AND NOT EXISTS (SELECT 1 FROM S.leases l WHERE l.election = $1 AND l.holder IS NOT NULL
                    AND l.expires_at > t.now)
),
took AS (
  INSERT INTO S.leases AS l (election, holder, holder_id, token, expires_at, changed_at)
  SELECT $1, f.session, f.id, nextval('S.lease_tokens'), f.expires_at, t.now FROM first f, t
  ON CONFLICT (election) DO UPDATE
    SET holder = EXCLUDED.holder, holder_id = EXCLUDED.holder_id, token = EXCLUDED.token,
        expires_at = EXCLUDED.expires_at, changed_at = EXCLUDED.changed_at
    WHERE l.holder IS NULL OR l.expires_at <= EXCLUDED.changed_at
  RETURNING l.*
)`

/** The lease as this statement leaves it: the row it took, else the snapshot's. */
function leaseAfter(alsoRenewed: boolean): string {
  return `lease_now AS (
  SELECT * FROM took
  ${alsoRenewed ? 'UNION ALL SELECT * FROM renewed WHERE NOT EXISTS (SELECT 1 FROM took)' : ''}
  UNION ALL SELECT * FROM S.leases WHERE election = $1 AND NOT EXISTS (SELECT 1 FROM took)
    ${alsoRenewed ? 'AND NOT EXISTS (SELECT 1 FROM renewed)' : ''}
)`
}

/** The candidates as this statement leaves them: `mine` (updated) instead of the snapshot's row. */
const CANDS_AFTER = `cands_now AS (
  SELECT * FROM mine
  UNION ALL SELECT * FROM S.candidates WHERE election = $1 AND session <> $2
)`

const NOTIFY_TOOK = `, 'notified', (SELECT count(pg_notify(CHANNEL, $1)) FROM took)`

export function postgresSql(schema: string): Sql {
  const s = quoteIdent(schema)
  const q = (text: string) => text.replace(/\bS\./g, `${s}.`)
  const ttl = (p: string) => `t.now + ${p}::bigint * interval '1 millisecond'`
  return {
    migrate: [
      `CREATE SCHEMA IF NOT EXISTS ${s}`,
      q('CREATE SEQUENCE IF NOT EXISTS S.lease_tokens'),
      q('CREATE SEQUENCE IF NOT EXISTS S.line_order'),
      q(`CREATE TABLE IF NOT EXISTS S.leases (
  election text PRIMARY KEY,
  holder text,
  holder_id text,
  token bigint NOT NULL,
  expires_at timestamptz NOT NULL,
  changed_at timestamptz NOT NULL
)`),
      q(`CREATE TABLE IF NOT EXISTS S.candidates (
  election text NOT NULL,
  session text NOT NULL,
  id text NOT NULL,
  address text,
  tags jsonb,
  joined bigint,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (election, session)
)`),
      q('CREATE INDEX IF NOT EXISTS candidates_line ON S.candidates (election, joined)'),
    ],
    exists: `SELECT to_regclass('${s.replace(/'/g, "''")}.leases') IS NOT NULL
  AND to_regclass('${s.replace(/'/g, "''")}.candidates') IS NOT NULL
  AND to_regclass('${s.replace(/'/g, "''")}.lease_tokens') IS NOT NULL
  AND to_regclass('${s.replace(/'/g, "''")}.line_order') IS NOT NULL AS ready`,
    openSession: q(`WITH t AS MATERIALIZED (SELECT clock_timestamp() AS now),
gone AS (DELETE FROM S.candidates c USING t WHERE c.election = $1 AND c.expires_at <= t.now RETURNING 1),
made AS (INSERT INTO S.candidates (election, session, id, expires_at)
         SELECT $1, $2, $3, ${ttl('$4')} FROM t RETURNING 1)
SELECT (SELECT count(*) FROM made) AS made, (SELECT count(*) FROM gone) AS gone`),
    keepAlive: `WITH t AS MATERIALIZED (SELECT clock_timestamp() AS now),
mine AS (UPDATE S.candidates c SET expires_at = ${ttl('$3')} FROM t
         WHERE c.election = $1 AND c.session = $2 AND c.expires_at > t.now RETURNING c.*),
renewed AS (UPDATE S.leases l SET expires_at = m.expires_at FROM mine m, t
            WHERE l.election = $1 AND l.holder = $2 AND l.expires_at > t.now RETURNING l.*),
${TAKE},
${leaseAfter(true)},
${CANDS_AFTER}
${stateSelect(s, 'lease_now', 'cands_now', '$2', NOTIFY_TOOK.replace('CHANNEL', '$4'))}`.replace(
      /\bS\./g,
      `${s}.`,
    ),
    join: `WITH t AS MATERIALIZED (SELECT clock_timestamp() AS now),
mine AS (UPDATE S.candidates c
         SET joined = coalesce(c.joined, nextval('S.line_order')), id = $3, address = $4, tags = $5::jsonb
         FROM t WHERE c.election = $1 AND c.session = $2 AND c.expires_at > t.now RETURNING c.*),
${TAKE},
${leaseAfter(false)},
${CANDS_AFTER}
${stateSelect(s, 'lease_now', 'cands_now', '$2', `, 'notified', (SELECT count(pg_notify($6, $1)) FROM mine)`)}`.replace(
      /\bS\./g,
      `${s}.`,
    ),
    sync: `WITH t AS MATERIALIZED (SELECT clock_timestamp() AS now),
mine AS (SELECT c.* FROM S.candidates c WHERE c.election = $1 AND c.session = $2),
${TAKE},
${leaseAfter(false)},
${CANDS_AFTER}
${stateSelect(s, 'lease_now', 'cands_now', '$2', NOTIFY_TOOK.replace('CHANNEL', '$3'))}`.replace(
      /\bS\./g,
      `${s}.`,
    ),
    read: `WITH t AS MATERIALIZED (SELECT clock_timestamp() AS now),
lease_now AS (SELECT * FROM S.leases WHERE election = $1),
cands_now AS (SELECT * FROM S.candidates WHERE election = $1)
${stateSelect(s, 'lease_now', 'cands_now', "''")}`.replace(/\bS\./g, `${s}.`),
    leave: `WITH t AS MATERIALIZED (SELECT clock_timestamp() AS now),
out AS (UPDATE S.candidates c SET joined = NULL
        WHERE c.election = $1 AND c.session = $2 AND ($4::bigint IS NULL OR c.joined = $4::bigint) RETURNING c.*),
released AS (UPDATE S.leases l SET holder = NULL, expires_at = t.now, changed_at = t.now FROM t
             WHERE l.election = $1 AND l.holder = $2 AND ($5::bigint IS NULL OR l.token = $5::bigint)
             RETURNING l.*),
lease_now AS (SELECT * FROM released
  UNION ALL SELECT * FROM S.leases WHERE election = $1 AND NOT EXISTS (SELECT 1 FROM released)),
cands_now AS (SELECT * FROM out
  UNION ALL SELECT * FROM S.candidates WHERE election = $1 AND NOT (session = $2 AND EXISTS (SELECT 1 FROM out)))
${stateSelect(s, 'lease_now', 'cands_now', '$2', `, 'notified', (SELECT count(pg_notify($3, $1)))`)}`.replace(
      /\bS\./g,
      `${s}.`,
    ),
    closeSession: `WITH t AS MATERIALIZED (SELECT clock_timestamp() AS now),
gone AS (DELETE FROM S.candidates WHERE election = $1 AND session = $2 RETURNING 1),
released AS (UPDATE S.leases l SET holder = NULL, expires_at = t.now, changed_at = t.now FROM t
             WHERE l.election = $1 AND l.holder = $2 RETURNING l.*),
lease_now AS (SELECT * FROM released
  UNION ALL SELECT * FROM S.leases WHERE election = $1 AND NOT EXISTS (SELECT 1 FROM released)),
cands_now AS (SELECT * FROM S.candidates WHERE election = $1 AND session <> $2)
${stateSelect(s, 'lease_now', 'cands_now', '$2', `, 'notified', (SELECT count(pg_notify($3, $1))), 'gone', (SELECT count(*) FROM gone)`)}`.replace(
      /\bS\./g,
      `${s}.`,
    ),
  }
}
