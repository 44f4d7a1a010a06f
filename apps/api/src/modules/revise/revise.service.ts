// The CBR "revise" step: the clinician confirms or corrects the grade, maculopathy and diagnosis of a searched
// photograph. One transaction writes the CLINICIAN grading (who: the signed-in subject; when: today and the row's
// created_at), sets it as the reference grade (fundus_image.dr_grade), adds the diagnosis for that eye at the
// photograph's visit, and records on the suggestion that was shown what the clinician decided (suggestion_log),
// so agreement can be monitored (suggestion-monitoring.service.ts).
import { badInput, notFound } from '../../errors.js';
import type { PrismaClient } from '../../generated/prisma/client.js';
import { todayUtc } from '../common/clinical-dates.js';
import { findIcd10CmProblem } from '../common/icd10-cm.js';
import { requireIcdrGrade, requireUuid } from '../common/validation.js';
import { loadCases } from '../case/case.service.js';
import type { Case } from '../case/case.type.js';

export type ReviseCaseInput = {
  caseId: string;
  drGrade: number;
  maculopathy?: boolean | null;
  diagnosis?: { icd10Code: string; text: string } | null;
  /** The suggestion shown (GradeSuggestion.id); default: the latest logged for this photograph. */
  suggestionId?: string | null;
};

export type RevisedSuggestion = { id: string; status: string; suggestedGrade: number | null; agrees: boolean | null };

export type ReviseCaseResult = { case: Case; gradingId: string; suggestion: RevisedSuggestion | null };

/** Checks everything before any write: a refused revision writes nothing. */
async function checkRevision(prisma: PrismaClient, input: ReviseCaseInput) {
  const caseId = requireUuid(input.caseId, 'caseId');
  const drGrade = requireIcdrGrade(input.drGrade, 'drGrade');
  let diagnosis: { icd10Code: string; text: string } | null = null;
  if (input.diagnosis) {
    const problem = findIcd10CmProblem(input.diagnosis.icd10Code);
    if (problem) throw badInput(problem, { field: 'diagnosis.icd10Code' });
    const text = input.diagnosis.text.trim();
    if (text.length === 0 || text.length > 500) throw badInput('diagnosis.text must be 1-500 characters', { field: 'diagnosis.text' });
    diagnosis = { icd10Code: input.diagnosis.icd10Code, text };
  }
  const suggestionId = input.suggestionId == null ? null : requireUuid(input.suggestionId, 'suggestionId');
  const image = await prisma.fundusImage.findUnique({ where: { id: caseId }, select: { id: true, patientId: true, visitId: true, eye: true, visit: { select: { visitDate: true } } } });
  if (!image) throw notFound(`No case with id ${caseId}`, { field: 'caseId' });
  const suggestion = suggestionId
    ? await prisma.suggestionLog.findUnique({ where: { id: suggestionId }, select: { id: true, imageId: true, status: true, suggestedGrade: true } })
    : await prisma.suggestionLog.findFirst({ where: { imageId: caseId }, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }], select: { id: true, imageId: true, status: true, suggestedGrade: true } });
  if (suggestionId && !suggestion) throw notFound(`No suggestion with id ${suggestionId}`, { field: 'suggestionId' });
  if (suggestion && suggestion.imageId !== caseId) throw badInput(`Suggestion ${suggestion.id} was made for another photograph, not case ${caseId}`, { field: 'suggestionId' });
  return { caseId, drGrade, diagnosis, image, suggestion };
}

export async function reviseCase({ prisma, input, clinician, now = new Date() }: { prisma: PrismaClient; input: ReviseCaseInput; clinician: string; now?: Date }): Promise<ReviseCaseResult> {
  const { caseId, drGrade, diagnosis, image, suggestion } = await checkRevision(prisma, input);
  const today = todayUtc(now);
  const visitDate = image.visit.visitDate.toISOString().slice(0, 10);
  // Graded today, or on the visit date for a photograph whose visit is recorded as later than today's clock.
  const gradedOn = today < visitDate ? visitDate : today;
  const gradingId = await prisma.$transaction(async (tx) => {
    const grading = await tx.grading.create({
      data: { imageId: caseId, drGrade, maculopathy: input.maculopathy ?? null, source: 'CLINICIAN', grader: clinician, gradedOn: new Date(`${gradedOn}T00:00:00Z`) },
      select: { id: true },
    });
    // The reference grade is the latest grading not made by a model (case.service.ts pickReferenceGrading).
    await tx.$executeRaw`UPDATE fundus_image SET dr_grade = (
      SELECT g.dr_grade FROM grading g WHERE g.image_id = ${caseId}::uuid AND g.source <> 'MODEL_SUGGESTION'
      ORDER BY g.graded_on DESC, g.created_at DESC LIMIT 1) WHERE id = ${caseId}::uuid`;
    if (diagnosis) {
      // Dated at the visit: it is this photograph's diagnosis (case.service.ts shows records up to the visit date).
      await tx.diagnosis.create({ data: { patientId: image.patientId, visitId: image.visitId, icd10Code: diagnosis.icd10Code, text: diagnosis.text, eye: image.eye, diagnosedOn: image.visit.visitDate } });
    }
    if (suggestion) {
      await tx.suggestionLog.update({
        where: { id: suggestion.id },
        data: { revisedGradingId: grading.id, clinicianGrade: drGrade, agrees: suggestion.suggestedGrade === null ? null : suggestion.suggestedGrade === drGrade, revisedAt: now, revisedBy: clinician },
      });
    }
    return grading.id;
  });
  const revised = (await loadCases(prisma, [caseId])).get(caseId)!;
  return {
    case: revised,
    gradingId,
    suggestion: suggestion ? { id: suggestion.id, status: suggestion.status, suggestedGrade: suggestion.suggestedGrade, agrees: suggestion.suggestedGrade === null ? null : suggestion.suggestedGrade === drGrade } : null,
  };
}

/**
 * Retain: the suggestions shown for an upload (by its content hash, to its uploader) now belong to the retained
 * case; when the clinician saved a grading with it, that grading is their revision. Idempotent: a repeated save
 * finds the rows already linked.
 */
export async function linkUploadSuggestions({ prisma, contentHash, subject, imageId, now = new Date() }: { prisma: PrismaClient; contentHash: string; subject: string | undefined; imageId: string; now?: Date }): Promise<number> {
  const where = { uploadContentHash: contentHash, imageId: null, ...(subject ? { subject } : {}) };
  const grading = await prisma.grading.findFirst({ where: { imageId, source: 'CLINICIAN' }, orderBy: [{ gradedOn: 'desc' }, { createdAt: 'desc' }], select: { id: true, drGrade: true, grader: true } });
  const rows = await prisma.suggestionLog.findMany({ where, select: { id: true, suggestedGrade: true } });
  if (rows.length === 0) return 0;
  await prisma.$transaction(
    rows.map((row) =>
      prisma.suggestionLog.update({
        where: { id: row.id },
        data: grading
          ? { imageId, revisedGradingId: grading.id, clinicianGrade: grading.drGrade, agrees: row.suggestedGrade === null ? null : row.suggestedGrade === grading.drGrade, revisedAt: now, revisedBy: subject ?? grading.grader }
          : { imageId },
      }),
    ),
  );
  return rows.length;
}
