// The audit log: every read, search, upload, ingest, link, key change and refused request, one row each, in the
// append-only, hash-chained audit_event table (prisma/migrations/0002_auth_audit: the database numbers, times and
// chains each row and refuses UPDATE, DELETE and TRUNCATE).
//
// A request collects its entries in an AuditTrail while it runs and writes them before the response leaves
// (server.ts), in one INSERT with those of the requests that are waiting at the same moment (AuditWriter, group
// commit). The INSERT is a statement of its own, outside any write's transaction: a write that rolled back is
// still recorded as refused or failed, and a read whose row cannot be written is answered with an error, never
// with the data.
import type { SqlRunner } from '../db/sql-runner.js';
import { isUuid } from '../modules/common/validation.js';

export const AUDIT_OUTCOME_OK = 'OK';

export type AuditEntry = {
  operation: string;
  /** OK or the stable error code the request (or this part of it) was answered with. */
  outcome: string;
  patientIds?: readonly string[];
  imageIds?: readonly string[];
  /** Filters, identifiers asked for, counts. Never tokens, secrets or photographs. */
  details?: Record<string, unknown>;
};

export type AuditActor = { requestId: string; subject: string | null; role: string | null; keyId: string | null };

/** One request's entries, written together when the response is ready. */
export class AuditTrail {
  readonly entries: AuditEntry[] = [];
  add(entry: AuditEntry): void {
    this.entries.push(entry);
  }
}

const uuids = (values: readonly string[] | undefined) => [...new Set((values ?? []).filter(isUuid))];

/** Rows per INSERT at most (9 parameters a row, far under PostgreSQL's 65,535): a request with more goes alone. */
export const AUDIT_BATCH_MAX_ROWS = 1000;

type PendingWrite = { actor: AuditActor; entries: readonly AuditEntry[]; resolve: () => void; reject: (error: unknown) => void };

/** A data exception (22xxx) or a constraint violation (23xxx): the rows are at fault, not the database. */
const isRowError = (error: unknown) => /^2[23]/.test(String((error as { code?: unknown })?.code ?? ''));

/**
 * Group commit for the audit log. Every row goes through the chain head's row lock, held until the commit's WAL
 * record is on disk, so concurrent requests' INSERTs queue on one lock and one fsync each. The writer keeps one
 * INSERT in flight; requests that arrive meanwhile wait and go together in the next one, one lock and one fsync
 * for all of them. A lone request is written at once (no timer, no added delay). Each caller's promise resolves
 * only when its own rows are committed, so "recorded before the response leaves" holds as before; a request's
 * rows stay together and in order.
 *
 * When a batch is refused for its rows (a data exception or constraint violation), each request of it is written
 * alone, so one bad entry fails only its own request; any other error (the database unreachable) fails them all,
 * as it would have failed each one. Nothing is retried after such an error: a commit whose outcome is unknown
 * must not be written twice.
 */
export class AuditWriter {
  private readonly queue: PendingWrite[] = [];
  private draining = false;
  private readonly counts = { inserts: 0, requests: 0, rows: 0, largestInsert: 0 };

  constructor(private readonly sql: SqlRunner, private readonly maxRows = AUDIT_BATCH_MAX_ROWS) {}

  /** Resolves when the entries are committed; rejects with the database's error when they are not. */
  write(actor: AuditActor, entries: readonly AuditEntry[]): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ actor, entries, resolve, reject });
      if (!this.draining) void this.drain();
    });
  }

  /** INSERTs committed, the requests and rows they carried, the most requests in one; requests waiting now. */
  stats(): { inserts: number; requests: number; rows: number; largestInsert: number; waiting: number } {
    return { ...this.counts, waiting: this.queue.length };
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.length > 0) await this.flush(this.take());
    } finally {
      this.draining = false;
    }
  }

  /** The longest prefix of the queue within maxRows (always at least one request). */
  private take(): PendingWrite[] {
    let rows = 0;
    let count = 0;
    while (count < this.queue.length && (count === 0 || rows + this.queue[count]!.entries.length <= this.maxRows)) {
      rows += this.queue[count]!.entries.length;
      count += 1;
    }
    return this.queue.splice(0, count);
  }

  private async flush(batch: PendingWrite[]): Promise<void> {
    try {
      await this.insert(batch);
      for (const pending of batch) pending.resolve();
    } catch (error) {
      if (batch.length === 1 || !isRowError(error)) {
        for (const pending of batch) pending.reject(error);
        return;
      }
      for (const pending of batch) {
        try {
          await this.insert([pending]);
          pending.resolve();
        } catch (alone) {
          pending.reject(alone);
        }
      }
    }
  }

  private async insert(batch: readonly PendingWrite[]): Promise<void> {
    const params: unknown[] = [];
    const rows = batch.flatMap(({ actor, entries }) =>
      entries.map((entry) => {
        const base = params.length;
        params.push(actor.requestId, actor.subject, actor.role, actor.keyId, entry.operation, entry.outcome, uuids(entry.patientIds), uuids(entry.imageIds), JSON.stringify(entry.details ?? {}));
        const p = (index: number) => `$${base + index}`;
        return `(${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}::uuid, ${p(5)}, ${p(6)}, ${p(7)}::uuid[], ${p(8)}::uuid[], ${p(9)}::jsonb)`;
      }),
    );
    await this.sql.query(`INSERT INTO audit_event (request_id, subject, role, key_id, operation, outcome, patient_ids, image_ids, details) VALUES ${rows.join(', ')}`, params);
    this.counts.inserts += 1;
    this.counts.requests += batch.length;
    this.counts.rows += rows.length;
    this.counts.largestInsert = Math.max(this.counts.largestInsert, batch.length);
  }
}

const writers = new WeakMap<SqlRunner, AuditWriter>();

/** The writer of everything recorded through this runner: one per database handle, shared by all its callers. */
export function auditWriterFor(sql: SqlRunner): AuditWriter {
  let writer = writers.get(sql);
  if (!writer) {
    writer = new AuditWriter(sql);
    writers.set(sql, writer);
  }
  return writer;
}

/** Appends the entries (the trigger chains them in order), together with other requests' (AuditWriter); resolves when committed. */
export function writeAuditEvents(sql: SqlRunner, actor: AuditActor, entries: readonly AuditEntry[]): Promise<void> {
  return auditWriterFor(sql).write(actor, entries);
}

export type AuditEventRow = {
  seq: string;
  occurredAt: Date;
  requestId: string;
  subject: string | null;
  role: string | null;
  keyId: string | null;
  operation: string;
  outcome: string;
  patientIds: string[];
  imageIds: string[];
  details: Record<string, unknown>;
  hash: string;
};

export type AuditFilters = { subject?: string | null; patientId?: string | null; operation?: string | null; outcome?: string | null; from?: Date | null; to?: Date | null };

/** Newest first, keyset-paginated on seq (`before` = the last seq of the previous page). */
export async function listAuditEvents(sql: SqlRunner, { filters, first, before }: { filters: AuditFilters; first: number; before?: bigint | null }): Promise<{ rows: AuditEventRow[]; hasMore: boolean }> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (clause: (placeholder: string) => string, value: unknown) => {
    params.push(value);
    where.push(clause(`$${params.length}`));
  };
  if (filters.subject) add((p) => `subject = ${p}`, filters.subject);
  if (filters.patientId) add((p) => `patient_ids @> ARRAY[${p}::uuid]`, filters.patientId);
  if (filters.operation) add((p) => `operation = ${p}`, filters.operation);
  if (filters.outcome) add((p) => `outcome = ${p}`, filters.outcome);
  if (filters.from) add((p) => `occurred_at >= ${p}::timestamptz`, filters.from.toISOString());
  if (filters.to) add((p) => `occurred_at < ${p}::timestamptz`, filters.to.toISOString());
  if (before !== undefined && before !== null) add((p) => `a.seq < ${p}::bigint`, before.toString());
  params.push(first + 1);
  const rows = await sql.query<{
    seq: string;
    occurred_at: Date | string;
    request_id: string;
    subject: string | null;
    role: string | null;
    key_id: string | null;
    operation: string;
    outcome: string;
    patient_ids: string[] | string | null;
    image_ids: string[] | string | null;
    details: Record<string, unknown> | string;
    hash: string;
  }>(
    `SELECT seq::text AS seq, occurred_at, request_id, subject, role, key_id::text AS key_id, operation, outcome,
            patient_ids::text[] AS patient_ids, image_ids::text[] AS image_ids, details, hash
     FROM audit_event a ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
     ORDER BY a.seq DESC LIMIT $${params.length}`,
    params,
  );
  const toArray = (value: string[] | string | null) => (Array.isArray(value) ? value : typeof value === 'string' ? value.replace(/^\{|\}$/g, '').split(',').filter(Boolean) : []);
  return {
    hasMore: rows.length > first,
    rows: rows.slice(0, first).map((row) => ({
      seq: row.seq,
      occurredAt: new Date(row.occurred_at),
      requestId: row.request_id,
      subject: row.subject,
      role: row.role,
      keyId: row.key_id,
      operation: row.operation,
      outcome: row.outcome,
      patientIds: toArray(row.patient_ids),
      imageIds: toArray(row.image_ids),
      details: typeof row.details === 'string' ? (JSON.parse(row.details) as Record<string, unknown>) : row.details,
      hash: row.hash,
    })),
  };
}

export type ChainVerification = {
  rows: number;
  headSeq: string;
  headHash: string;
  /** The first row whose hash, link or number is wrong; null when the whole chain holds. */
  firstBroken: { seq: string; reason: string } | null;
};

const GENESIS_HASH = '0'.repeat(64);
const VERIFY_PAGE = 5000;

/**
 * Recomputes every row's digest (the database's audit_event_digest over the row's columns) and checks that
 * numbers run 1, 2, 3, ..., that each row links to its predecessor's hash, and that the head row names the last
 * row (a deleted tail is caught there).
 */
export async function verifyAuditChain(sql: SqlRunner): Promise<ChainVerification> {
  const [head] = await sql.query<{ seq: string; hash: string }>('SELECT seq::text AS seq, hash FROM audit_chain_head WHERE id = 1');
  if (!head) return { rows: 0, headSeq: '0', headHash: GENESIS_HASH, firstBroken: { seq: '0', reason: 'the chain head row is missing' } };
  let expectedSeq = 1n;
  let previousHash = GENESIS_HASH;
  let rows = 0;
  for (;;) {
    const page = await sql.query<{ seq: string; prev_hash: string; hash: string; digest: string }>(
      `SELECT seq::text AS seq, prev_hash, hash, audit_event_digest(e) AS digest FROM audit_event e WHERE e.seq >= $1::bigint ORDER BY e.seq LIMIT ${VERIFY_PAGE}`,
      [expectedSeq.toString()],
    );
    for (const row of page) {
      const broken = (reason: string) => ({ rows, headSeq: head.seq, headHash: head.hash, firstBroken: { seq: row.seq, reason } });
      if (BigInt(row.seq) !== expectedSeq) return { ...broken(`row ${expectedSeq} is missing (next present is ${row.seq})`), firstBroken: { seq: expectedSeq.toString(), reason: `row ${expectedSeq} is missing (the next row present is ${row.seq})` } };
      if (row.prev_hash !== previousHash) return broken(`its prev_hash does not match row ${expectedSeq - 1n}'s hash`);
      if (row.hash !== row.digest) return broken('its content does not match its hash (the row was altered)');
      previousHash = row.hash;
      expectedSeq += 1n;
      rows += 1;
    }
    if (page.length < VERIFY_PAGE) break;
  }
  const lastSeq = (expectedSeq - 1n).toString();
  if (head.seq !== lastSeq || head.hash !== previousHash) {
    return { rows, headSeq: head.seq, headHash: head.hash, firstBroken: { seq: (expectedSeq).toString(), reason: `the chain head names row ${head.seq} but the log ends at row ${lastSeq} (rows were removed from the end)` } };
  }
  return { rows, headSeq: head.seq, headHash: head.hash, firstBroken: null };
}
