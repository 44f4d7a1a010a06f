-- AlterEnum
ALTER TYPE "grade_source" ADD VALUE 'EHR';

-- CreateTable
CREATE TABLE "api_key" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" TEXT NOT NULL,
    "role" TEXT NOT NULL,
    "identifier_system" TEXT,
    "secret_hash" CHAR(64) NOT NULL,
    "created_by" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expires_at" TIMESTAMPTZ(3),
    "revoked_at" TIMESTAMPTZ(3),

    CONSTRAINT "api_key_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "audit_event" (
    "seq" BIGINT NOT NULL,
    "occurred_at" TIMESTAMPTZ(3) NOT NULL,
    "request_id" TEXT NOT NULL,
    "subject" TEXT,
    "role" TEXT,
    "key_id" UUID,
    "operation" TEXT NOT NULL,
    "outcome" TEXT NOT NULL,
    "patient_ids" UUID[],
    "image_ids" UUID[],
    "details" JSONB NOT NULL DEFAULT '{}',
    "prev_hash" CHAR(64) NOT NULL,
    "hash" CHAR(64) NOT NULL,

    CONSTRAINT "audit_event_pkey" PRIMARY KEY ("seq")
);

-- CreateTable
CREATE TABLE "audit_chain_head" (
    "id" INTEGER NOT NULL,
    "seq" BIGINT NOT NULL,
    "hash" CHAR(64) NOT NULL,

    CONSTRAINT "audit_chain_head_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "api_key_secret_hash_key" ON "api_key"("secret_hash");

-- CreateIndex
CREATE INDEX "audit_event_occurred_at_idx" ON "audit_event"("occurred_at");

-- CreateIndex
CREATE INDEX "audit_event_subject_occurred_at_idx" ON "audit_event"("subject", "occurred_at");

-- CreateIndex
CREATE INDEX "audit_event_operation_occurred_at_idx" ON "audit_event"("operation", "occurred_at");

-- CreateIndex
CREATE INDEX "audit_event_patient_ids_idx" ON "audit_event" USING GIN ("patient_ids");



-- Hand-written: constraints, functions and triggers Prisma cannot express (see 0001_init for the convention; the
-- drift test checks the constraints by name).
ALTER TABLE "api_key" ADD CONSTRAINT "api_key_role_known" CHECK ("role" IN ('clinician', 'researcher', 'ehr-service', 'admin'));
-- An ehr-service key is bound to exactly one identifier system; no other role is.
ALTER TABLE "api_key" ADD CONSTRAINT "api_key_ehr_bound_to_system" CHECK (("role" = 'ehr-service') = ("identifier_system" IS NOT NULL));
ALTER TABLE "api_key" ADD CONSTRAINT "api_key_secret_hash_hex" CHECK ("secret_hash" ~ '^[0-9a-f]{64}$');
ALTER TABLE "audit_event" ADD CONSTRAINT "audit_event_hashes_hex" CHECK ("hash" ~ '^[0-9a-f]{64}$' AND "prev_hash" ~ '^[0-9a-f]{64}$');
ALTER TABLE "audit_chain_head" ADD CONSTRAINT "audit_chain_head_single_row" CHECK ("id" = 1);

-- The row's digest: SHA-256 over a JSON array of every column but the hash itself, the previous row's hash
-- included. jsonb's text form is canonical (key order, spacing), so the same row always gives the same digest.
-- audit:verify recomputes it for every row and checks the links.
CREATE FUNCTION audit_event_digest(e "audit_event") RETURNS char(64) LANGUAGE sql STABLE AS $$
  SELECT encode(sha256(convert_to(jsonb_build_array(
    e.seq,
    to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    e.request_id, e.subject, e.role, e.key_id, e.operation, e.outcome,
    coalesce(e.patient_ids, '{}'), coalesce(e.image_ids, '{}'), e.details, e.prev_hash
  )::text, 'UTF8')), 'hex')
$$;

INSERT INTO "audit_chain_head" ("id", "seq", "hash") VALUES (1, 0, repeat('0', 64));

-- Appending: the head row's lock serialises writers (one chain), the database numbers and times the row, and
-- links it to the previous hash. Whatever a client sends for seq, occurred_at, prev_hash or hash is replaced.
CREATE FUNCTION audit_event_append() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  head record;
BEGIN
  SELECT "seq", "hash" INTO head FROM "audit_chain_head" WHERE "id" = 1 FOR UPDATE;
  NEW."seq" := head."seq" + 1;
  NEW."prev_hash" := head."hash";
  NEW."occurred_at" := date_trunc('milliseconds', clock_timestamp());
  NEW."patient_ids" := coalesce(NEW."patient_ids", '{}');
  NEW."image_ids" := coalesce(NEW."image_ids", '{}');
  NEW."hash" := audit_event_digest(NEW);
  UPDATE "audit_chain_head" SET "seq" = NEW."seq", "hash" = NEW."hash" WHERE "id" = 1;
  RETURN NEW;
END
$$;
CREATE TRIGGER "audit_event_append" BEFORE INSERT ON "audit_event" FOR EACH ROW EXECUTE FUNCTION audit_event_append();

CREATE FUNCTION audit_event_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit log is append-only: % on % is refused', TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER "audit_event_no_update_or_delete" BEFORE UPDATE OR DELETE ON "audit_event" FOR EACH ROW EXECUTE FUNCTION audit_event_refuse_change();
CREATE TRIGGER "audit_event_no_truncate" BEFORE TRUNCATE ON "audit_event" FOR EACH STATEMENT EXECUTE FUNCTION audit_event_refuse_change();
-- The head moves only from inside audit_event_append (WHEN sees trigger depth 1 there, 0 for a direct statement); a direct UPDATE or DELETE is refused.
CREATE TRIGGER "audit_chain_head_guard" BEFORE UPDATE OR DELETE ON "audit_chain_head" FOR EACH ROW WHEN (pg_trigger_depth() < 1) EXECUTE FUNCTION audit_event_refuse_change();
CREATE TRIGGER "audit_chain_head_no_truncate" BEFORE TRUNCATE ON "audit_chain_head" FOR EACH STATEMENT EXECUTE FUNCTION audit_event_refuse_change();
