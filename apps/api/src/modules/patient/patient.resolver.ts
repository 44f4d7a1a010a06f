import 'reflect-metadata';
import { Arg, Ctx, Field, FieldResolver, Int, ObjectType, Query, Resolver, Root } from 'type-graphql';
import { audited } from '../../audit/audited.js';
import { authorizePatientAccess } from '../../auth/policy.js';
import type { RequestContext } from '../../context.js';
import { listPatientCases } from '../case/case.service.js';
import { CaseConnection, Patient } from '../case/case.type.js';
import { PageInfo } from '../common/pagination.js';
import { getPatientByMrnOrThrow, listPatients } from './patient.service.js';

@ObjectType()
export class PatientConnection {
  @Field(() => [Patient]) nodes!: Patient[];
  @Field(() => PageInfo) pageInfo!: PageInfo;
}

@Resolver(() => Patient)
export class PatientResolver {
  @Query(() => Patient, { description: 'A patient by medical record number. NOT_FOUND when there is none. Roles: clinician, admin; ehr-service within its identifier system.' })
  patient(@Ctx() context: RequestContext, @Arg('mrn', () => String) mrn: string, @Arg('system', () => String, { nullable: true }) system?: string | null) {
    return audited(
      context,
      { operation: 'read-patient', identifierSystems: system ? [system] : [], details: { mrn, system: system ?? null } },
      async () => {
        const patient = await context.read((prisma) => getPatientByMrnOrThrow({ prisma, mrn, system }));
        authorizePatientAccess(context.viewer, patient);
        return patient;
      },
      (patient) => ({ patientIds: [patient.id] }),
    );
  }

  @Query(() => PatientConnection, {
    description: 'Patients page by page. Roles: clinician, admin.',
    complexity: ({ args, childComplexity }) => Math.min(Number(args.first) || 1, 100) * childComplexity,
  })
  patients(
    @Ctx() context: RequestContext,
    @Arg('first', () => Int, { defaultValue: 20 }) first: number,
    @Arg('after', () => String, { nullable: true }) after?: string | null,
    @Arg('dataset', () => String, { nullable: true }) dataset?: string | null,
  ) {
    return audited(
      context,
      { operation: 'list-patients', details: { first, after: after ?? null, dataset: dataset ?? null } },
      () => context.read((prisma) => listPatients({ prisma, first, after, datasetName: dataset })),
      (page) => ({ patientIds: page.nodes.map((patient) => patient.id) }),
    );
  }

  @FieldResolver(() => CaseConnection, {
    description: "The patient's photographs in the order they were recorded.",
    // Loads per patient: priced high so lists of patients cannot fan out into many of these.
    complexity: ({ args, childComplexity }) => 50 + Math.min(Number(args.first) || 1, 100) * childComplexity,
  })
  cases(@Root() patient: Patient, @Ctx() context: RequestContext, @Arg('first', () => Int, { defaultValue: 20 }) first: number, @Arg('after', () => String, { nullable: true }) after?: string | null) {
    return audited(
      context,
      { operation: 'read-case', details: { patientId: patient.id, first } },
      () => context.read((prisma) => listPatientCases({ prisma, patientId: patient.id, first, after })),
      (page) => ({ patientIds: [patient.id], imageIds: page.nodes.map((found) => found.id) }),
    );
  }
}
