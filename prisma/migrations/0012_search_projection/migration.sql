-- CreateTable
CREATE TABLE "search_projection_state" (
    "id" BOOLEAN NOT NULL DEFAULT true,
    "enabled" BOOLEAN NOT NULL DEFAULT false,
    "shards" INTEGER,
    "enabled_at" TIMESTAMPTZ(3),

    CONSTRAINT "search_projection_state_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "search_projection_outbox" (
    "id" BIGSERIAL NOT NULL,
    "image_id" UUID NOT NULL,
    "enqueued_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "search_projection_outbox_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "search_projection_outbox_image_id_idx" ON "search_projection_outbox"("image_id");



-- Hand-written below: the one state row, and the triggers that fill the outbox while the projection is enabled.
-- Statement-level with transition tables, so a bulk write (re-embedding, a cohort's import) costs one INSERT per
-- statement, not one per row; while the projection is off each costs one read of the state row.
INSERT INTO "search_projection_state" ("id", "enabled") VALUES (true, false);

CREATE FUNCTION search_projection_enabled() RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT coalesce((SELECT enabled FROM search_projection_state WHERE id), false)
$$;

-- An embedding written, replaced, re-graded (image_embedding.dr_grade follows fundus_image) or deleted.
CREATE FUNCTION search_projection_embedding_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF search_projection_enabled() THEN INSERT INTO search_projection_outbox (image_id) SELECT DISTINCT image_id FROM new_rows; END IF;
  RETURN NULL;
END $$;
CREATE FUNCTION search_projection_embedding_old() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF search_projection_enabled() THEN INSERT INTO search_projection_outbox (image_id) SELECT DISTINCT image_id FROM old_rows; END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER search_projection_embedding_insert AFTER INSERT ON image_embedding REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_projection_embedding_new();
CREATE TRIGGER search_projection_embedding_update AFTER UPDATE ON image_embedding REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_projection_embedding_new();
CREATE TRIGGER search_projection_embedding_delete AFTER DELETE ON image_embedding REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION search_projection_embedding_old();

-- A photograph moved to another eye, visit or patient, or its bytes replaced (the content hash an upload search
-- excludes). Its grade reaches the outbox through image_embedding; its deletion cascades there.
CREATE FUNCTION search_projection_image_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF search_projection_enabled() THEN
    INSERT INTO search_projection_outbox (image_id)
    SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE (n.eye, n.visit_id, n.patient_id, n.content_hash) IS DISTINCT FROM (o.eye, o.visit_id, o.patient_id, o.content_hash);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER search_projection_image_update AFTER UPDATE ON fundus_image REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_projection_image_update();

-- The filters' other columns: the patient's sex and birth year, the visit's date (age at the visit).
CREATE FUNCTION search_projection_patient_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF search_projection_enabled() THEN
    INSERT INTO search_projection_outbox (image_id)
    SELECT fi.id FROM new_rows n JOIN old_rows o ON o.id = n.id JOIN fundus_image fi ON fi.patient_id = n.id
    WHERE (n.sex, n.birth_year) IS DISTINCT FROM (o.sex, o.birth_year);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER search_projection_patient_update AFTER UPDATE ON patient REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_projection_patient_update();

CREATE FUNCTION search_projection_visit_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF search_projection_enabled() THEN
    INSERT INTO search_projection_outbox (image_id)
    SELECT fi.id FROM new_rows n JOIN old_rows o ON o.id = n.id JOIN fundus_image fi ON fi.visit_id = n.id
    WHERE n.visit_date IS DISTINCT FROM o.visit_date;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER search_projection_visit_update AFTER UPDATE ON visit REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_projection_visit_update();

-- The treatment filter: a treatment recorded, changed or removed re-projects every photograph of its patient.
CREATE FUNCTION search_projection_treatment_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF search_projection_enabled() THEN
    INSERT INTO search_projection_outbox (image_id) SELECT fi.id FROM fundus_image fi WHERE fi.patient_id IN (SELECT patient_id FROM new_rows);
  END IF;
  RETURN NULL;
END $$;
CREATE FUNCTION search_projection_treatment_old() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF search_projection_enabled() THEN
    INSERT INTO search_projection_outbox (image_id) SELECT fi.id FROM fundus_image fi WHERE fi.patient_id IN (SELECT patient_id FROM old_rows);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER search_projection_treatment_insert AFTER INSERT ON treatment REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_projection_treatment_new();
CREATE TRIGGER search_projection_treatment_update_new AFTER UPDATE ON treatment REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_projection_treatment_new();
CREATE TRIGGER search_projection_treatment_update_old AFTER UPDATE ON treatment REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION search_projection_treatment_old();
CREATE TRIGGER search_projection_treatment_delete AFTER DELETE ON treatment REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION search_projection_treatment_old();
