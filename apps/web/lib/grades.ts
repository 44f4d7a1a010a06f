// International Clinical Diabetic Retinopathy (ICDR) severity scale, as stored in referenceGrading.drGrade.
export const DR_GRADES = [
  { grade: 0, name: 'No DR' },
  { grade: 1, name: 'Mild NPDR' },
  { grade: 2, name: 'Moderate NPDR' },
  { grade: 3, name: 'Severe NPDR' },
  { grade: 4, name: 'Proliferative DR' },
] as const;

export type DrGrade = (typeof DR_GRADES)[number]['grade'];

export function isDrGrade(value: number): value is DrGrade {
  return DR_GRADES.some((entry) => entry.grade === value);
}

export function describeDrGrade(grade: number): string {
  const entry = DR_GRADES.find((candidate) => candidate.grade === grade);
  return entry ? `${grade} – ${entry.name}` : String(grade);
}
