-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateExtension
CREATE EXTENSION IF NOT EXISTS "vector";

-- CreateEnum
CREATE TYPE "sex" AS ENUM ('FEMALE', 'MALE', 'OTHER', 'UNKNOWN');

-- CreateEnum
CREATE TYPE "diabetes_type" AS ENUM ('TYPE_1', 'TYPE_2', 'GESTATIONAL', 'OTHER', 'UNKNOWN');

-- CreateEnum
CREATE TYPE "eye" AS ENUM ('LEFT', 'RIGHT');

-- CreateEnum
CREATE TYPE "laterality" AS ENUM ('LEFT', 'RIGHT', 'BOTH', 'UNSPECIFIED');

-- CreateEnum
CREATE TYPE "image_quality" AS ENUM ('GOOD', 'USABLE', 'UNGRADABLE', 'UNKNOWN');

-- CreateEnum
CREATE TYPE "grade_source" AS ENUM ('CLINICIAN', 'ADJUDICATED', 'DATASET_LABEL', 'MODEL_SUGGESTION');

-- CreateEnum
CREATE TYPE "treatment_type" AS ENUM ('ANTI_VEGF', 'PRP_LASER', 'FOCAL_LASER', 'VITRECTOMY', 'OBSERVATION');

-- CreateEnum
CREATE TYPE "anti_vegf_agent" AS ENUM ('AFLIBERCEPT', 'RANIBIZUMAB', 'BEVACIZUMAB', 'FARICIMAB', 'BROLUCIZUMAB', 'OTHER');

-- CreateTable
CREATE TABLE "dataset" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" TEXT NOT NULL,
    "description" TEXT,
    "is_synthetic" BOOLEAN NOT NULL DEFAULT false,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "dataset_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "patient" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "dataset_id" UUID NOT NULL,
    "mrn" TEXT NOT NULL,
    "mrn_system" TEXT NOT NULL,
    "birth_year" INTEGER,
    "sex" "sex" NOT NULL DEFAULT 'UNKNOWN',
    "diabetes_type" "diabetes_type" NOT NULL DEFAULT 'UNKNOWN',
    "diabetes_diagnosis_year" INTEGER,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "patient_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "hba1c_reading" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "patient_id" UUID NOT NULL,
    "measured_on" DATE NOT NULL,
    "percent" DECIMAL(4,1) NOT NULL,

    CONSTRAINT "hba1c_reading_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "visit" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "patient_id" UUID NOT NULL,
    "visit_date" DATE NOT NULL,

    CONSTRAINT "visit_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "image_blob" (
    "sha256" CHAR(64) NOT NULL,
    "mime_type" TEXT NOT NULL,
    "byte_size" INTEGER NOT NULL,
    "bytes" BYTEA NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "image_blob_pkey" PRIMARY KEY ("sha256")
);

-- CreateTable
CREATE TABLE "fundus_image" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "visit_id" UUID NOT NULL,
    "patient_id" UUID NOT NULL,
    "eye" "eye" NOT NULL,
    "content_hash" CHAR(64) NOT NULL,
    "width" INTEGER NOT NULL,
    "height" INTEGER NOT NULL,
    "quality" "image_quality" NOT NULL DEFAULT 'UNKNOWN',
    "dr_grade" INTEGER,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "fundus_image_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "image_embedding" (
    "image_id" UUID NOT NULL,
    "model_version" TEXT NOT NULL,
    "embedding" vector(128) NOT NULL,
    "attention_map" BYTEA,
    "attention_width" INTEGER,
    "attention_height" INTEGER,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "image_embedding_pkey" PRIMARY KEY ("image_id","model_version")
);

-- CreateTable
CREATE TABLE "grading" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "image_id" UUID NOT NULL,
    "dr_grade" INTEGER NOT NULL,
    "maculopathy" BOOLEAN,
    "macular_edema_risk" INTEGER,
    "source" "grade_source" NOT NULL,
    "grader" TEXT,
    "original_scale" TEXT,
    "original_value" TEXT,
    "graded_on" DATE NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "grading_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "diagnosis" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "patient_id" UUID NOT NULL,
    "visit_id" UUID,
    "icd10_code" TEXT NOT NULL,
    "text" TEXT NOT NULL,
    "eye" "laterality" NOT NULL DEFAULT 'UNSPECIFIED',
    "diagnosed_on" DATE NOT NULL,

    CONSTRAINT "diagnosis_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "treatment" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "patient_id" UUID NOT NULL,
    "visit_id" UUID,
    "type" "treatment_type" NOT NULL,
    "agent" "anti_vegf_agent",
    "eye" "laterality" NOT NULL,
    "performed_on" DATE NOT NULL,
    "notes" TEXT,

    CONSTRAINT "treatment_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "external_link" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "system" TEXT NOT NULL,
    "identifier" TEXT NOT NULL,
    "patient_id" UUID,
    "image_id" UUID,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "external_link_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "dataset_name_key" ON "dataset"("name");

-- CreateIndex
CREATE INDEX "patient_dataset_id_idx" ON "patient"("dataset_id");

-- CreateIndex
CREATE UNIQUE INDEX "patient_mrn_system_mrn_key" ON "patient"("mrn_system", "mrn");

-- CreateIndex
CREATE INDEX "hba1c_reading_patient_id_measured_on_idx" ON "hba1c_reading"("patient_id", "measured_on");

-- CreateIndex
CREATE INDEX "visit_patient_id_visit_date_idx" ON "visit"("patient_id", "visit_date");

-- CreateIndex
CREATE UNIQUE INDEX "visit_id_patient_id_key" ON "visit"("id", "patient_id");

-- CreateIndex
CREATE UNIQUE INDEX "fundus_image_content_hash_key" ON "fundus_image"("content_hash");

-- CreateIndex
CREATE INDEX "fundus_image_patient_id_idx" ON "fundus_image"("patient_id");

-- CreateIndex
CREATE INDEX "fundus_image_visit_id_idx" ON "fundus_image"("visit_id");

-- CreateIndex
CREATE INDEX "fundus_image_dr_grade_idx" ON "fundus_image"("dr_grade");

-- CreateIndex
CREATE INDEX "image_embedding_model_version_idx" ON "image_embedding"("model_version");

-- CreateIndex
CREATE INDEX "grading_image_id_graded_on_idx" ON "grading"("image_id", "graded_on");

-- CreateIndex
CREATE INDEX "diagnosis_patient_id_diagnosed_on_idx" ON "diagnosis"("patient_id", "diagnosed_on");

-- CreateIndex
CREATE INDEX "treatment_patient_id_performed_on_idx" ON "treatment"("patient_id", "performed_on");

-- CreateIndex
CREATE INDEX "treatment_type_idx" ON "treatment"("type");

-- CreateIndex
CREATE INDEX "external_link_patient_id_idx" ON "external_link"("patient_id");

-- CreateIndex
CREATE INDEX "external_link_image_id_idx" ON "external_link"("image_id");

-- CreateIndex
CREATE UNIQUE INDEX "external_link_system_identifier_key" ON "external_link"("system", "identifier");

-- AddForeignKey
ALTER TABLE "patient" ADD CONSTRAINT "patient_dataset_id_fkey" FOREIGN KEY ("dataset_id") REFERENCES "dataset"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "hba1c_reading" ADD CONSTRAINT "hba1c_reading_patient_id_fkey" FOREIGN KEY ("patient_id") REFERENCES "patient"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "visit" ADD CONSTRAINT "visit_patient_id_fkey" FOREIGN KEY ("patient_id") REFERENCES "patient"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "fundus_image" ADD CONSTRAINT "fundus_image_visit_id_patient_id_fkey" FOREIGN KEY ("visit_id", "patient_id") REFERENCES "visit"("id", "patient_id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "fundus_image" ADD CONSTRAINT "fundus_image_patient_id_fkey" FOREIGN KEY ("patient_id") REFERENCES "patient"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "fundus_image" ADD CONSTRAINT "fundus_image_content_hash_fkey" FOREIGN KEY ("content_hash") REFERENCES "image_blob"("sha256") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "image_embedding" ADD CONSTRAINT "image_embedding_image_id_fkey" FOREIGN KEY ("image_id") REFERENCES "fundus_image"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "grading" ADD CONSTRAINT "grading_image_id_fkey" FOREIGN KEY ("image_id") REFERENCES "fundus_image"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "diagnosis" ADD CONSTRAINT "diagnosis_patient_id_fkey" FOREIGN KEY ("patient_id") REFERENCES "patient"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "diagnosis" ADD CONSTRAINT "diagnosis_visit_id_fkey" FOREIGN KEY ("visit_id") REFERENCES "visit"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "treatment" ADD CONSTRAINT "treatment_patient_id_fkey" FOREIGN KEY ("patient_id") REFERENCES "patient"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "treatment" ADD CONSTRAINT "treatment_visit_id_fkey" FOREIGN KEY ("visit_id") REFERENCES "visit"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "external_link" ADD CONSTRAINT "external_link_patient_id_fkey" FOREIGN KEY ("patient_id") REFERENCES "patient"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "external_link" ADD CONSTRAINT "external_link_image_id_fkey" FOREIGN KEY ("image_id") REFERENCES "fundus_image"("id") ON DELETE CASCADE ON UPDATE CASCADE;


-- Hand-written: constraints Prisma cannot express. Keep them below the generated SQL; the drift test compares
-- the generated part with prisma/schema.prisma and checks these by name.
ALTER TABLE "grading" ADD CONSTRAINT "grading_dr_grade_icdr" CHECK ("dr_grade" BETWEEN 0 AND 4);
ALTER TABLE "grading" ADD CONSTRAINT "grading_macular_edema_risk_range" CHECK ("macular_edema_risk" BETWEEN 0 AND 2);
ALTER TABLE "fundus_image" ADD CONSTRAINT "fundus_image_dr_grade_icdr" CHECK ("dr_grade" BETWEEN 0 AND 4);
ALTER TABLE "fundus_image" ADD CONSTRAINT "fundus_image_size_positive" CHECK ("width" > 0 AND "height" > 0);
ALTER TABLE "fundus_image" ADD CONSTRAINT "fundus_image_content_hash_hex" CHECK ("content_hash" ~ '^[0-9a-f]{64}$');
ALTER TABLE "image_blob" ADD CONSTRAINT "image_blob_byte_size_matches" CHECK ("byte_size" = octet_length("bytes"));
ALTER TABLE "patient" ADD CONSTRAINT "patient_birth_year_plausible" CHECK ("birth_year" BETWEEN 1900 AND 2100);
ALTER TABLE "treatment" ADD CONSTRAINT "treatment_agent_only_for_anti_vegf" CHECK ("agent" IS NULL OR "type" = 'ANTI_VEGF');
ALTER TABLE "external_link" ADD CONSTRAINT "external_link_has_target" CHECK ("patient_id" IS NOT NULL OR "image_id" IS NOT NULL);
ALTER TABLE "image_embedding" ADD CONSTRAINT "image_embedding_attention_shape" CHECK (("attention_map" IS NULL) = ("attention_width" IS NULL) AND ("attention_width" IS NULL) = ("attention_height" IS NULL));
