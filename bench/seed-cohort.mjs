// A synthetic longitudinal cohort for statistics benchmarks, in bulk SQL: N patients, yearly visits from 2014,
// each visit with a graded photograph of each eye (a random walk upwards on the ICDR scale), an HbA1c reading per
// visit, anti-VEGF injections for PDR eyes. Blobs are one shared byte each patient-eye-visit (hash-unique).
export async function seedLongitudinalCohort(db, { patients, visitsPerPatient }) {
  const visits = patients * visitsPerPatient;
  // The eye_summary triggers recompute per statement; for one bulk load it is faster to switch them off (the
  // owner may) and rebuild the summary once at the end, as a restore would.
  const tables = ['fundus_image', 'visit', 'treatment', 'hba1c_reading', 'patient'];
  await db.sql.exec(tables.map((table) => `ALTER TABLE ${table} DISABLE TRIGGER USER;`).join('\n'));
  await db.sql.exec(`
    INSERT INTO dataset (id, name, is_synthetic) VALUES ('00000000-0000-4000-8000-000000000002', 'bench-cohort', true) ON CONFLICT DO NOTHING;
    INSERT INTO patient (id, dataset_id, mrn, mrn_system, birth_year, sex, diabetes_type, diabetes_diagnosis_year)
      SELECT md5('cp' || g)::uuid, '00000000-0000-4000-8000-000000000002', 'COH-' || g, 'urn:bench:cohort', 1935 + g % 55,
             (ARRAY['FEMALE','MALE'])[1 + g % 2]::sex, (ARRAY['TYPE_2','TYPE_2','TYPE_2','TYPE_1'])[1 + g % 4]::diabetes_type, 1990 + g % 30
      FROM generate_series(1, ${patients}) g;
    INSERT INTO visit (id, patient_id, visit_date)
      SELECT md5('cv' || p || '-' || n)::uuid, md5('cp' || p)::uuid, DATE '2014-01-01' + (n * 365 + (p * 37) % 200)
      FROM generate_series(1, ${patients}) p, generate_series(0, ${visitsPerPatient - 1}) n;
    INSERT INTO image_blob (sha256, mime_type, byte_size, bytes)
      SELECT encode(sha256(('cb' || p || '-' || n || '-' || e)::bytea), 'hex'), 'image/jpeg', 1, '\\x00'::bytea
      FROM generate_series(1, ${patients}) p, generate_series(0, ${visitsPerPatient - 1}) n, generate_series(0, 1) e;
    INSERT INTO fundus_image (id, visit_id, patient_id, eye, content_hash, width, height, dr_grade)
      SELECT md5('ci' || p || '-' || n || '-' || e)::uuid, md5('cv' || p || '-' || n)::uuid, md5('cp' || p)::uuid, (ARRAY['LEFT','RIGHT'])[1 + e]::eye,
             encode(sha256(('cb' || p || '-' || n || '-' || e)::bytea), 'hex'), 1024, 768,
             least(4, (ARRAY[0,0,0,0,1,1,2,3])[1 + (p * 7 + e) % 8] + (CASE WHEN (p * 13 + e * 5) % 9 < n THEN 1 ELSE 0 END))
      FROM generate_series(1, ${patients}) p, generate_series(0, ${visitsPerPatient - 1}) n, generate_series(0, 1) e;
    INSERT INTO grading (image_id, dr_grade, source, graded_on) SELECT id, dr_grade, 'DATASET_LABEL', DATE '2014-01-01' FROM fundus_image WHERE patient_id IN (SELECT id FROM patient WHERE dataset_id = '00000000-0000-4000-8000-000000000002');
    INSERT INTO hba1c_reading (patient_id, measured_on, percent)
      SELECT v.patient_id, v.visit_date, (6 + ((abs(hashtext(v.id::text)) % 50) / 10.0))::numeric(4,1) FROM visit v JOIN patient p ON p.id = v.patient_id WHERE p.dataset_id = '00000000-0000-4000-8000-000000000002';
    INSERT INTO treatment (patient_id, visit_id, type, agent, eye, performed_on)
      SELECT i.patient_id, i.visit_id, 'ANTI_VEGF', 'AFLIBERCEPT', i.eye::text::laterality, v.visit_date
      FROM fundus_image i JOIN visit v ON v.id = i.visit_id JOIN patient p ON p.id = i.patient_id
      WHERE i.dr_grade = 4 AND p.dataset_id = '00000000-0000-4000-8000-000000000002';
  `);
  await db.sql.exec(tables.map((table) => `ALTER TABLE ${table} ENABLE TRIGGER USER;`).join('\n'));
  await db.sql.exec('DELETE FROM eye_summary; INSERT INTO eye_summary SELECT * FROM eye_course_rows(NULL, NULL, NULL); ANALYZE;');
  return { patients, visits, photographs: visits * 2 };
}
