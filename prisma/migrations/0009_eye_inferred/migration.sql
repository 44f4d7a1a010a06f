-- AlterTable
ALTER TABLE "fundus_image" ADD COLUMN     "eye_inferred" BOOLEAN NOT NULL DEFAULT false;

