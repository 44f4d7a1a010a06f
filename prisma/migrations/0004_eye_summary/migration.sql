-- CreateTable
CREATE TABLE "eye_summary" (
    "patient_id" UUID NOT NULL,
    "eye" "eye" NOT NULL,
    "dataset" TEXT NOT NULL,
    "sex" "sex" NOT NULL,
    "diabetes_type" "diabetes_type" NOT NULL,
    "baseline_date" DATE NOT NULL,
    "last_date" DATE NOT NULL,
    "visits" INTEGER NOT NULL,
    "baseline_grade" INTEGER NOT NULL,
    "latest_grade" INTEGER NOT NULL,
    "grade_mask" INTEGER NOT NULL,
    "one_step_date" DATE,
    "referable_date" DATE,
    "pdr_date" DATE,
    "baseline_hba1c" DECIMAL(4,1),
    "age_band" TEXT,
    "hba1c_band" TEXT,
    "diabetes_years" INTEGER,
    "undated" BOOLEAN NOT NULL,
    "anti_vegf_count" INTEGER NOT NULL,
    "prp_laser_count" INTEGER NOT NULL,
    "focal_laser_count" INTEGER NOT NULL,
    "vitrectomy_count" INTEGER NOT NULL,
    "observation_count" INTEGER NOT NULL,
    "anti_vegf_in_follow_up" INTEGER NOT NULL,
    "patient_baseline_hba1c" DECIMAL(4,1),

    CONSTRAINT "eye_summary_pkey" PRIMARY KEY ("patient_id","eye")
);


-- Hand-written: the function that computes eye_summary rows and the triggers that keep them current.
-- eye_course_rows(patients, from, to): one row per eye with a graded photograph, over the visits in [from, to]
-- (nulls: no bound), for the given patients (null: everyone). eye_summary holds its unbounded result for all;
-- cohort statistics with a visit-date filter call it directly (apps/api/src/modules/cohort/cohort-filter.ts).
CREATE FUNCTION eye_course_rows(only_patients uuid[], visits_from date, visits_to date) RETURNS SETOF "eye_summary" LANGUAGE sql STABLE AS $$
  WITH visit_grade AS (
    SELECT i.patient_id, i.eye, v.visit_date, max(i.dr_grade) AS grade
    FROM fundus_image i JOIN visit v ON v.id = i.visit_id
    WHERE i.dr_grade IS NOT NULL
      AND (only_patients IS NULL OR i.patient_id = ANY (only_patients))
      AND (visits_from IS NULL OR v.visit_date >= visits_from)
      AND (visits_to IS NULL OR v.visit_date <= visits_to)
    GROUP BY i.patient_id, i.eye, v.visit_date
  ),
  course AS (
    SELECT patient_id, eye, min(visit_date) AS baseline_date, max(visit_date) AS last_date, count(*)::int AS visits,
           (array_agg(grade ORDER BY visit_date))[1] AS baseline_grade,
           (array_agg(grade ORDER BY visit_date DESC))[1] AS latest_grade,
           bit_or(1 << grade)::int AS grade_mask
    FROM visit_grade GROUP BY patient_id, eye
  ),
  -- The first later visit meeting each worsening definition: one ICDR step above baseline, grade 2+, grade 4.
  events AS (
    SELECT c.patient_id, c.eye,
           min(g.visit_date) FILTER (WHERE g.grade >= c.baseline_grade + 1) AS one_step_date,
           min(g.visit_date) FILTER (WHERE g.grade >= 2) AS referable_date,
           min(g.visit_date) FILTER (WHERE g.grade = 4) AS pdr_date
    FROM course c JOIN visit_grade g ON g.patient_id = c.patient_id AND g.eye = c.eye AND g.visit_date > c.baseline_date
    GROUP BY c.patient_id, c.eye
  ),
  -- Treatments of this eye (a BOTH or UNSPECIFIED treatment counts for each eye).
  treated AS (
    SELECT c.patient_id, c.eye,
           count(*) FILTER (WHERE t.type = 'ANTI_VEGF')::int AS anti_vegf,
           count(*) FILTER (WHERE t.type = 'PRP_LASER')::int AS prp_laser,
           count(*) FILTER (WHERE t.type = 'FOCAL_LASER')::int AS focal_laser,
           count(*) FILTER (WHERE t.type = 'VITRECTOMY')::int AS vitrectomy,
           count(*) FILTER (WHERE t.type = 'OBSERVATION')::int AS observation,
           count(*) FILTER (WHERE t.type = 'ANTI_VEGF' AND t.performed_on BETWEEN c.baseline_date AND c.last_date)::int AS anti_vegf_in_follow_up
    FROM course c JOIN treatment t ON t.patient_id = c.patient_id AND (t.eye::text = c.eye::text OR t.eye IN ('BOTH', 'UNSPECIFIED'))
    GROUP BY c.patient_id, c.eye
  ),
  -- Baseline HbA1c: the latest reading on or before the first visit, else the first within 180 days after.
  hba1c AS (
    SELECT DISTINCT ON (c.patient_id, c.eye) c.patient_id, c.eye, h.percent
    FROM course c JOIN hba1c_reading h ON h.patient_id = c.patient_id AND h.measured_on <= c.baseline_date + 180
    ORDER BY c.patient_id, c.eye, (h.measured_on <= c.baseline_date) DESC, abs(h.measured_on - c.baseline_date)
  )
  SELECT c.patient_id, c.eye, d.name, p.sex, p.diabetes_type, c.baseline_date, c.last_date, c.visits, c.baseline_grade, c.latest_grade, c.grade_mask,
         e.one_step_date, e.referable_date, e.pdr_date, h.percent,
         CASE WHEN p.birth_year IS NULL OR c.baseline_date = DATE '1900-01-01' THEN NULL
              WHEN extract(year FROM c.baseline_date)::int - p.birth_year < 40 THEN 'UNDER_40'
              WHEN extract(year FROM c.baseline_date)::int - p.birth_year < 50 THEN 'FROM_40_TO_49'
              WHEN extract(year FROM c.baseline_date)::int - p.birth_year < 60 THEN 'FROM_50_TO_59'
              WHEN extract(year FROM c.baseline_date)::int - p.birth_year < 70 THEN 'FROM_60_TO_69'
              WHEN extract(year FROM c.baseline_date)::int - p.birth_year < 80 THEN 'FROM_70_TO_79'
              ELSE 'AT_LEAST_80' END,
         CASE WHEN h.percent IS NULL THEN NULL WHEN h.percent < 7 THEN 'UNDER_7' WHEN h.percent < 8 THEN 'FROM_7_TO_8' WHEN h.percent < 9 THEN 'FROM_8_TO_9' ELSE 'AT_LEAST_9' END,
         CASE WHEN c.baseline_date = DATE '1900-01-01' THEN NULL ELSE extract(year FROM c.baseline_date)::int - p.diabetes_diagnosis_year END,
         c.baseline_date = DATE '1900-01-01',
         coalesce(t.anti_vegf, 0), coalesce(t.prp_laser, 0), coalesce(t.focal_laser, 0), coalesce(t.vitrectomy, 0), coalesce(t.observation, 0), coalesce(t.anti_vegf_in_follow_up, 0),
         first_value(h.percent) OVER (PARTITION BY c.patient_id ORDER BY c.baseline_date, c.eye)
  FROM course c JOIN patient p ON p.id = c.patient_id JOIN dataset d ON d.id = p.dataset_id
  LEFT JOIN events e ON e.patient_id = c.patient_id AND e.eye = c.eye
  LEFT JOIN treated t ON t.patient_id = c.patient_id AND t.eye = c.eye
  LEFT JOIN hba1c h ON h.patient_id = c.patient_id AND h.eye = c.eye
$$;

CREATE FUNCTION refresh_eye_summary(patients uuid[]) RETURNS void LANGUAGE sql AS $$
  DELETE FROM eye_summary WHERE patient_id = ANY (patients);
  INSERT INTO eye_summary SELECT * FROM eye_course_rows(patients, NULL, NULL);
$$;

INSERT INTO eye_summary SELECT * FROM eye_course_rows(NULL, NULL, NULL);

-- Statement-level triggers with transition tables: one recomputation per statement for the patients it touched,
-- so a bulk import recomputes each patient once. (A transition-table trigger takes one event, hence one each.)
CREATE FUNCTION eye_summary_refresh_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM refresh_eye_summary(ARRAY(SELECT DISTINCT patient_id FROM new_rows)); RETURN NULL; END $$;
CREATE FUNCTION eye_summary_refresh_old() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM refresh_eye_summary(ARRAY(SELECT DISTINCT patient_id FROM old_rows)); RETURN NULL; END $$;
CREATE FUNCTION eye_summary_refresh_both() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM refresh_eye_summary(ARRAY(SELECT patient_id FROM new_rows UNION SELECT patient_id FROM old_rows)); RETURN NULL; END $$;
CREATE FUNCTION eye_summary_refresh_patient() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM refresh_eye_summary(ARRAY(SELECT id FROM new_rows)); RETURN NULL; END $$;

CREATE TRIGGER eye_summary_image_insert AFTER INSERT ON fundus_image REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION eye_summary_refresh_new();
CREATE TRIGGER eye_summary_image_update AFTER UPDATE ON fundus_image REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION eye_summary_refresh_both();
CREATE TRIGGER eye_summary_image_delete AFTER DELETE ON fundus_image REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION eye_summary_refresh_old();
CREATE TRIGGER eye_summary_visit_update AFTER UPDATE ON visit REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION eye_summary_refresh_both();
CREATE TRIGGER eye_summary_treatment_insert AFTER INSERT ON treatment REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION eye_summary_refresh_new();
CREATE TRIGGER eye_summary_treatment_update AFTER UPDATE ON treatment REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION eye_summary_refresh_both();
CREATE TRIGGER eye_summary_treatment_delete AFTER DELETE ON treatment REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION eye_summary_refresh_old();
CREATE TRIGGER eye_summary_hba1c_insert AFTER INSERT ON hba1c_reading REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION eye_summary_refresh_new();
CREATE TRIGGER eye_summary_hba1c_update AFTER UPDATE ON hba1c_reading REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION eye_summary_refresh_both();
CREATE TRIGGER eye_summary_hba1c_delete AFTER DELETE ON hba1c_reading REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION eye_summary_refresh_old();
CREATE TRIGGER eye_summary_patient_update AFTER UPDATE ON patient REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION eye_summary_refresh_patient();
