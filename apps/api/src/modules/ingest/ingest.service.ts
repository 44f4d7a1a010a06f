// Ingestion: one ImportRecord (from an importer, or from the API's ingestCase mutation) becomes one case.
//
// Order and why:
// 1. Validate the record (BAD_USER_INPUT with a message a person can act on) before any work.
// 2. Read the bytes and hash them. A photograph whose SHA-256 is already stored, for the same patient and eye, is a
//    `duplicate`: reruns and overlapping imports add nothing twice, and nothing about the stored case changes. Stored
//    for another patient or the other eye, it is a `conflict` naming the stored case: one photograph cannot show two
//    eyes, and keeping the first claim while dropping the second record would lose it silently. Nothing is written.
// 3. Preprocess and embed OUTSIDE the transaction (it is the slow part, and a bad image must write nothing):
//    a PreprocessError (or an unreadable file) makes the result `rejected` with its code.
// 4. One interactive transaction writes dataset, patient, visit, blob, image, grading, diagnoses, treatments,
//    external links and the embedding, in two statements (write-case.ts), after checking the record's dates
//    against the birth year of the stored patient (BAD_USER_INPUT otherwise). A failure anywhere rolls all of it
//    back, so a crash leaves no half case and a rerun completes it. Per-patient advisory lock: the visit and the
//    diagnoses/treatments are find-or-create, which two concurrent ingests of one patient would otherwise both
//    create.
import { readFile } from 'node:fs/promises';
import { badInput } from '../../errors.js';
import type { Embedder } from '../../embedding/embedder.js';
import { PreprocessError, RASTER_IMAGE_MIME_TYPES, isRasterImageFormat, sniffImageFormat, type PreprocessErrorCode } from '../../embedding/preprocess.js';
import type { PrismaClient } from '../../generated/prisma/client.js';
import type { ImportItem, ImportRecord, ImportRowError } from '../../importers/import-record.js';
import { findRecordProblems } from '../../importers/record-problems.js';
import { sha256Hex } from '../common/content-hash.js';
import { writeCaseRows } from './write-case.js';

export type RejectionCode = PreprocessErrorCode | 'READ_FAILED' | 'INVALID_RECORD' | 'CONFLICT';

export type IngestResult =
  | { status: 'added'; imageId: string; patientId: string; visitId: string; contentHash: string }
  | { status: 'duplicate'; imageId: string; contentHash: string }
  /** The bytes are stored as case `imageId` of another patient or eye; nothing was written. */
  | { status: 'conflict'; imageId: string; contentHash: string; message: string }
  | { status: 'rejected'; code: RejectionCode; message: string };

/** Test seam: runs inside the transaction after the image row is written; a throw must roll everything back. */
export type IngestHooks = { afterImageWritten?: (context: { imageId: string; record: ImportRecord }) => Promise<void> | void };

const TRANSACTION_TIMEOUT_MS = 60_000;

/** Media type from the first bytes (preprocessing's signature table); the blob stores it so photographs are served with the right header. */
export function sniffImageMimeType(bytes: Uint8Array): string {
  const format = sniffImageFormat(bytes);
  return isRasterImageFormat(format) ? RASTER_IMAGE_MIME_TYPES[format] : 'application/octet-stream';
}

/** The bytes' own type wins over a declared one (a FHIR contentType can be wrong); the declared one fills in. */
function storedMimeType(record: ImportRecord, bytes: Uint8Array): string {
  const sniffed = sniffImageMimeType(bytes);
  if (sniffed !== 'application/octet-stream') return sniffed;
  return record.image.kind === 'bytes' && record.image.mimeType ? record.image.mimeType : sniffed;
}

export { findRecordProblems } from '../../importers/record-problems.js';

async function readImageBytes(record: ImportRecord): Promise<Buffer | { message: string }> {
  if (record.image.kind === 'bytes') return record.image.bytes;
  try {
    return await readFile(record.image.path);
  } catch (error) {
    return { message: `cannot read ${record.image.path}: ${(error as Error).message}` };
  }
}

function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return code === 'P2002' || code === '23505' || /unique constraint|duplicate key/i.test(String((error as Error)?.message ?? ''));
}

type StoredImage = { id: string; eye: string; mrnSystem: string; mrn: string };

async function findImageByHash(prisma: PrismaClient, contentHash: string): Promise<StoredImage | undefined> {
  const [row] = await prisma.$queryRaw<StoredImage[]>`
    SELECT fi.id::text AS id, fi.eye::text AS eye, p.mrn_system AS "mrnSystem", p.mrn
    FROM fundus_image fi JOIN patient p ON p.id = fi.patient_id
    WHERE fi.content_hash = ${contentHash}`;
  return row;
}

/** The outcome for bytes already stored: the same case again, or a claim on another patient's or eye's photograph. */
function compareWithStored(record: ImportRecord, stored: StoredImage, contentHash: string): IngestResult {
  const isSamePatient = stored.mrnSystem === record.patient.mrnSystem && stored.mrn === record.patient.mrn;
  if (isSamePatient && stored.eye === record.eye) return { status: 'duplicate', imageId: stored.id, contentHash };
  // The other patient is not named: whoever sends this record may not see that patient's identity.
  const owner = isSamePatient ? `the same patient's ${stored.eye} eye, not the ${record.eye} eye` : 'another patient';
  return {
    status: 'conflict',
    imageId: stored.id,
    contentHash,
    message: `This photograph (SHA-256 ${contentHash.slice(0, 12)}...) is already stored as case ${stored.id}, of ${owner}; a photograph belongs to one patient and eye, so nothing was written`,
  };
}

type CaseOptions = {
  prisma: PrismaClient;
  embedder: Embedder;
  record: ImportRecord;
  /** Must be the embedder's own version; present so callers state which version they expect to write. */
  modelVersion?: string;
  maxInputPixels?: number;
  hooks?: IngestHooks;
};

type EmbeddedImage = Awaited<ReturnType<Embedder['embedImage']>>;
/** Steps 1-3 done: either the outcome is already known, or everything the transaction needs is computed. */
type PreparedCase = { done: IngestResult } | { record: ImportRecord; bytes: Buffer; contentHash: string; embedded: EmbeddedImage; modelVersion: string };

async function prepareCase({ prisma, embedder, record, modelVersion = embedder.metadata.modelVersion, maxInputPixels }: CaseOptions): Promise<PreparedCase> {
  if (modelVersion !== embedder.metadata.modelVersion) {
    throw badInput(`The loaded model is ${embedder.metadata.modelVersion}, not ${modelVersion}; embeddings are stored under the model that computed them`);
  }
  const problems = findRecordProblems(record);
  if (problems.length > 0) throw badInput(`The case cannot be ingested: ${problems.join('; ')}`, { problems });

  const bytes = await readImageBytes(record);
  if (!Buffer.isBuffer(bytes)) return { done: { status: 'rejected', code: 'READ_FAILED', message: bytes.message } };
  const contentHash = sha256Hex(bytes);
  const existing = await findImageByHash(prisma, contentHash);
  if (existing) return { done: compareWithStored(record, existing, contentHash) };

  try {
    return { record, bytes, contentHash, embedded: await embedder.embedImage(bytes, { maxInputPixels }), modelVersion };
  } catch (error) {
    if (error instanceof PreprocessError) return { done: { status: 'rejected', code: error.code, message: error.message } };
    throw error;
  }
}

async function storeCase(prisma: PrismaClient, prepared: PreparedCase, hooks: IngestHooks): Promise<IngestResult> {
  if ('done' in prepared) return prepared.done;
  try {
    const { record, bytes, contentHash, embedded, modelVersion } = prepared;
    const rows = {
      record,
      bytes,
      contentHash,
      mimeType: storedMimeType(record, bytes),
      width: embedded.preprocessed.original.width,
      height: embedded.preprocessed.original.height,
      embedding: { modelVersion, embedding: embedded.embedding, attention: embedded.attention },
    };
    const { afterImageWritten } = hooks;
    const written = await prisma.$transaction(
      (tx) => writeCaseRows(tx, rows, afterImageWritten && ((imageId) => afterImageWritten({ imageId, record }))),
      { timeout: TRANSACTION_TIMEOUT_MS },
    );
    return { status: 'added', ...written, contentHash };
  } catch (error) {
    // Another ingest (or the same photograph twice in one file) stored these bytes between our check and commit.
    if (isUniqueViolation(error)) {
      const winner = await findImageByHash(prisma, prepared.contentHash);
      if (winner) return compareWithStored(prepared.record, winner, prepared.contentHash);
    }
    throw error;
  }
}

/**
 * Ingests one case. Idempotent by image content: a second call with the same bytes for the same patient and eye
 * returns `duplicate`, for another patient or eye `conflict`. The record is validated first, so a duplicate with bad
 * input still throws. Throws AppError BAD_USER_INPUT for an invalid record (nothing written); database failures
 * propagate after the transaction rolled back.
 */
export async function ingestCase(options: CaseOptions): Promise<IngestResult> {
  return storeCase(options.prisma, await prepareCase(options), options.hooks ?? {});
}

export type IngestSummary = {
  added: number;
  duplicates: number;
  rejected: Partial<Record<RejectionCode, number>>;
  badRows: number;
  /** The first problems, for the report (row, image, reason); counts above are complete. */
  problems: { row: number; image?: string; code: RejectionCode | 'BAD_ROW'; reason: string }[];
};

export type IngestProgress = { processed: number; summary: IngestSummary; last: { row: number; status: IngestResult['status'] | 'bad-row' } };

const MAX_REPORTED_PROBLEMS = 200;

/**
 * Ingests a stream of importer items one after another. Bad rows and rejected images are counted and skipped;
 * an invalid record is counted as INVALID_RECORD, a photograph stored for another patient or eye as CONFLICT; a
 * database failure aborts the run (a rerun resumes: every finished case is a duplicate the second time).
 */
export async function ingestRecords({
  prisma,
  embedder,
  items,
  modelVersion,
  limit = Number.POSITIVE_INFINITY,
  maxInputPixels,
  onProgress,
  hooks,
  lookahead = 2,
}: {
  prisma: PrismaClient;
  embedder: Embedder;
  items: AsyncIterable<ImportItem> | Iterable<ImportItem>;
  modelVersion?: string;
  /** Stop after this many records (bad rows do not count). */
  limit?: number;
  maxInputPixels?: number;
  onProgress?: (progress: IngestProgress) => void;
  hooks?: IngestHooks;
  /** Cases prepared (read, hashed, embedded) ahead of the one being written; 0 = strictly one at a time. */
  lookahead?: number;
}): Promise<IngestSummary> {
  const summary: IngestSummary = { added: 0, duplicates: 0, rejected: {}, badRows: 0, problems: [] };
  const note = (problem: IngestSummary['problems'][number]) => {
    if (summary.problems.length < MAX_REPORTED_PROBLEMS) summary.problems.push(problem);
  };
  // Pipeline: while one case is written (the database's turn), the next `lookahead` are read, hashed and
  // embedded (sharp and onnxruntime run off the main thread). Results are still taken in file order.
  type Pending = { item: ImportItem; prepared: Promise<{ value: PreparedCase } | { error: unknown }> | null };
  const pending: Pending[] = [];
  let records = 0;
  let processed = 0;
  const iterator = (Symbol.asyncIterator in items ? items[Symbol.asyncIterator]() : (items as Iterable<ImportItem>)[Symbol.iterator]()) as AsyncIterator<ImportItem> | Iterator<ImportItem>;
  let exhausted = false;
  const fill = async () => {
    while (!exhausted && pending.filter((entry) => entry.prepared).length <= lookahead && records < limit) {
      const next = await iterator.next();
      if (next.done) {
        exhausted = true;
        break;
      }
      const item = next.value;
      if (item.ok) records += 1;
      pending.push({
        item,
        prepared: item.ok
          ? prepareCase({ prisma, embedder, record: item.record, modelVersion, maxInputPixels }).then(
              (value) => ({ value }),
              (error: unknown) => ({ error }),
            )
          : null,
      });
    }
  };
  for (await fill(); pending.length > 0; await fill()) {
    const { item, prepared } = pending.shift()!;
    processed += 1;
    if (!item.ok || !prepared) {
      if (!item.ok) {
        summary.badRows += 1;
        note({ ...rowProblem(item.error), code: 'BAD_ROW' });
        onProgress?.({ processed, summary, last: { row: item.error.row, status: 'bad-row' } });
      }
      continue;
    }
    const { record } = item;
    const outcome = await prepared;
    let result: IngestResult;
    try {
      if ('error' in outcome) throw outcome.error;
      result = await storeCase(prisma, outcome.value, hooks ?? {});
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'BAD_USER_INPUT') {
        await Promise.allSettled(pending.map((entry) => entry.prepared));
        throw error;
      }
      result = { status: 'rejected', code: 'INVALID_RECORD', message: (error as Error).message };
    }
    if (result.status === 'added') summary.added += 1;
    else if (result.status === 'duplicate') summary.duplicates += 1;
    else if (result.status === 'conflict') {
      summary.rejected.CONFLICT = (summary.rejected.CONFLICT ?? 0) + 1;
      note({ row: record.row, image: record.image.kind === 'file' ? record.image.path : record.image.name, code: 'CONFLICT', reason: result.message });
    } else {
      summary.rejected[result.code] = (summary.rejected[result.code] ?? 0) + 1;
      note({ row: record.row, image: record.image.kind === 'file' ? record.image.path : record.image.name, code: result.code, reason: result.message });
    }
    onProgress?.({ processed, summary, last: { row: record.row, status: result.status } });
  }
  return summary;
}

function rowProblem(error: ImportRowError): { row: number; image?: string; reason: string } {
  return error.image === undefined ? { row: error.row, reason: error.reason } : { row: error.row, image: error.image, reason: error.reason };
}
