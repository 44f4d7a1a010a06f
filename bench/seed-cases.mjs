// Synthetic cases for benchmarks, written in bulk by SQL: N photographs of N/2 patients (two eyes), grades at a
// fixed mix, random unit embeddings of the given model version. Search cost depends on row count and dimension,
// not on what the vectors mean; but an HNSW walk does depend on how the vectors cluster (uniform random vectors
// are its hardest case), so `spread` (optional) draws each embedding around its grade's centre instead: a random
// unit centre per grade plus uniform noise of about `spread` in norm, normalised (pgvector's l2_normalize).
// `mixture` (optional, PostgreSQL only: `copyUrl`): embeddings that cluster like real ones instead
// (bench/real-mixture.mjs), grades at its EyePACS prevalence, the vectors written by COPY.
import pg from 'pg';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { from as copyFrom } from 'pg-copy-streams';
import pgvector from 'pgvector';
import { api } from './cli.mjs';

const { refreshPlannerStatistics } = await api('db/database.js');

/** 200 grades at the mixture's prevalence (73.5 / 7.0 / 15.1 / 2.5 / 2.0 %, to the nearest half per cent), for SQL's ARRAY[]. */
function gradeMixOf(prevalence) {
  const counts = prevalence.map((share) => Math.round(share * 200));
  counts[0] += 200 - counts.reduce((a, b) => a + b, 0);
  return counts.flatMap((count, grade) => Array(count).fill(grade));
}

export async function seedSyntheticCases(db, { caseCount, modelVersion, dimension, spread = null, mixture = null, copyUrl = null }) {
  if (mixture !== null && copyUrl === null) throw new Error('seedSyntheticCases: a mixture needs copyUrl (PostgreSQL)');
  const patients = Math.ceil(caseCount / 2);
  // The fixed mix, or the mixture's prevalence in blocks of 200 (g * 7919 mod 200 walks each block in another order).
  const gradeOf = mixture === null ? '(ARRAY[0,0,0,1,2,2,3,4])[1 + g % 8]' : `(ARRAY[${gradeMixOf(mixture.prevalence).join(',')}])[1 + (g::bigint * 7919) % 200]`;
  await db.sql.exec(`
    INSERT INTO dataset (id, name, is_synthetic) VALUES ('00000000-0000-4000-8000-000000000001', 'bench', true) ON CONFLICT DO NOTHING;
    INSERT INTO patient (id, dataset_id, mrn, mrn_system, birth_year, sex)
      SELECT md5('p' || g)::uuid, '00000000-0000-4000-8000-000000000001', 'BENCH-' || g, 'urn:bench', 1940 + g % 50, (ARRAY['FEMALE','MALE'])[1 + g % 2]::sex
      FROM generate_series(1, ${patients}) g;
    INSERT INTO visit (id, patient_id, visit_date) SELECT md5('v' || g)::uuid, md5('p' || g)::uuid, DATE '2020-01-01' + g % 1000 FROM generate_series(1, ${patients}) g;
    INSERT INTO image_blob (sha256, mime_type, byte_size, bytes) SELECT encode(sha256(('b' || g)::bytea), 'hex'), 'image/jpeg', 1, '\\x00'::bytea FROM generate_series(1, ${caseCount}) g;
    INSERT INTO fundus_image (id, visit_id, patient_id, eye, content_hash, width, height, dr_grade)
      SELECT md5('i' || g)::uuid, md5('v' || (1 + (g - 1) / 2))::uuid, md5('p' || (1 + (g - 1) / 2))::uuid, (ARRAY['LEFT','RIGHT'])[1 + g % 2]::eye,
             encode(sha256(('b' || g)::bytea), 'hex'), 1024, 768, ${gradeOf}
      FROM generate_series(1, ${caseCount}) g;
    INSERT INTO grading (image_id, dr_grade, source, graded_on) SELECT id, dr_grade, 'DATASET_LABEL', DATE '2020-01-01' FROM fundus_image;
  `);
  const version = modelVersion.replace(/'/g, "''");
  if (mixture !== null) {
    const client = new pg.Client({ connectionString: copyUrl });
    await client.connect();
    try {
      const { rows } = await client.query('SELECT id::text AS id, dr_grade FROM fundus_image ORDER BY id');
      const CHUNK = 5_000;
      const csvVersion = `"${modelVersion.replace(/"/g, '""')}"`;
      await pipeline(Readable.from((function* () {
        for (let start = 0; start < rows.length; start += CHUNK) {
          let text = '';
          for (const row of rows.slice(start, start + CHUNK)) {
            text += `${row.id},${csvVersion},"${pgvector.toSql(Array.from(mixture.sampleEmbedding(row.dr_grade)))}"\n`;
          }
          yield text;
        }
      })()), client.query(copyFrom('COPY image_embedding (image_id, model_version, embedding) FROM STDIN WITH (FORMAT csv)')));
    } finally {
      await client.end();
    }
  } else if (spread === null) {
    await db.sql.exec(`
      INSERT INTO image_embedding (image_id, model_version, embedding)
      SELECT fi.id, '${version}', (SELECT array_agg(x / norm)::vector FROM (SELECT x, sqrt(sum(x * x) OVER ()) AS norm FROM (SELECT random() - 0.5 + 0 * length(fi.id::text) AS x FROM generate_series(1, ${dimension})) r) n)
      FROM fundus_image fi;
    `);
  } else {
    // Uniform noise on [-a, a] per component has norm a * sqrt(dimension / 3).
    const half = Number(spread) / Math.sqrt(dimension / 3);
    await db.sql.exec(`
      CREATE TEMP TABLE grade_centre AS
        SELECT grade, l2_normalize((SELECT array_agg(random() - 0.5 + 0 * d + 0 * grade) FROM generate_series(1, ${dimension}) d)::vector) AS centre
        FROM generate_series(0, 4) grade;
      INSERT INTO image_embedding (image_id, model_version, embedding)
      SELECT fi.id, '${version}', l2_normalize(c.centre + (SELECT array_agg((2 * random() - 1) * ${half} + 0 * d + 0 * length(fi.id::text)) FROM generate_series(1, ${dimension}) d)::vector)
      FROM fundus_image fi JOIN grade_centre c ON c.grade = fi.dr_grade;
      DROP TABLE grade_centre;
    `);
  }
  // As the product does after its own bulk writes: without statistics the planner takes the fresh tables for empty
  // and ranks each grade by a btree scan and sort instead of walking its HNSW graph.
  await refreshPlannerStatistics(db);
}
