import { badInput, notFound } from '../../errors.js';
import type { PrismaClient } from '../../generated/prisma/client.js';
import { patientInclude, toPatient } from '../case/case.service.js';
import type { Patient } from '../case/case.type.js';
import { checkPageSize, decodeCursor, toPage, type Page } from '../common/pagination.js';

/** Patients by id, in the order asked; ids without a patient are left out. */
export async function getPatientsById(prisma: PrismaClient, patientIds: string[]): Promise<Patient[]> {
  const patients = await prisma.patient.findMany({ where: { id: { in: patientIds } }, include: patientInclude });
  const byId = new Map(patients.map((patient) => [patient.id, patient]));
  return patientIds.flatMap((id) => {
    const patient = byId.get(id);
    return patient ? [toPatient(patient)] : [];
  });
}

/**
 * Finds a patient by MRN. Without `system` the MRN must be unambiguous across identifier systems; with two
 * matches the caller is asked to name the system rather than being given either patient.
 */
export async function getPatientByMrnOrThrow({ prisma, mrn, system }: { prisma: PrismaClient; mrn: string; system?: string | null }): Promise<Patient> {
  const trimmed = mrn.trim();
  if (trimmed.length === 0 || trimmed.length > 64) throw badInput('mrn must be 1-64 characters', { field: 'mrn' });
  const matches = await prisma.patient.findMany({ where: { mrn: trimmed, ...(system ? { mrnSystem: system } : {}) }, select: { id: true }, take: 2 });
  if (matches.length === 0) throw notFound(`No patient with MRN ${trimmed}${system ? ` in system ${system}` : ''}`, { field: 'mrn' });
  if (matches.length > 1) throw badInput(`MRN ${trimmed} exists in several identifier systems; pass system`, { field: 'system' });
  const [patient] = await getPatientsById(prisma, [matches[0]!.id]);
  return patient!;
}

export async function listPatients({ prisma, first, after, datasetName }: { prisma: PrismaClient; first: number; after?: string | null; datasetName?: string | null }): Promise<Page<Patient>> {
  const take = checkPageSize(first);
  const cursorId = after ? decodeCursor(after) : undefined;
  const rows = await prisma.patient.findMany({
    where: datasetName ? { dataset: { name: datasetName } } : {},
    orderBy: { id: 'asc' },
    select: { id: true },
    take: take + 1,
    ...(cursorId ? { cursor: { id: cursorId }, skip: 1 } : {}),
  });
  const page = toPage(rows, take);
  return { nodes: await getPatientsById(prisma, page.nodes.map((row) => row.id)), pageInfo: page.pageInfo };
}

