import 'reflect-metadata';
import { Field, ID, InputType, ObjectType } from 'type-graphql';
import { DateTimeISOResolver, JSONObjectResolver } from 'graphql-scalars';

@ObjectType({ description: 'One row of the append-only, hash-chained audit log.' })
export class AuditEvent {
  @Field(() => String, { description: 'Position in the chain (1, 2, ...), as a string (64-bit).' }) seq!: string;
  @Field(() => DateTimeISOResolver) occurredAt!: Date;
  @Field(() => String) requestId!: string;
  @Field(() => String, { nullable: true, description: 'JWT subject or key:<name>; null when no credential was accepted.' }) subject!: string | null;
  @Field(() => String, { nullable: true }) role!: string | null;
  @Field(() => ID, { nullable: true }) keyId!: string | null;
  @Field(() => String, { description: 'read-case, read-patient, search, upload, ingest, link, write-grading, manage-keys, authenticate, graphql, ...' }) operation!: string;
  @Field(() => String, { description: 'OK or the error code the request was answered with.' }) outcome!: string;
  @Field(() => [ID]) patientIds!: string[];
  @Field(() => [ID], { description: 'Photographs (cases) read, returned or written.' }) imageIds!: string[];
  @Field(() => JSONObjectResolver, { description: 'Filters, identifiers asked for, returned ids, counts.' }) details!: Record<string, unknown>;
  @Field(() => String, { description: 'SHA-256 over this row and the previous row’s hash.' }) hash!: string;
}

@ObjectType()
export class AuditEventPage {
  @Field(() => [AuditEvent], { description: 'Newest first.' }) nodes!: AuditEvent[];
  @Field(() => String, { nullable: true, description: 'Pass as `before` for the next (older) page; null on the last page.' }) nextBefore!: string | null;
}

@InputType()
export class AuditFilterInput {
  @Field(() => String, { nullable: true }) subject?: string | null;
  @Field(() => ID, { nullable: true, description: 'Rows that name this patient.' }) patientId?: string | null;
  @Field(() => String, { nullable: true }) operation?: string | null;
  @Field(() => String, { nullable: true }) outcome?: string | null;
  @Field(() => DateTimeISOResolver, { nullable: true, description: 'From this time (inclusive).' }) from?: Date | null;
  @Field(() => DateTimeISOResolver, { nullable: true, description: 'Until this time (exclusive).' }) to?: Date | null;
}

@ObjectType({ description: 'A service credential; its secret is shown only once, when created.' })
export class ApiKey {
  @Field(() => ID) id!: string;
  @Field(() => String) name!: string;
  @Field(() => String) role!: string;
  @Field(() => String, { nullable: true, description: 'The one identifier system an ehr-service key may touch.' }) identifierSystem!: string | null;
  @Field(() => String) createdBy!: string;
  @Field(() => DateTimeISOResolver) createdAt!: Date;
  @Field(() => DateTimeISOResolver, { nullable: true }) expiresAt!: Date | null;
  @Field(() => DateTimeISOResolver, { nullable: true }) revokedAt!: Date | null;
}

@ObjectType()
export class CreatedApiKey {
  @Field(() => ApiKey) key!: ApiKey;
  @Field(() => String, { description: 'The secret (fcbr_...). Shown this once; only its hash is stored.' }) secret!: string;
}
