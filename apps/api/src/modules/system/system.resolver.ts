import 'reflect-metadata';
import { Ctx, Field, ObjectType, Query, Resolver } from 'type-graphql';
import type { RequestContext } from '../../context.js';
import { findNewestModelVersion } from '../../search/similar-images.js';

@ObjectType()
export class Health {
  @Field(() => String) status!: string;
  @Field(() => String, { description: 'pglite (embedded) or postgres.' }) database!: string;
  @Field(() => String, { nullable: true, description: 'The model version searches compare on.' }) searchModelVersion!: string | null;
}

@Resolver()
export class SystemResolver {
  @Query(() => Health)
  async health(@Ctx() context: RequestContext): Promise<Health> {
    const version = context.searchModelVersion ?? (await findNewestModelVersion(context.db.prisma));
    return { status: 'ok', database: context.db.kind, searchModelVersion: version };
  }
}
