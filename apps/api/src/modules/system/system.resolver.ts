import 'reflect-metadata';
import { Ctx, Field, ObjectType, Query, Resolver } from 'type-graphql';
import { authorize } from '../../auth/policy.js';
import type { RequestContext } from '../../context.js';
import { resolveSearchModelVersion } from '../similar-case/similar-case.service.js';

@ObjectType()
export class Health {
  @Field(() => String) status!: string;
  @Field(() => String, { description: 'pglite (embedded) or postgres.' }) database!: string;
  @Field(() => String, { nullable: true, description: 'The model version searches compare on.' }) searchModelVersion!: string | null;
  @Field(() => String, { nullable: true, description: 'The loaded embedding model, null when none is loaded.' }) embeddingModelVersion!: string | null;
  @Field(() => String, { nullable: true, description: 'cpu or cuda; null when no model is loaded.' }) embeddingExecutionProvider!: string | null;
}

@Resolver()
export class SystemResolver {
  @Query(() => Health)
  async health(@Ctx() context: RequestContext): Promise<Health> {
    // Any signed-in role; not worth an audit row per call (it carries no patient data).
    authorize(context.viewer, 'read-system');
    const version = await resolveSearchModelVersion(context.db.prisma, context.searchModelVersion, context.embedder?.metadata.modelVersion);
    return {
      status: 'ok',
      database: context.db.kind,
      searchModelVersion: version,
      embeddingModelVersion: context.embedder?.metadata.modelVersion ?? null,
      embeddingExecutionProvider: context.embedder?.executionProvider ?? null,
    };
  }
}
