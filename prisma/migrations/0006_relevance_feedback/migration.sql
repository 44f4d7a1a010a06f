-- CreateTable
CREATE TABLE "similar_case_search" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "subject" TEXT NOT NULL,
    "role" TEXT NOT NULL,
    "model_version" TEXT NOT NULL,
    "query_image_id" UUID,
    "query_content_hash" CHAR(64) NOT NULL,
    "query_embedding" vector(128) NOT NULL,
    "region" JSONB,
    "parent_search_id" UUID,
    "k" INTEGER NOT NULL,
    "filters" JSONB NOT NULL DEFAULT '{}',
    "exclude_same_patient" BOOLEAN NOT NULL,
    "hit_image_ids" UUID[],

    CONSTRAINT "similar_case_search_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "relevance_feedback" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "search_id" UUID NOT NULL,
    "query_image_id" UUID,
    "query_content_hash" CHAR(64) NOT NULL,
    "hit_image_id" UUID NOT NULL,
    "hit_content_hash" CHAR(64) NOT NULL,
    "hit_rank" INTEGER NOT NULL,
    "relevant" BOOLEAN NOT NULL,
    "subject" TEXT NOT NULL,
    "role" TEXT NOT NULL,
    "model_version" TEXT NOT NULL,
    "marked_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "relevance_feedback_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "similar_case_search_subject_created_at_idx" ON "similar_case_search"("subject", "created_at");

-- CreateIndex
CREATE INDEX "relevance_feedback_marked_at_idx" ON "relevance_feedback"("marked_at");

-- CreateIndex
CREATE UNIQUE INDEX "relevance_feedback_search_id_hit_image_id_key" ON "relevance_feedback"("search_id", "hit_image_id");

-- AddForeignKey
ALTER TABLE "similar_case_search" ADD CONSTRAINT "similar_case_search_query_image_id_fkey" FOREIGN KEY ("query_image_id") REFERENCES "fundus_image"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "similar_case_search" ADD CONSTRAINT "similar_case_search_parent_search_id_fkey" FOREIGN KEY ("parent_search_id") REFERENCES "similar_case_search"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "relevance_feedback" ADD CONSTRAINT "relevance_feedback_search_id_fkey" FOREIGN KEY ("search_id") REFERENCES "similar_case_search"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "relevance_feedback" ADD CONSTRAINT "relevance_feedback_hit_image_id_fkey" FOREIGN KEY ("hit_image_id") REFERENCES "fundus_image"("id") ON DELETE CASCADE ON UPDATE CASCADE;


-- Hand-written constraints (Prisma cannot express them).
ALTER TABLE "similar_case_search" ADD CONSTRAINT "similar_case_search_k_hash_valid" CHECK ("k" BETWEEN 1 AND 100 AND "query_content_hash" ~ '^[0-9a-f]{64}$');
ALTER TABLE "relevance_feedback" ADD CONSTRAINT "relevance_feedback_hashes_hex" CHECK ("query_content_hash" ~ '^[0-9a-f]{64}$' AND "hit_content_hash" ~ '^[0-9a-f]{64}$');
ALTER TABLE "relevance_feedback" ADD CONSTRAINT "relevance_feedback_rank_positive" CHECK ("hit_rank" >= 1);
