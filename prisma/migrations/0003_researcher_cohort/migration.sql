-- CreateTable
CREATE TABLE "researcher_cohort" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "subject" TEXT NOT NULL,
    "patient_count" INTEGER NOT NULL,
    "patient_ids" UUID[],
    "fingerprint" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "researcher_cohort_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "researcher_cohort_subject_patient_count_idx" ON "researcher_cohort"("subject", "patient_count");

