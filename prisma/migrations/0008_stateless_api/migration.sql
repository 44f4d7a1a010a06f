-- CreateTable
CREATE TABLE "upload" (
    "token_hash" CHAR(64) NOT NULL,
    "owner" TEXT NOT NULL,
    "content_hash" CHAR(64) NOT NULL,
    "mime_type" TEXT NOT NULL,
    "width" INTEGER NOT NULL,
    "height" INTEGER NOT NULL,
    "model_version" TEXT NOT NULL,
    "embedding" BYTEA NOT NULL,
    "attention_width" INTEGER NOT NULL,
    "attention_height" INTEGER NOT NULL,
    "attention" BYTEA NOT NULL,
    "feature_map" BYTEA,
    "feature_map_channels" INTEGER,
    "feature_map_height" INTEGER,
    "feature_map_width" INTEGER,
    "fundus_share" BYTEA,
    "bytes" BYTEA NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "upload_pkey" PRIMARY KEY ("token_hash")
);

-- CreateTable
CREATE TABLE "rate_limit" (
    "key" VARCHAR(255) NOT NULL,
    "points" INTEGER NOT NULL DEFAULT 0,
    "expire" BIGINT,

    CONSTRAINT "rate_limit_pkey" PRIMARY KEY ("key")
);

-- CreateIndex
CREATE INDEX "upload_expires_at_idx" ON "upload"("expires_at");

-- CreateIndex
CREATE INDEX "upload_owner_created_at_idx" ON "upload"("owner", "created_at");

