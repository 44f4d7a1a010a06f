-- CreateIndex
CREATE INDEX "image_embedding_created_at_model_version_idx" ON "image_embedding"("created_at", "model_version");

