-- AlterTable
ALTER TABLE "image_embedding" ADD COLUMN     "dr_grade" INTEGER;

-- CreateIndex
CREATE INDEX "image_embedding_dr_grade_model_version_idx" ON "image_embedding"("dr_grade", "model_version");


-- Hand-written below: the grade copy's triggers and the approximate (HNSW) indexes, which Prisma cannot express.

-- image_embedding.dr_grade is fundus_image.dr_grade, never written by hand: set from the image on insert (a
-- sibling CTE's fresh image row is visible to the trigger's query), and followed when the image's reference
-- grade changes.
CREATE FUNCTION image_embedding_copy_grade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.dr_grade := (SELECT dr_grade FROM fundus_image WHERE id = NEW.image_id);
  RETURN NEW;
END $$;
CREATE TRIGGER "image_embedding_copy_grade" BEFORE INSERT OR UPDATE OF image_id, dr_grade ON "image_embedding"
  FOR EACH ROW EXECUTE FUNCTION image_embedding_copy_grade();

CREATE FUNCTION fundus_image_follow_grade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE image_embedding SET dr_grade = NEW.dr_grade WHERE image_id = NEW.id;
  RETURN NULL;
END $$;
CREATE TRIGGER "fundus_image_follow_grade" AFTER UPDATE OF dr_grade ON "fundus_image"
  FOR EACH ROW WHEN (OLD.dr_grade IS DISTINCT FROM NEW.dr_grade) EXECUTE FUNCTION fundus_image_follow_grade();

UPDATE image_embedding e SET dr_grade = fi.dr_grade FROM fundus_image fi WHERE fi.id = e.image_id AND fi.dr_grade IS NOT NULL;

-- One HNSW graph per reference grade, and one for ungraded photographs: a grade filter walks only its own graph,
-- so a rare grade (PDR, about 2% of a screening archive) gets as many candidates as a common one. A search
-- without a grade filter merges the per-grade top-k (search/similar-images.ts). Cosine, as every search ranks.
-- m and ef_construction are pgvector's defaults (16, 64); recall and build time are in bench/README.md.
CREATE INDEX "image_embedding_hnsw_grade_0" ON "image_embedding" USING hnsw ("embedding" vector_cosine_ops) WHERE dr_grade = 0;
CREATE INDEX "image_embedding_hnsw_grade_1" ON "image_embedding" USING hnsw ("embedding" vector_cosine_ops) WHERE dr_grade = 1;
CREATE INDEX "image_embedding_hnsw_grade_2" ON "image_embedding" USING hnsw ("embedding" vector_cosine_ops) WHERE dr_grade = 2;
CREATE INDEX "image_embedding_hnsw_grade_3" ON "image_embedding" USING hnsw ("embedding" vector_cosine_ops) WHERE dr_grade = 3;
CREATE INDEX "image_embedding_hnsw_grade_4" ON "image_embedding" USING hnsw ("embedding" vector_cosine_ops) WHERE dr_grade = 4;
CREATE INDEX "image_embedding_hnsw_ungraded" ON "image_embedding" USING hnsw ("embedding" vector_cosine_ops) WHERE dr_grade IS NULL;
