-- CreateTable
CREATE TABLE "suggestion_log" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "subject" TEXT NOT NULL,
    "model_version" TEXT NOT NULL,
    "calibration_model_version" TEXT,
    "image_id" UUID,
    "upload_content_hash" CHAR(64),
    "status" TEXT NOT NULL,
    "suggested_grade" INTEGER,
    "probabilities" DOUBLE PRECISION[],
    "referable_probability" DOUBLE PRECISION,
    "voters" INTEGER NOT NULL,
    "revised_grading_id" UUID,
    "clinician_grade" INTEGER,
    "agrees" BOOLEAN,
    "revised_at" TIMESTAMPTZ(3),
    "revised_by" TEXT,

    CONSTRAINT "suggestion_log_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "suggestion_log_image_id_created_at_idx" ON "suggestion_log"("image_id", "created_at");

-- CreateIndex
CREATE INDEX "suggestion_log_upload_content_hash_idx" ON "suggestion_log"("upload_content_hash");

-- CreateIndex
CREATE INDEX "suggestion_log_revised_at_idx" ON "suggestion_log"("revised_at");

-- AddForeignKey
ALTER TABLE "suggestion_log" ADD CONSTRAINT "suggestion_log_image_id_fkey" FOREIGN KEY ("image_id") REFERENCES "fundus_image"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "suggestion_log" ADD CONSTRAINT "suggestion_log_revised_grading_id_fkey" FOREIGN KEY ("revised_grading_id") REFERENCES "grading"("id") ON DELETE SET NULL ON UPDATE CASCADE;


-- Hand-written (Prisma cannot express these): listed in test/api/drift.test.mjs.
ALTER TABLE "suggestion_log" ADD CONSTRAINT "suggestion_log_status_known"
  CHECK ("status" IN ('SUGGESTED', 'ABSTAINED', 'UNCALIBRATED', 'NO_NEIGHBOURS'));
ALTER TABLE "suggestion_log" ADD CONSTRAINT "suggestion_log_grades_icdr"
  CHECK (("suggested_grade" IS NULL OR "suggested_grade" BETWEEN 0 AND 4) AND ("clinician_grade" IS NULL OR "clinician_grade" BETWEEN 0 AND 4));
ALTER TABLE "suggestion_log" ADD CONSTRAINT "suggestion_log_has_query"
  CHECK ("image_id" IS NOT NULL OR "upload_content_hash" IS NOT NULL);
