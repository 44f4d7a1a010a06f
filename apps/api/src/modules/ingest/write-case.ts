// The database half of ingestion: one prepared case (record, bytes, embedding) becomes its rows, inside the
// caller's transaction, in two statements:
//
// 1. dataset and patient, found or created (ON CONFLICT on their unique keys, never a read first), then the
//    per-patient advisory lock. The lock is taken before statement 2 reads the patient's visits, diagnoses and
//    treatments: those are find-or-create, which two concurrent ingests of one patient would otherwise both
//    create. Statement 2 runs under a new snapshot (READ COMMITTED), so it sees what the previous lock holder
//    committed. The record's dates are then checked against the birth year the patient now has (a stored one
//    wins over the record's): a record without a birth year can still date a visit before the stored patient's.
// 2. visit (found or created), blob (ON CONFLICT DO NOTHING: content-addressed), image, grading, embedding with
//    heat map, diagnoses, treatments and external links, as data-modifying CTEs of one INSERT. Foreign keys are
//    checked at the end of the statement, so rows may reference rows the same statement inserts. When this record
//    gives the patient a birth year the row lacked, the statement also returns the patient's earliest stored date
//    (its snapshot does not see the statement's own rows), and a stored record before that birth year (an undated
//    1900-01-01 visit, say) refuses the case: the birth year and the stored history cannot both be right.
// A refusal is BAD_USER_INPUT thrown inside the transaction, which rolls everything back.
//
// Why not Prisma's model API: a case took 14 statements that way (each upsert a read plus a write, nested creates
// read back), and on the embedded database every statement is parsed, described, bound and executed in WASM on
// the main thread, where it competes with the model. The bytes travel as base64 text decoded by the database:
// PGlite sends a bytea parameter as a hex string built byte by byte in JavaScript (about 8 ms for 43 kB, 50 ms for
// 250 kB; base64 costs 1.5 and 8 ms). bench/README.md has the measurements.
import { badInput } from '../../errors.js';
import { Prisma } from '../../generated/prisma/client.js';
import type { ImportRecord } from '../../importers/import-record.js';
import { findRecordDateProblems } from '../../importers/record-problems.js';
import { UNDATED_VISIT_DATE } from '../common/clinical-dates.js';
import { imageEmbeddingUpsertSql, type ImageEmbeddingRow } from '../../search/similar-images.js';
import { pickReferenceGrading } from '../case/case.service.js';

export type CaseRows = {
  record: ImportRecord;
  bytes: Buffer;
  mimeType: string;
  contentHash: string;
  /** Of the decoded photograph, pixels. */
  width: number;
  height: number;
  embedding: ImageEmbeddingRow;
};

export type WrittenCase = { imageId: string; patientId: string; visitId: string };

type Queryable = Pick<Prisma.TransactionClient, '$queryRaw'>;

/** A patient created concurrently is invisible to the statement that waited for it; the next attempt sees it. */
const PATIENT_ATTEMPTS = 3;

/**
 * Writes the rows of one case, or throws (the caller's transaction then rolls all of them back). A photograph
 * whose content hash is already stored fails on fundus_image's unique key; the caller reports a duplicate.
 */
export async function writeCaseRows(tx: Queryable, rows: CaseRows, afterImageWritten?: (imageId: string) => Promise<void> | void): Promise<WrittenCase> {
  const { record } = rows;
  const patient = await findOrCreatePatientAndLock(tx, record);
  if (patient.birthYear !== record.patient.birthYear) {
    const problems = findRecordDateProblems(record, { birthYear: patient.birthYear });
    if (problems.length > 0) throw badInput(`The case cannot be ingested: the stored patient's birth year is ${patient.birthYear}; ${problems.join('; ')}`, { problems });
  }
  // Only a birth year this record brings can contradict the stored history (a new patient has none: no refusal).
  const givesBirthYear = patient.storedBirthYear === null && patient.birthYear !== null;
  const [written] = await tx.$queryRaw<{ image_id: string; visit_id: string; earliest_stored_date: string | null }[]>(insertCaseSql(rows, patient.id, givesBirthYear));
  if (!written) throw new Error(`No image row was written for ${rows.contentHash}`);
  const earliest = written.earliest_stored_date;
  if (givesBirthYear && earliest !== null && Number(earliest.slice(0, 4)) < patient.birthYear!) {
    throw badInput(
      `The case cannot be ingested: it gives the patient birth year ${patient.birthYear}, but the patient's stored records begin on ${earliest}, before it` +
        (earliest === UNDATED_VISIT_DATE ? ` (${UNDATED_VISIT_DATE} is the placeholder of undated labels)` : ''),
      { field: 'patient.birthYear' },
    );
  }
  await afterImageWritten?.(written.image_id);
  return { imageId: written.image_id, patientId: patient.id, visitId: written.visit_id };
}

type LockedPatient = {
  id: string;
  /** After this statement: the stored one, or the record's when the row had none. */
  birthYear: number | null;
  /** Before this statement, as its snapshot saw the row (null for a new patient). */
  storedBirthYear: number | null;
};

/** Statement 1: dataset and patient (demographics the stored row lacks are filled in, never overwritten). */
async function findOrCreatePatientAndLock(tx: Queryable, record: ImportRecord): Promise<LockedPatient> {
  const { dataset, patient } = record;
  for (let attempt = 1; attempt <= PATIENT_ATTEMPTS; attempt += 1) {
    const [row] = await tx.$queryRaw<{ id: string; birth_year: number | null; stored_birth_year: number | null }[]>`
      WITH stored AS (
        SELECT birth_year FROM patient WHERE mrn_system = ${patient.mrnSystem} AND mrn = ${patient.mrn}
      ), new_dataset AS (
        INSERT INTO dataset (name, description, is_synthetic) VALUES (${dataset.name}, ${dataset.description}::text, false)
        ON CONFLICT (name) DO NOTHING
        RETURNING id
      ), dataset_row AS (
        SELECT id FROM new_dataset UNION ALL SELECT id FROM dataset WHERE name = ${dataset.name}
      ), written AS (
        INSERT INTO patient (dataset_id, mrn, mrn_system, birth_year, sex, diabetes_type)
        SELECT id, ${patient.mrn}, ${patient.mrnSystem}, ${patient.birthYear}::int, ${patient.sex ?? 'UNKNOWN'}::"sex", ${patient.diabetesType ?? 'UNKNOWN'}::"diabetes_type"
        FROM dataset_row
        ON CONFLICT (mrn_system, mrn) DO UPDATE SET
          birth_year = COALESCE(patient.birth_year, EXCLUDED.birth_year),
          sex = CASE WHEN patient.sex = 'UNKNOWN' THEN EXCLUDED.sex ELSE patient.sex END,
          diabetes_type = CASE WHEN patient.diabetes_type = 'UNKNOWN' THEN EXCLUDED.diabetes_type ELSE patient.diabetes_type END
        WHERE (patient.birth_year IS NULL AND EXCLUDED.birth_year IS NOT NULL)
           OR (patient.sex = 'UNKNOWN' AND EXCLUDED.sex <> 'UNKNOWN')
           OR (patient.diabetes_type = 'UNKNOWN' AND EXCLUDED.diabetes_type <> 'UNKNOWN')
        RETURNING id, birth_year
      ), patient_row AS (
        -- An existing patient with nothing to fill in is not updated (no new row version), so it is read here.
        SELECT id, birth_year FROM written
        UNION ALL
        SELECT id, birth_year FROM patient WHERE mrn_system = ${patient.mrnSystem} AND mrn = ${patient.mrn} AND NOT EXISTS (SELECT 1 FROM written)
      )
      SELECT id::text AS id, birth_year, (SELECT birth_year FROM stored) AS stored_birth_year, pg_advisory_xact_lock(hashtext(id::text))::text AS locked
      FROM patient_row`;
    if (row) return { id: row.id, birthYear: row.birth_year, storedBirthYear: row.stored_birth_year };
  }
  throw new Error(`Patient ${patient.mrnSystem}|${patient.mrn} could be neither found nor created`);
}

/** Statement 2: everything that hangs off the patient, as one INSERT with data-modifying CTEs. */
function insertCaseSql({ record, bytes, mimeType, contentHash, width, height, embedding }: CaseRows, patientId: string, withEarliestStoredDate: boolean): Prisma.Sql {
  const patient = Prisma.sql`${patientId}::uuid`;
  const grading = record.grading;
  const drGrade = pickReferenceGrading(grading ? [grading] : [])?.drGrade ?? null;
  const ctes: Prisma.Sql[] = [
    Prisma.sql`found_visit AS (
      SELECT id FROM visit WHERE patient_id = ${patient} AND visit_date = ${record.visitDate}::date ORDER BY id LIMIT 1
    )`,
    Prisma.sql`new_visit AS (
      INSERT INTO visit (patient_id, visit_date) SELECT ${patient}, ${record.visitDate}::date WHERE NOT EXISTS (SELECT 1 FROM found_visit)
      RETURNING id
    )`,
    Prisma.sql`visit_row AS (SELECT id FROM found_visit UNION ALL SELECT id FROM new_visit)`,
    Prisma.sql`blob AS (
      INSERT INTO image_blob (sha256, mime_type, byte_size, bytes)
      VALUES (${contentHash}, ${mimeType}, ${bytes.length}::int, decode(${bytes.toString('base64')}, 'base64'))
      ON CONFLICT (sha256) DO NOTHING
    )`,
    Prisma.sql`image AS (
      INSERT INTO fundus_image (visit_id, patient_id, eye, eye_inferred, content_hash, width, height, quality, dr_grade)
      SELECT id, ${patient}, ${record.eye}::"eye", ${record.isEyeAssumed}::boolean, ${contentHash}, ${width}::int, ${height}::int, ${record.quality}::"image_quality", ${drGrade}::int
      FROM visit_row
      RETURNING id, visit_id
    )`,
    Prisma.sql`embedding AS (${imageEmbeddingUpsertSql(Prisma.sql`(SELECT id FROM image)`, embedding, `image ${contentHash}`)})`,
  ];
  if (grading) {
    ctes.push(Prisma.sql`grading AS (
      INSERT INTO grading (image_id, dr_grade, maculopathy, macular_edema_risk, source, grader, original_scale, original_value, graded_on)
      SELECT id, ${grading.drGrade}::int, ${grading.maculopathy}::boolean, ${grading.macularEdemaRisk}::int, ${grading.source}::"grade_source",
             ${grading.grader}::text, ${grading.originalScale}::text, ${grading.originalValue}::text, ${grading.gradedOn}::date
      FROM image
    )`);
  }
  const visitIdOn = (date: string) => (date === record.visitDate ? Prisma.sql`(SELECT id FROM visit_row)` : Prisma.sql`NULL::uuid`);
  // The same diagnosis or treatment twice in one record is written once: the NOT EXISTS below reads the
  // statement's snapshot, which does not contain the rows the statement itself inserts.
  const diagnoses = uniqueBy(record.diagnoses, (diagnosis) => [diagnosis.icd10Code, diagnosis.eye, diagnosis.diagnosedOn]);
  if (diagnoses.length > 0) {
    const values = diagnoses.map(
      (diagnosis) => Prisma.sql`(${diagnosis.icd10Code}::text, ${diagnosis.text}::text, ${diagnosis.eye}::"laterality", ${diagnosis.diagnosedOn}::date, ${visitIdOn(diagnosis.diagnosedOn)})`,
    );
    ctes.push(Prisma.sql`diagnoses AS (
      INSERT INTO diagnosis (patient_id, visit_id, icd10_code, text, eye, diagnosed_on)
      SELECT ${patient}, d.visit_id, d.code, d.text, d.eye, d.diagnosed_on
      FROM (VALUES ${Prisma.join(values)}) AS d (code, text, eye, diagnosed_on, visit_id)
      WHERE NOT EXISTS (
        SELECT 1 FROM diagnosis x
        WHERE x.patient_id = ${patient} AND x.icd10_code = d.code AND x.eye = d.eye AND x.diagnosed_on = d.diagnosed_on)
    )`);
  }
  const treatments = uniqueBy(record.treatments, (treatment) => [treatment.type, treatment.agent, treatment.eye, treatment.performedOn]);
  if (treatments.length > 0) {
    const values = treatments.map(
      (treatment) =>
        Prisma.sql`(${treatment.type}::"treatment_type", ${treatment.agent}::"anti_vegf_agent", ${treatment.eye}::"laterality", ${treatment.performedOn}::date, ${treatment.notes}::text, ${visitIdOn(treatment.performedOn)})`,
    );
    ctes.push(Prisma.sql`treatments AS (
      INSERT INTO treatment (patient_id, visit_id, type, agent, eye, performed_on, notes)
      SELECT ${patient}, t.visit_id, t.type, t.agent, t.eye, t.performed_on, t.notes
      FROM (VALUES ${Prisma.join(values)}) AS t (type, agent, eye, performed_on, notes, visit_id)
      WHERE NOT EXISTS (
        SELECT 1 FROM treatment x
        WHERE x.patient_id = ${patient} AND x.type = t.type AND x.agent IS NOT DISTINCT FROM t.agent AND x.eye = t.eye AND x.performed_on = t.performed_on)
    )`);
  }
  const links = uniqueBy(record.externalLinks, (link) => [link.system, link.identifier]);
  if (links.length > 0) {
    const values = links.map((link) => Prisma.sql`(${link.system}::text, ${link.identifier}::text, ${link.target === 'patient'}::boolean)`);
    // An identifier already linked (to this case or another) stays as it is.
    ctes.push(Prisma.sql`links AS (
      INSERT INTO external_link (system, identifier, patient_id, image_id)
      SELECT l.system, l.identifier, CASE WHEN l.for_patient THEN ${patient} END, CASE WHEN l.for_patient THEN NULL ELSE (SELECT id FROM image) END
      FROM (VALUES ${Prisma.join(values)}) AS l (system, identifier, for_patient)
      ON CONFLICT (system, identifier) DO NOTHING
    )`);
  }
  // Read from the statement's snapshot: the patient's rows before this case.
  const earliestStoredDate = withEarliestStoredDate
    ? Prisma.sql`(SELECT min(d)::text FROM (
        SELECT min(visit_date) AS d FROM visit WHERE patient_id = ${patient}
        UNION ALL SELECT min(diagnosed_on) FROM diagnosis WHERE patient_id = ${patient}
        UNION ALL SELECT min(performed_on) FROM treatment WHERE patient_id = ${patient}) AS dates)`
    : Prisma.sql`NULL::text`;
  return Prisma.sql`WITH ${Prisma.join(ctes, ',\n')}
    SELECT id::text AS image_id, visit_id::text AS visit_id, ${earliestStoredDate} AS earliest_stored_date FROM image`;
}

function uniqueBy<T>(items: readonly T[], key: (item: T) => unknown[]): T[] {
  const seen = new Set<string>();
  return items.filter((item) => {
    const value = JSON.stringify(key(item));
    if (seen.has(value)) return false;
    seen.add(value);
    return true;
  });
}
