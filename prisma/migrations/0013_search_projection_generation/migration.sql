-- AlterTable
ALTER TABLE "search_projection_state" ADD COLUMN     "generation" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "next_copied_at" TIMESTAMPTZ(3),
ADD COLUMN     "next_generation" INTEGER;


-- Hand-written below: a projection attached before this migration is generation 1 (its shards' table is
-- case_projection, as generation 1's is).
UPDATE "search_projection_state" SET "generation" = 1 WHERE "enabled";
