import 'reflect-metadata';
import { Arg, Ctx, Mutation, Resolver } from 'type-graphql';
import type { RequestContext } from '../../context.js';
import { IngestCaseInput, IngestCaseResult } from './ingest.input.js';
import { ingestUploadedCase } from './ingest-upload.service.js';

@Resolver()
export class IngestResolver {
  @Mutation(() => IngestCaseResult, { description: 'Stores an uploaded photograph with its records as a new case, embedded by the loaded model. Idempotent by content hash.' })
  ingestCase(@Ctx() context: RequestContext, @Arg('input', () => IngestCaseInput) input: IngestCaseInput) {
    return ingestUploadedCase({ prisma: context.db.prisma, embedder: context.embedder, uploads: context.uploads, input });
  }
}
