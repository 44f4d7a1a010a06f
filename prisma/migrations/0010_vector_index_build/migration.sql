-- CreateTable
CREATE TABLE "vector_index_build" (
    "dr_grade" INTEGER NOT NULL,
    "kind" TEXT NOT NULL,
    "lists" INTEGER,
    "rows_at_build" INTEGER NOT NULL,
    "built_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "vector_index_build_pkey" PRIMARY KEY ("dr_grade")
);


-- Hand-written below: what the rebuild command may record (search/vector-indexes.ts).
ALTER TABLE "vector_index_build" ADD CONSTRAINT "vector_index_build_grade_icdr" CHECK ("dr_grade" BETWEEN 0 AND 4);
ALTER TABLE "vector_index_build" ADD CONSTRAINT "vector_index_build_kind_known" CHECK ("kind" IN ('ivfflat', 'hnsw') AND ("lists" IS NULL) = ("kind" = 'hnsw') AND ("lists" IS NULL OR "lists" > 0) AND "rows_at_build" >= 0);
